"""Snowplow's tracker protocol mapped onto the raw-event contract.

Snowplow trackers send either `POST /com.snowplowanalytics.snowplow/tp2` with a `payload_data`
self-describing JSON (a batch of entries) or `GET /i` with one entry as query parameters. An entry
is a flat map of tracker-protocol parameters (`e`, `eid`, `sid`, `duid`, `uid`, `url`, `dtm`, ...);
a self-describing event and the context entities ride in it as JSON (`ue_pr`, `co`) or as
base64url JSON (`ue_px`, `cx`).

Page views, the Snowplow ecommerce plugin's product actions (one of our events per product
entity) and the older transaction items and cart events map; so do the online loop's records:
an `iglu:com.recs-platform/impression/jsonschema/1-*` self-describing event (its data holds the
contract's impression fields under their contract names) becomes an impression, and an
`iglu:com.recs-platform/recommendation_click/jsonschema/1-*` context entity (`request_id`,
`position`) on a product action makes it a carousel click. Anything else becomes a `Rejection`
naming what is unsupported. Each mapped event keeps the whole entry under its `snowplow` key, with
`ue_px`/`cx` decoded and stored as `ue_pr`/`co`, so the warehouse's raw payload loses nothing.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from recs_platform.collection.parsing import (
    CollectorLimits,
    ParseResult,
    Rejection,
    RequestRejected,
    finish_events,
    load_json_body,
)

SOURCE = "snowplow"
PAYLOAD_DATA_SCHEMA_PREFIX = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-"
UNSTRUCT_EVENT_SCHEMA_PREFIX = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-"
CONTEXTS_SCHEMA_PREFIX = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-"
ECOMMERCE_ACTION_SCHEMA_PREFIX = (
    "iglu:com.snowplowanalytics.snowplow.ecommerce/snowplow_ecommerce_action/jsonschema/1-0-"
)
PRODUCT_ENTITY_SCHEMA_PREFIX = (
    "iglu:com.snowplowanalytics.snowplow.ecommerce/product/jsonschema/1-0-"
)
ECOMMERCE_ACTION_TYPES = {
    "product_view": "detail",
    "add_to_cart": "add",
    "remove_from_cart": "remove",
    "transaction": "purchase",
}
# The older single-product cart events (e.g. the Python tracker's `track_add_to_cart`).
LEGACY_CART_SCHEMA_PREFIXES = {
    "iglu:com.snowplowanalytics.snowplow/add_to_cart/jsonschema/1-0-": "add",
    "iglu:com.snowplowanalytics.snowplow/remove_from_cart/jsonschema/1-0-": "remove",
}
TRACKER_EVENT_NAMES = {
    "pv": "page view",
    "pp": "page ping",
    "se": "structured event",
    "ue": "self-describing event",
    "tr": "ecommerce transaction header; its items, e=ti, map",
    "ti": "ecommerce transaction item",
}
MAPPED_TRACKER_EVENTS = ("pv", "ue", "ti")
# The online loop's schemas (recs-platform's own vendor).
IMPRESSION_SCHEMA_PREFIX = "iglu:com.recs-platform/impression/jsonschema/1-"
RECOMMENDATION_CLICK_SCHEMA_PREFIX = "iglu:com.recs-platform/recommendation_click/jsonschema/1-"
IMPRESSION_DATA_FIELDS = (
    "request_id",
    "product_sku",
    "shown_skus",
    "model_name",
    "model_version",
    "variant",
    "fallback",
)
CLICK_DATA_FIELDS = ("request_id", "position")
# uuid5 namespace of the event ids derived when one Snowplow event yields several of ours.
PRODUCT_EVENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "recs-platform:snowplow-product-event")

_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")
_MAX_EPOCH_MS_DIGITS = 19


class _Unmappable(ValueError):
    """The entry cannot become raw events; the message is the rejection reason."""


def _text(entry: Mapping[str, Any], name: str) -> str | None:
    """A tracker-protocol string parameter; absent and empty both read as None."""
    value = entry.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Unmappable(f"snowplow {name} is not a string")
    return value or None


def _epoch_ms(entry: Mapping[str, Any], name: str) -> int | None:
    value = entry.get(name)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if (
        isinstance(value, str)
        and value.isascii()
        and value.isdigit()
        and len(value) <= _MAX_EPOCH_MS_DIGITS
    ):
        return int(value)
    raise _Unmappable(f"snowplow {name} is not an integer (epoch ms)")


def _base64url_decoded(value: Any, name: str) -> bytes:
    """Trackers differ on padding (the JavaScript one strips it), so both forms are read."""
    if not isinstance(value, str) or not _BASE64_TEXT.fullmatch(value):
        raise _Unmappable(f"snowplow {name} is not base64url")
    unpadded = value.rstrip("=")
    try:
        return base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except binascii.Error as error:
        raise _Unmappable(f"snowplow {name} is not base64url") from error


def _self_describing_param(
    entry: Mapping[str, Any], kept: dict[str, Any], plain_name: str, encoded_name: str
) -> Any:
    """Decode `plain_name` (JSON) or else `encoded_name` (base64url JSON); None when neither.

    The decoded document replaces the parameter in `kept`, always under `plain_name`.
    """
    if entry.get(plain_name) is not None:
        name = plain_name
        text: str | bytes | None = _text(entry, plain_name)
    elif entry.get(encoded_name) is not None:
        name = encoded_name
        text = _base64url_decoded(entry[encoded_name], encoded_name)
    else:
        return None
    try:
        document = orjson.loads(text or b"")
    except orjson.JSONDecodeError as error:
        raise _Unmappable(f"snowplow {name} is not valid JSON") from error
    kept.pop(name)
    kept[plain_name] = document
    return document


def _envelope_data(document: Any, schema_prefix: str, name: str) -> Any:
    if not (
        isinstance(document, dict)
        and isinstance(document.get("schema"), str)
        and document["schema"].startswith(schema_prefix)
        and "data" in document
    ):
        raise _Unmappable(f"snowplow {name} is not a {schema_prefix}* envelope")
    return document["data"]


def _is_self_describing(document: Any) -> bool:
    return isinstance(document, dict) and isinstance(document.get("schema"), str)


def _context_entities(entry: Mapping[str, Any], kept: dict[str, Any]) -> list[dict[str, Any]]:
    document = _self_describing_param(entry, kept, "co", "cx")
    if document is None:
        return []
    entities = _envelope_data(document, CONTEXTS_SCHEMA_PREFIX, "co/cx")
    if not isinstance(entities, list) or not all(map(_is_self_describing, entities)):
        raise _Unmappable("snowplow co/cx data is not a list of self-describing entities")
    return entities


def _product_skus(entities: list[dict[str, Any]]) -> list[str]:
    skus = []
    product_entities = (
        entity for entity in entities if entity["schema"].startswith(PRODUCT_ENTITY_SCHEMA_PREFIX)
    )
    for index, entity in enumerate(product_entities):
        data = entity.get("data")
        sku = data.get("id") if isinstance(data, dict) else None
        if not isinstance(sku, str) or not sku:
            raise _Unmappable(f"snowplow product entity {index} has no string id")
        skus.append(sku)
    return skus


def _click_fields(entities: list[dict[str, Any]]) -> dict[str, Any]:
    """`request_id` and `position` of the entry's recommendation_click entity (none: {})."""
    clicks = [
        entity
        for entity in entities
        if entity["schema"].startswith(RECOMMENDATION_CLICK_SCHEMA_PREFIX)
    ]
    if not clicks:
        return {}
    if len(clicks) > 1:
        raise _Unmappable(f"snowplow entry has {len(clicks)} recommendation_click entities")
    data = clicks[0].get("data")
    if not isinstance(data, dict):
        raise _Unmappable("snowplow recommendation_click entity has no data object")
    # The values go as sent: the contract names what is wrong with them.
    return {field: data.get(field) for field in CLICK_DATA_FIELDS}


