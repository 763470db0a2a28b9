"""Small builders of raw events and landing files for tests, small enough to check by hand."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import orjson

from recs_platform.events.landing import LandingWriter, partition_prefix

DAY = dt.date(2026, 11, 3)
NOON_MS = int(dt.datetime(2026, 11, 3, 12, tzinfo=dt.UTC).timestamp() * 1000)


def make_event(number: int = 0, **overrides) -> dict:
    event = {
        "event_id": f"00000000-0000-4000-8000-{number:012d}",
        "session_id": f"session-{number // 3}",
        "user_id": None,
        "event_type": "event_product",
        "product_action": "detail",
        "product_sku": f"sku-{number % 7:04d}",
        "url": f"/p/sku-{number % 7:04d}",
        "client_ts": NOON_MS + number * 1000,
        "server_ts": NOON_MS + number * 1000 + 40,
        "source": "test",
    }
    event.update(overrides)
    return event


def write_good_file(root: Path, events: list[dict], producer: str = "test") -> list[str]:
    with LandingWriter(root, producer) as writer:
        writer.write_many(events)
    return writer.summary.files_written


def write_raw_file(root: Path, day: dt.date, name: str, content: bytes) -> str:
    """A finalized landing file with exactly these bytes (to plant damaged input)."""
    folder = root / partition_prefix(day)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(content)
    return partition_prefix(day) + name


def truncated_gzip(events: list[dict]) -> bytes:
    whole = gzip.compress(b"".join(orjson.dumps(event) + b"\n" for event in events))
    return whole[: len(whole) * 2 // 3]


# Lines that break the contract, each with the reason every loader must give.
BAD_LINES: list[tuple[bytes, str]] = [
    (b"{not json", "invalid JSON"),
    (b"", "invalid JSON"),
    (b"[1, 2]", "not a JSON object"),
    (
        orjson.dumps({k: v for k, v in make_event(1).items() if k != "event_id"}),
        "event_id missing or not a non-empty string",
    ),
    (orjson.dumps(make_event(2, event_id="")), "event_id missing or not a non-empty string"),
    (orjson.dumps(make_event(3, session_id=12)), "session_id missing or not a non-empty string"),
    (orjson.dumps(make_event(4, source=None)), "source missing or not a non-empty string"),
    (orjson.dumps(make_event(5, user_id=7)), "user_id not a string or null"),
    (orjson.dumps(make_event(6, url=["/"])), "url not a string or null"),
    (
        orjson.dumps(make_event(7, client_ts="1793534400000")),
        "client_ts missing or not an integer (epoch ms)",
    ),
    (
        orjson.dumps(make_event(8, client_ts=1.5e12)),
        "client_ts missing or not an integer (epoch ms)",
    ),
    (orjson.dumps(make_event(9, server_ts=True)), "server_ts missing or not an integer (epoch ms)"),
    (
        orjson.dumps(make_event(10, server_ts=1_793_534_400)),
        "server_ts out of range for epoch milliseconds",
    ),
    (
        orjson.dumps(make_event(11, event_type="click")),
        "event_type not one of pageview, event_product",
    ),
    (
        orjson.dumps(make_event(12, product_action="wishlist")),
        "product_action not one of detail, add, remove, purchase",
    ),
    (
        orjson.dumps(make_event(13, product_sku=None)),
        "event_product needs product_sku and product_action",
    ),
    (
        orjson.dumps(make_event(14, product_action=None)),
        "event_product needs product_sku and product_action",
    ),
]
