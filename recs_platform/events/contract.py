"""The raw event contract (DESIGN.md, "Data contracts").

One JSON object per line. The fields below are the ones the platform reads; any extra field is
kept in the raw payload and ignored downstream. `validate_event` is the reference implementation
of the rules; the warehouse loaders apply the same rules (the DuckDB loader in SQL, checked
against this module by the tests).
"""

from __future__ import annotations

from typing import Any

import orjson

EVENT_TYPES = ("pageview", "event_product")
PRODUCT_ACTIONS = ("detail", "add", "remove", "purchase")
REQUIRED_STRING_FIELDS = ("event_id", "session_id", "event_type", "source")
OPTIONAL_STRING_FIELDS = ("user_id", "product_action", "product_sku", "url")
TIMESTAMP_FIELDS = ("client_ts", "server_ts")
CONTRACT_FIELDS = (
    "event_id",
    "session_id",
    "user_id",
    "event_type",
    "product_action",
    "product_sku",
    "url",
    "client_ts",
    "server_ts",
    "source",
)
# Rejection reasons, shared with the SQL loader so both paths name a broken rule alike.
REASON_INVALID_JSON = "invalid JSON"
REASON_NOT_OBJECT = "not a JSON object"
REASON_REQUIRED_STRING = "{field} missing or not a non-empty string"
REASON_OPTIONAL_STRING = "{field} not a string or null"
REASON_TIMESTAMP_TYPE = "{field} missing or not an integer (epoch ms)"
REASON_TIMESTAMP_RANGE = "{field} out of range for epoch milliseconds"
REASON_EVENT_TYPE = "event_type not one of " + ", ".join(EVENT_TYPES)
REASON_PRODUCT_ACTION = "product_action not one of " + ", ".join(PRODUCT_ACTIONS)
REASON_PRODUCT_EVENT = "event_product needs product_sku and product_action"
# Epoch milliseconds outside [2000-01-01, 2100-01-01) are certainly not milliseconds.
MIN_EPOCH_MS = 946_684_800_000
MAX_EPOCH_MS = 4_102_444_800_000


class InvalidEvent(ValueError):
    """A raw event breaks the contract; the message is the reason recorded with the rejection."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_event(event: Any) -> dict[str, Any]:
    """Return the event unchanged if it meets the contract, else raise `InvalidEvent`.

    The reasons are the same strings the SQL loader writes, so a rejection reads the same
    whichever path found it.
    """
    if not isinstance(event, dict):
        raise InvalidEvent(REASON_NOT_OBJECT)
    for field in REQUIRED_STRING_FIELDS:
        value = event.get(field)
        if not isinstance(value, str) or not value:
            raise InvalidEvent(REASON_REQUIRED_STRING.format(field=field))
    for field in OPTIONAL_STRING_FIELDS:
        value = event.get(field)
        if value is not None and not isinstance(value, str):
            raise InvalidEvent(REASON_OPTIONAL_STRING.format(field=field))
    for field in TIMESTAMP_FIELDS:
        value = event.get(field)
        if not _is_int(value):
            raise InvalidEvent(REASON_TIMESTAMP_TYPE.format(field=field))
        if not MIN_EPOCH_MS <= value < MAX_EPOCH_MS:
            raise InvalidEvent(REASON_TIMESTAMP_RANGE.format(field=field))
    if event["event_type"] not in EVENT_TYPES:
        raise InvalidEvent(REASON_EVENT_TYPE)
    action = event.get("product_action")
    if action is not None and action not in PRODUCT_ACTIONS:
        raise InvalidEvent(REASON_PRODUCT_ACTION)
    if event["event_type"] == "event_product" and not (event.get("product_sku") and action):
        raise InvalidEvent(REASON_PRODUCT_EVENT)
    return event


def parse_line(line: bytes | str) -> dict[str, Any]:
    """Parse and validate one landing-zone line."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise InvalidEvent(REASON_INVALID_JSON) from error
    return validate_event(event)


def encode_event(event: dict[str, Any]) -> bytes:
    """One landing-zone line, newline included."""
    return orjson.dumps(event) + b"\n"
