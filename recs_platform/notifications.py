"""Alerts about failed runs: what they say, and the two places they go.

Production posts Slack's incoming-webhook JSON (`{"text": ..., "blocks": [...]}`, which Slack,
Mattermost, Rocket.Chat and most chat tools accept) to a webhook URL from the environment.
Locally an alert is a log line and a JSON line appended to a file, so nothing is lost on a
laptop without a chat. No Dagster imports.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 2_000


@dataclass(frozen=True)
class Alert:
    title: str
    message: str
    run_id: str
    job_name: str
    failed_steps: list[str] = field(default_factory=list)
    run_url: str | None = None
    at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    def text(self) -> str:
        lines = [f"*{self.title}*", f"job `{self.job_name}`, run `{self.run_id}`"]
        if self.failed_steps:
            lines.append("failed steps: " + ", ".join(f"`{step}`" for step in self.failed_steps))
        lines.append(self.message[:MAX_MESSAGE_CHARS])
        if self.run_url:
            lines.append(f"<{self.run_url}|open the run>")
        return "\n".join(lines)


def slack_payload(alert: Alert) -> dict:
    """Slack's incoming-webhook body: `text` for notifications, one mrkdwn block to read."""
    return {
        "text": f"{alert.title}: {alert.job_name}",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": alert.text()}}],
    }


def post_to_webhook(url: str, alert: Alert, timeout_s: float = 10.0) -> None:
    """POST the alert; raises `httpx.HTTPError` unless the receiver answers 2xx."""
    response = httpx.post(url, json=slack_payload(alert), timeout=timeout_s)
    response.raise_for_status()


def append_to_file(path: Path, alert: Alert) -> None:
    """Log the alert and append it as one JSON line to `path` (created with its folder)."""
    log.error("%s: %s", alert.title, alert.text())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(asdict(alert)) + "\n")
        stream.flush()
        os.fsync(stream.fileno())
