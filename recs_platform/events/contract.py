"""The raw event contract (DESIGN.md, "Data contracts").

One JSON object per line. The fields below are the ones the platform reads; any extra field is
kept in the raw payload and ignored downstream. `validate_event` is the reference implementation
of the rules; the warehouse loaders apply the same rules (the DuckDB loader in SQL, checked
against this module by the tests).

The online loop adds two kinds of record. An `impression` says what a recommendation carousel
showed: the `request_id` of the `/recommend` answer, the page's anchor product in `product_sku`,
`shown_skus` best first (a SKU's position is its index + 1), and `model_name`, `model_version`,
`variant` (and `fallback`, as `/recommend` answered it). A click on a carousel item is the product
view it is (`event_product`, `detail`) carrying the `request_id` it came from and its `position`;
any product event may carry that pair. These fields stay in the raw payload (raw.events has no
column for them): the loaders check them, dbt reads them from the payload.
"""

from __future__ import annotations

from typing import Any

import orjson

EVENT_TYPES = ("pageview", "event_product", "impression")
PRODUCT_ACTIONS = ("detail", "add", "remove", "purchase")
REQUIRED_STRING_FIELDS = ("event_id", "session_id", "event_type", "source")
OPTIONAL_STRING_FIELDS = ("user_id", "product_action", "product_sku", "url")
TIMESTAMP_FIELDS = ("client_ts", "server_ts")
# The fields raw.events keeps as typed columns, in column order.
COLUMN_FIELDS = (
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
# The online loop's fields: checked like the others, kept in the payload only.
CAROUSEL_FIELDS = (
    "request_id",
    "position",
    "shown_skus",
    "model_name",
    "model_version",
    "variant",
    "fallback",
)
CONTRACT_FIELDS = (*COLUMN_FIELDS, *CAROUSEL_FIELDS)
IMPRESSION_STRING_FIELDS = ("request_id", "product_sku", "model_name", "variant")
# A position is a 1-based index into a list; the bound keeps it a 32-bit integer everywhere.
MAX_POSITION = 2**31 - 1
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
REASON_REQUEST_ID = "request_id not a non-empty string or null"
REASON_POSITION = f"position not an integer from 1 to {MAX_POSITION} or null"
REASON_CLICK_PAIR = "event_product needs request_id and position together (a click) or neither"
REASON_PAGEVIEW_CLICK = "pageview carries no request_id or position"
REASON_IMPRESSION_ACTION = "impression has no product_action"
REASON_IMPRESSION_POSITION = "impression has no position (shown_skus gives each SKU's)"
REASON_IMPRESSION_STRING = "impression needs {field} (a non-empty string)"
REASON_IMPRESSION_FALLBACK = "impression fallback not a string or null"
REASON_IMPRESSION_MODEL_VERSION = (
    "impression needs model_version (a non-empty string; null only with a fallback)"
)
REASON_SHOWN_SKUS = "impression needs shown_skus: a non-empty list of distinct non-empty strings"
# Epoch milliseconds outside [2000-01-01, 2100-01-01) are certainly not milliseconds.
MIN_EPOCH_MS = 946_684_800_000
MAX_EPOCH_MS = 4_102_444_800_000


class InvalidEvent(ValueError):
    """A raw event breaks the contract; the message is the reason recorded with the rejection."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_text(value: Any) -> bool:
    """A non-empty string."""
    return isinstance(value, str) and value != ""


def _is_shown_skus(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(_is_text(sku) for sku in value)
        and len(set(value)) == len(value)
    )


def _check_carousel_fields(event: dict[str, Any]) -> None:
    """The rules of the online loop's fields (module docstring), after the others."""
    request_id, position = event.get("request_id"), event.get("position")
    if request_id is not None and not _is_text(request_id):
        raise InvalidEvent(REASON_REQUEST_ID)
    if position is not None and not (_is_int(position) and 1 <= position <= MAX_POSITION):
        raise InvalidEvent(REASON_POSITION)
    event_type = event["event_type"]
    if event_type == "event_product":
        if (request_id is None) != (position is None):
            raise InvalidEvent(REASON_CLICK_PAIR)
    elif event_type == "pageview":
        if request_id is not None or position is not None:
            raise InvalidEvent(REASON_PAGEVIEW_CLICK)
    else:
        _check_impression(event)


def _check_impression(event: dict[str, Any]) -> None:
    if event.get("product_action") is not None:
        raise InvalidEvent(REASON_IMPRESSION_ACTION)
    if event.get("position") is not None:
        raise InvalidEvent(REASON_IMPRESSION_POSITION)
    for field in IMPRESSION_STRING_FIELDS:
        if not _is_text(event.get(field)):
            raise InvalidEvent(REASON_IMPRESSION_STRING.format(field=field))
    fallback = event.get("fallback")
    if fallback is not None and not isinstance(fallback, str):
        raise InvalidEvent(REASON_IMPRESSION_FALLBACK)
    version = event.get("model_version")
    if not (_is_text(version) or (version is None and _is_text(fallback))):
        raise InvalidEvent(REASON_IMPRESSION_MODEL_VERSION)
    if not _is_shown_skus(event.get("shown_skus")):
        raise InvalidEvent(REASON_SHOWN_SKUS)


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
    event_type = event["event_type"]
    if event_type == "event_product" and not (event.get("product_sku") and action):
        raise InvalidEvent(REASON_PRODUCT_EVENT)
    # Most events are neither an impression nor a click: the collector's hot path skips the rest.
    if event_type == "impression" or "request_id" in event or "position" in event:
        _check_carousel_fields(event)
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