def _self_describing_events(
    entry: Mapping[str, Any], kept: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The contract fields particular to each of our events in an `e=ue` entry, and the
    entry's context entities."""
    document = _self_describing_param(entry, kept, "ue_pr", "ue_px")
    if document is None:
        raise _Unmappable("snowplow self-describing event (e=ue) has neither ue_pr nor ue_px")
    event = _envelope_data(document, UNSTRUCT_EVENT_SCHEMA_PREFIX, "ue_pr/ue_px")
    entities = _context_entities(entry, kept)
    if not _is_self_describing(event) or not isinstance(event.get("data"), dict):
        raise _Unmappable("snowplow ue_pr/ue_px does not wrap a self-describing event")
    schema, data = event["schema"], event["data"]
    if schema.startswith(IMPRESSION_SCHEMA_PREFIX):
        impression = {field: data.get(field) for field in IMPRESSION_DATA_FIELDS}
        return [{**impression, "event_type": "impression", "product_action": None}], entities
    actions = _product_actions(schema, data, entities)
    return [_product_event(action, sku) for action, sku in actions], entities


def _product_event(action: str | None, sku: str | None) -> dict[str, Any]:
    return {
        "event_type": "pageview" if action is None else "event_product",
        "product_action": action,
        "product_sku": sku,
    }


def _product_actions(
    schema: str, data: dict[str, Any], entities: list[dict[str, Any]]
) -> list[tuple[str, str]]:
    """(product_action, product_sku) of each of our events of a self-describing event."""
    if schema.startswith(ECOMMERCE_ACTION_SCHEMA_PREFIX):
        action_type = data.get("type")
        if action_type not in ECOMMERCE_ACTION_TYPES:
            raise _Unmappable(
                f"snowplow ecommerce action type {action_type!r} is not supported (only "
                + ", ".join(ECOMMERCE_ACTION_TYPES)
                + ")"
            )
        skus = _product_skus(entities)
        if not skus:
            raise _Unmappable(f"snowplow ecommerce action {action_type} has no product entity")
        return [(ECOMMERCE_ACTION_TYPES[action_type], sku) for sku in skus]
    for prefix, action in LEGACY_CART_SCHEMA_PREFIXES.items():
        if schema.startswith(prefix):
            sku = data.get("sku")
            if not isinstance(sku, str) or not sku:
                raise _Unmappable(f"snowplow {schema} has no string sku")
            return [(action, sku)]
    raise _Unmappable(f"snowplow self-describing event {schema} is not supported")


def _map_entry(entry: Any) -> list[dict[str, Any]]:
    """Our raw events (not yet finished) for one tracker-protocol entry; raises `_Unmappable`."""
    if not isinstance(entry, dict):
        raise _Unmappable("snowplow entry is not a JSON object")
    kept = dict(entry)
    tracker_event = _text(entry, "e")
    if tracker_event is None:
        raise _Unmappable("snowplow entry has no e (event type)")
    if tracker_event not in MAPPED_TRACKER_EVENTS:
        name = TRACKER_EVENT_NAMES.get(tracker_event, "unknown event type")
        raise _Unmappable(f"snowplow e={tracker_event} ({name}) is not supported")
    session_id = _text(entry, "sid") or _text(entry, "duid")
    if session_id is None:
        raise _Unmappable("snowplow entry has neither sid (domain session id) nor duid")
    client_ts = _epoch_ms(entry, "ttm")
    if client_ts is None:
        client_ts = _epoch_ms(entry, "dtm")
    shared = {
        "session_id": session_id,
        "user_id": _text(entry, "uid") or _text(entry, "duid"),
        "url": _text(entry, "url"),
        "client_ts": client_ts,
    }
    snowplow_event_id = _text(entry, "eid")

    if tracker_event == "pv":
        entities = _context_entities(entry, kept)  # a broken one is refused
        particulars = [_product_event(None, None)]
    elif tracker_event == "ti":
        entities = _context_entities(entry, kept)
        sku = _text(entry, "ti_sk")
        if sku is None:
            raise _Unmappable("snowplow transaction item (e=ti) has no ti_sk")
        particulars = [_product_event("purchase", sku)]
    else:
        particulars, entities = _self_describing_events(entry, kept)
    click = _click_fields(entities)
    if click and len(particulars) > 1:
        raise _Unmappable(
            f"snowplow recommendation_click on an entry of {len(particulars)} products: "
            "a click is on one product"
        )

    events = []
    for index, particular in enumerate(particulars):
        event: dict[str, Any] = {**shared, **particular, **click, "snowplow": kept}
        if snowplow_event_id is not None:
            event["event_id"] = (
                snowplow_event_id
                if len(particulars) == 1
                else str(uuid.uuid5(PRODUCT_EVENT_ID_NAMESPACE, f"{snowplow_event_id}/{index}"))
            )
        events.append(event)
    return events


def _events_from_entries(
    entries: list[Any], *, server_ts: int, limits: CollectorLimits
) -> ParseResult:
    result = ParseResult()
    for entry in entries:
        try:
            raws = _map_entry(entry)
        except _Unmappable as error:
            result.rejections.append(Rejection(str(error), entry))
            continue
        result.extend(finish_events(raws, server_ts=server_ts, source=SOURCE, limits=limits))
    return result


def events_from_snowplow_tp2(
    body: bytes, *, server_ts: int, limits: CollectorLimits
) -> ParseResult:
    """`POST /com.snowplowanalytics.snowplow/tp2`: a `payload_data` batch of entries."""
    document = load_json_body(body, limits)
    entries = document.get("data") if isinstance(document, dict) else None
    schema = document.get("schema") if isinstance(document, dict) else None
    if not (
        isinstance(schema, str)
        and schema.startswith(PAYLOAD_DATA_SCHEMA_PREFIX)
        and isinstance(entries, list)
    ):
        raise RequestRejected(
            400, f"body is not a Snowplow payload_data envelope ({PAYLOAD_DATA_SCHEMA_PREFIX}*)"
        )
    if len(entries) > limits.max_events_per_request:
        raise RequestRejected(
            413,
            f"{len(entries)} Snowplow events in one request; "
            f"at most {limits.max_events_per_request}",
        )
    return _events_from_entries(entries, server_ts=server_ts, limits=limits)


def events_from_snowplow_query(
    query: Mapping[str, str], *, server_ts: int, limits: CollectorLimits
) -> ParseResult:
    """`GET /i` from Snowplow's GET emitter: one entry as query parameters."""
    return _events_from_entries([dict(query)], server_ts=server_ts, limits=limits)
