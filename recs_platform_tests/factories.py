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


def make_impression(number: int = 0, **overrides) -> dict:
    """What a carousel showed on the page of sku-0001: three SKUs, best first."""
    fields = {
        "event_type": "impression",
        "product_action": None,
        "product_sku": "sku-0001",
        "request_id": f"req-{number}",
        "shown_skus": ["sku-0004", "sku-0002", "sku-0006"],
        "model_name": "session-recommender",
        "model_version": "3",
        "variant": "champion",
        "fallback": None,
    }
    return make_event(number, **{**fields, **overrides})


def make_click(number: int = 0, **overrides) -> dict:
    """The product view of the second SKU `make_impression(number)` showed."""
    fields = {"product_sku": "sku-0002", "request_id": f"req-{number}", "position": 2}
    return make_event(number, **{**fields, **overrides})


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


POSITION_REASON = "position not an integer from 1 to 2147483647 or null"
CLICK_PAIR_REASON = "event_product needs request_id and position together (a click) or neither"
MODEL_VERSION_REASON = (
    "impression needs model_version (a non-empty string; null only with a fallback)"
)
SHOWN_SKUS_REASON = "impression needs shown_skus: a non-empty list of distinct non-empty strings"

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
        "event_type not one of pageview, event_product, impression",
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
# The online loop's broken rules (part of BAD_LINES), each with its reason.
CAROUSEL_BAD_LINES: list[tuple[bytes, str]] = [
    # A carousel click: request_id and position, both or neither, well typed.
    (orjson.dumps(make_click(15, request_id="")), "request_id not a non-empty string or null"),
    (orjson.dumps(make_click(16, request_id=42)), "request_id not a non-empty string or null"),
    (orjson.dumps(make_click(17, position=0)), POSITION_REASON),
    (orjson.dumps(make_click(18, position="2")), POSITION_REASON),
    (orjson.dumps(make_click(19, position=2.0)), POSITION_REASON),
    (orjson.dumps(make_click(20, position=True)), POSITION_REASON),
    (orjson.dumps(make_click(21, position=2**31)), POSITION_REASON),
    # Past 64 bits: orjson reads a float, DuckDB a DOUBLE.
    (
        orjson.dumps(make_click(22)).replace(b'"position":2', b'"position":18446744073709551616'),
        POSITION_REASON,
    ),
    (orjson.dumps(make_click(23, position=None)), CLICK_PAIR_REASON),
    (orjson.dumps(make_click(24, request_id=None)), CLICK_PAIR_REASON),
    (
        orjson.dumps(make_click(25, event_type="pageview", product_action=None, product_sku=None)),
        "pageview carries no request_id or position",
    ),
    # An impression: what a carousel showed.
    (
        orjson.dumps(make_impression(26, product_action="detail")),
        "impression has no product_action",
    ),
    (
        orjson.dumps(make_impression(27, position=1)),
        "impression has no position (shown_skus gives each SKU's)",
    ),
    (
        orjson.dumps({k: v for k, v in make_impression(28).items() if k != "request_id"}),
        "impression needs request_id (a non-empty string)",
    ),
    (
        orjson.dumps(make_impression(29, product_sku=None)),
        "impression needs product_sku (a non-empty string)",
    ),
    (
        orjson.dumps(make_impression(30, product_sku="")),
        "impression needs product_sku (a non-empty string)",
    ),
    (
        orjson.dumps(make_impression(31, model_name=3)),
        "impression needs model_name (a non-empty string)",
    ),
    (
        orjson.dumps({k: v for k, v in make_impression(32).items() if k != "variant"}),
        "impression needs variant (a non-empty string)",
    ),
    (orjson.dumps(make_impression(33, fallback=1)), "impression fallback not a string or null"),
    (orjson.dumps(make_impression(34, model_version=None)), MODEL_VERSION_REASON),
    (orjson.dumps(make_impression(35, model_version=None, fallback="")), MODEL_VERSION_REASON),
    (orjson.dumps(make_impression(36, model_version=5)), MODEL_VERSION_REASON),
    (orjson.dumps(make_impression(37, shown_skus=[])), SHOWN_SKUS_REASON),
    (orjson.dumps(make_impression(38, shown_skus="sku-0004,sku-0002")), SHOWN_SKUS_REASON),
    (orjson.dumps(make_impression(39, shown_skus=["sku-0004", ""])), SHOWN_SKUS_REASON),
    (orjson.dumps(make_impression(40, shown_skus=["sku-0004", None])), SHOWN_SKUS_REASON),
    (orjson.dumps(make_impression(41, shown_skus=["sku-0004", 4])), SHOWN_SKUS_REASON),
    (orjson.dumps(make_impression(42, shown_skus=["a", "b", "a"])), SHOWN_SKUS_REASON),
    (orjson.dumps(make_impression(43, shown_skus=[["a"]])), SHOWN_SKUS_REASON),
    (
        orjson.dumps({k: v for k, v in make_impression(44).items() if k != "shown_skus"}),
        SHOWN_SKUS_REASON,
    ),
]

BAD_LINES += CAROUSEL_BAD_LINES

# Good lines of the online loop, which every loader must keep.
GOOD_CAROUSEL_LINES: list[bytes] = [
    orjson.dumps(make_impression(50)),
    # An answer from the fallback may name no model version.
    orjson.dumps(make_impression(51, model_version=None, fallback="popularity")),
    orjson.dumps(make_impression(52, shown_skus=["sku-0003"], extra={"slot": "pdp"})),
    orjson.dumps(make_click(53)),
    orjson.dumps(make_click(54, product_action="add", position=2**31 - 1)),
]
