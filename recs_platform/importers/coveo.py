"""Import the Coveo SIGIR eCom 2021 browsing file into the landing zone.

The file (`browsing_train.csv`, 36M rows) has the columns
``session_id_hash,event_type,product_action,product_sku_hash,server_timestamp_epoch_ms,hashed_url``;
`product_action` is empty for plain page views and rows are only roughly time-ordered. Rows are
streamed one at a time and routed to their arrival day. At most `OPEN_DAYS` days have a file open
at once (starting another day finishes the least recently written one), so memory stays flat
whatever the size and the number of days; a row that comes back to a day already finished lands
in that day's next file.

Importing is idempotent: `event_id` is derived from the row (its number and text), file names
from the input's content, and files already in the landing zone are not written again.
"""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from recs_platform.events.contract import encode_event
from recs_platform.events.landing import LandingWriter, arrival_date

COVEO_COLUMNS = (
    "session_id_hash",
    "event_type",
    "product_action",
    "product_sku_hash",
    "server_timestamp_epoch_ms",
    "hashed_url",
)
_EVENT_ID_NAMESPACE = uuid.UUID("8f6f5c1e-6f1e-4a8e-9d52-2f3a0c6b7e11")
_FINGERPRINT_BYTES = 1 << 20
_SKIPPED_ROWS_KEPT = 1000
# Arrival days with a file (a gzip stream, ~256 KB) open at once. Part of what names the files: a
# different value may split a day differently, so a re-import would not recognise them.
OPEN_DAYS = 8


class CoveoFormatError(ValueError):
    """The input is not a Coveo browsing file."""


@dataclass
class CoveoImportSummary:
    rows: int = 0
    events: int = 0
    skipped: int = 0
    skipped_rows: list[tuple[int, str]] = field(default_factory=list)  # the first ones
    files_written: list[str] = field(default_factory=list)
    files_already_present: list[str] = field(default_factory=list)
    # Times a row came back to a day already finished (OPEN_DAYS other days were written since),
    # each starting another file for that day.
    days_reopened: int = 0

    def format_table(self) -> str:
        lines = [
            f"rows read              {self.rows:>12,}",
            f"events landed          {self.events:>12,}",
            f"rows not convertible   {self.skipped:>12,}",
            f"files written          {len(self.files_written):>12,}",
            f"files already present  {len(self.files_already_present):>12,}",
            f"days reopened          {self.days_reopened:>12,}",
        ]
        for row_number, reason in self.skipped_rows[:10]:
            lines.append(f"  row {row_number}: {reason}")
        return "\n".join(lines)


def file_fingerprint(path: Path) -> str:
    """A short id of the file's content: its size and its first and last MiB."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    digest.update(str(size).encode())
    with open(path, "rb") as stream:
        digest.update(stream.read(_FINGERPRINT_BYTES))
        if size > _FINGERPRINT_BYTES:
            stream.seek(max(_FINGERPRINT_BYTES, size - _FINGERPRINT_BYTES))
            digest.update(stream.read())
    return digest.hexdigest()[:16]


def coveo_row_to_event(row: list[str], row_number: int, raw_text: str) -> dict:
    """One Coveo row as a raw event; raises ValueError when the row cannot be converted."""
    if len(row) != len(COVEO_COLUMNS):
        raise ValueError(f"expected {len(COVEO_COLUMNS)} columns, found {len(row)}")
    session_id, event_type, action, sku, timestamp_text, url = row
    try:
        server_ts = int(timestamp_text)
    except ValueError as error:
        raise ValueError(
            f"server_timestamp_epoch_ms {timestamp_text!r} is not an integer"
        ) from error
    event = {
        "event_id": str(uuid.uuid5(_EVENT_ID_NAMESPACE, f"{row_number}|{raw_text}")),
        "session_id": session_id,
        "user_id": None,
        "event_type": event_type,
        "product_action": action or None,
        "product_sku": sku or None,
        "url": url or None,
        "client_ts": server_ts,
        "server_ts": server_ts,
        "source": "coveo",
    }
    if action == "click":
        # A click on a search result is not one of the contract's product actions: it is kept
        # as a page view of that product, with the original action beside it.
        event.update(event_type="pageview", product_action=None, coveo_product_action="click")
    return event


def import_coveo(
    csv_path: Path, landing_root: Path, *, max_events_per_file: int = 1_000_000
) -> CoveoImportSummary:
    csv_path = Path(csv_path)
    summary = CoveoImportSummary()
    writer = LandingWriter(
        landing_root,
        "coveo",
        file_stem=file_fingerprint(csv_path),
        max_events_per_file=max_events_per_file,
        skip_existing=True,
        max_open_days=OPEN_DAYS,
    )
    with open(csv_path, newline="", encoding="utf-8") as text, writer:
        header = text.readline().strip().split(",")
        if tuple(column.strip() for column in header) != COVEO_COLUMNS:
            raise CoveoFormatError(
                f"{csv_path} does not start with the Coveo header {','.join(COVEO_COLUMNS)}; "
                f"found {','.join(header)}"
            )
        for row_number, raw_text in enumerate(text, start=1):
            summary.rows += 1
            raw_text = raw_text.rstrip("\r\n")
            # The hashes hold no commas or quotes; a row with quotes gets the full CSV parser.
            if '"' in raw_text:
                row = next(csv.reader(io.StringIO(raw_text)), [])
            else:
                row = raw_text.split(",")
            try:
                event = coveo_row_to_event(row, row_number, raw_text)
            except ValueError as error:
                summary.skipped += 1
                if len(summary.skipped_rows) < _SKIPPED_ROWS_KEPT:
                    summary.skipped_rows.append((row_number, str(error)))
                continue
            writer.write_encoded(arrival_date(event["server_ts"]), encode_event(event), 1)
            summary.events += 1
    summary.files_written = writer.summary.files_written
    summary.files_already_present = writer.summary.files_skipped
    summary.days_reopened = writer.summary.days_reopened
    return summary
