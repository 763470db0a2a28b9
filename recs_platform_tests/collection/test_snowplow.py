"""Snowplow's tracker protocol onto the raw-event contract: hand-built entries for each mapping
and rejection, then what the real `snowplow-tracker` sends, captured on 127.0.0.1."""

from __future__ import annotations

import base64
import http.server
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest
import requests
from snowplow_tracker import Emitter, SelfDescribingJson, Subject, Tracker
from snowplow_tracker.events import PageView, SelfDescribing, StructuredEvent

from recs_platform.collection.parsing import (
    CollectorLimits,
    ParseResult,
    RequestRejected,
    finish_event,
)
from recs_platform.collection.snowplow import (
    ECOMMERCE_ACTION_SCHEMA_PREFIX,
    IMPRESSION_SCHEMA_PREFIX,
    PRODUCT_ENTITY_SCHEMA_PREFIX,
    RECOMMENDATION_CLICK_SCHEMA_PREFIX,
    events_from_snowplow_query,
    events_from_snowplow_tp2,
)
from recs_platform.events.contract import validate_event

SERVER_TS = 1_700_000_000_000
LIMITS = CollectorLimits()
ACTION_SCHEMA = ECOMMERCE_ACTION_SCHEMA_PREFIX + "2"
PRODUCT_SCHEMA = PRODUCT_ENTITY_SCHEMA_PREFIX + "0"
TRANSACTION_SCHEMA = "iglu:com.snowplowanalytics.snowplow.ecommerce/transaction/jsonschema/1-0-0"
UNSTRUCT_SCHEMA = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
CONTEXTS_SCHEMA = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
PAYLOAD_DATA_SCHEMA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
EVENT_ID = "c6ef3124-b53a-4b13-a233-0088f79dcbcb"
IMPRESSION_SCHEMA = IMPRESSION_SCHEMA_PREFIX + "0-0"
CLICK_SCHEMA = RECOMMENDATION_CLICK_SCHEMA_PREFIX + "0-0"
IMPRESSION_DATA = {
    "request_id": "5d0c2a",
    "product_sku": "sku-anchor",
    "shown_skus": ["sku-3", "sku-1", "sku-2"],
    "model_name": "session-recommender",
    "model_version": "6",
    "variant": "champion",
    "fallback": None,
}


def base64url(document: Any, *, padded: bool = False) -> str:
    """As the JavaScript tracker encodes (no padding), or as the Python one does (padded)."""
    encoded = base64.urlsafe_b64encode(orjson.dumps(document)).decode()
    return encoded if padded else encoded.rstrip("=")


def entry(**params: Any) -> dict[str, Any]:
    """A page-view entry as a browser tracker sends it; a None parameter is left out."""
    params = {
        "e": "pv",
        "eid": EVENT_ID,
        "sid": "session-1",
        "duid": "browser-1",
        "uid": "user-1",
        "url": "https://shop.example/p/1",
        "dtm": str(SERVER_TS - 5_000),
        "tv": "js-3.24.0",
        "p": "web",
        **params,
    }
    return {name: value for name, value in params.items() if value is not None}


def product(sku: Any) -> dict[str, Any]:
    return {"schema": PRODUCT_SCHEMA, "data": {"id": sku, "name": f"name of {sku}", "price": 9.5}}


def ecommerce_entry(
    action_type: str, entities: list[dict[str, Any]], *, encoded: bool = True, **params: Any
) -> dict[str, Any]:
    action = {"schema": ACTION_SCHEMA, "data": {"type": action_type}}
    unstruct = {"schema": UNSTRUCT_SCHEMA, "data": action}
    contexts = {"schema": CONTEXTS_SCHEMA, "data": entities}
    if encoded:
        json_params = {
            "ue_px": base64url(unstruct),
            "cx": base64url(contexts) if entities else None,
        }
    else:
        json_params = {
            "ue_pr": orjson.dumps(unstruct).decode(),
            "co": orjson.dumps(contexts).decode() if entities else None,
        }
    return entry(e="ue", **{**json_params, **params})


def tp2_body(*entries: Any) -> bytes:
    return orjson.dumps({"schema": PAYLOAD_DATA_SCHEMA, "data": list(entries)})


def map_entries(*entries: Any, limits: CollectorLimits = LIMITS):
    return events_from_snowplow_tp2(tp2_body(*entries), server_ts=SERVER_TS, limits=limits)


def mapped(event: dict[str, Any]) -> tuple[Any, ...]:
    return (
        event["event_type"],
        event["product_action"],
        event["product_sku"],
        event["session_id"],
        event["user_id"],
        event["url"],
    )


# --- hand-built entries ---------------------------------------------------------------------


def test_a_page_view_maps_with_the_tracker_entry_kept():
    sent = entry()
    result = map_entries(sent)
    assert result.rejections == []
    [event] = result.events
    assert validate_event(event) is event
    assert {name: event[name] for name in event if name != "snowplow"} == {
        "event_id": EVENT_ID,
        "session_id": "session-1",
        "user_id": "user-1",
        "event_type": "pageview",
        "product_action": None,
        "product_sku": None,
        "url": "https://shop.example/p/1",
        "client_ts": SERVER_TS - 5_000,
        "server_ts": SERVER_TS,
        "source": "snowplow",
    }
    assert event["snowplow"] == sent


def test_the_true_timestamp_wins_over_the_device_timestamp():
    [event] = map_entries(entry(ttm=str(SERVER_TS - 60_000))).events
    assert event["client_ts"] == SERVER_TS - 60_000


def test_without_any_client_timestamp_the_server_time_is_used():
    [event] = map_entries(entry(dtm=None)).events
    assert event["client_ts"] == SERVER_TS


def test_without_sid_the_domain_user_id_is_the_session_and_uid_falls_back_to_it():
    [event] = map_entries(entry(sid=None, uid=None)).events
    assert (event["session_id"], event["user_id"]) == ("browser-1", "browser-1")


def test_without_uid_or_duid_the_user_is_unknown():
    [event] = map_entries(entry(uid=None, duid=None)).events
    assert (event["session_id"], event["user_id"]) == ("session-1", None)


def test_an_entry_without_eid_gets_a_fresh_event_id():
    [event] = map_entries(entry(eid=None)).events
    assert uuid.UUID(event["event_id"])


@pytest.mark.parametrize(
    ("action_type", "product_action"),
    [
        ("product_view", "detail"),
        ("add_to_cart", "add"),
        ("remove_from_cart", "remove"),
        ("transaction", "purchase"),
    ],
)
@pytest.mark.parametrize("encoded", [True, False], ids=["ue_px+cx", "ue_pr+co"])
def test_each_ecommerce_action_maps_to_its_product_action(action_type, product_action, encoded):
    result = map_entries(ecommerce_entry(action_type, [product("sku-7")], encoded=encoded))
    assert result.rejections == []
    [event] = result.events
    assert mapped(event) == (
        "event_product",
        product_action,
        "sku-7",
        "session-1",
        "user-1",
        "https://shop.example/p/1",
    )
    assert event["event_id"] == EVENT_ID  # one product: the Snowplow event id is kept


def test_a_padded_base64url_payload_is_read_too():
    sent = ecommerce_entry("product_view", [product("sku-7")])
    sent["ue_px"] += "=" * (-len(sent["ue_px"]) % 4)
    sent["cx"] += "=" * (-len(sent["cx"]) % 4)
    assert [event["product_sku"] for event in map_entries(sent).events] == ["sku-7"]


def test_a_transaction_yields_one_purchase_per_product_with_stable_derived_ids():
    entities = [
        {"schema": TRANSACTION_SCHEMA, "data": {"transaction_id": "order-9", "revenue": 30}},
        product("sku-1"),
        product("sku-2"),
        product("sku-3"),
    ]
    sent = ecommerce_entry("transaction", entities)
    result = map_entries(sent)
    assert result.rejections == []
    assert [(event["product_action"], event["product_sku"]) for event in result.events] == [
        ("purchase", "sku-1"),
        ("purchase", "sku-2"),
        ("purchase", "sku-3"),
    ]
    event_ids = [event["event_id"] for event in result.events]
    assert len(set(event_ids)) == 3 and EVENT_ID not in event_ids
    assert event_ids == [event["event_id"] for event in map_entries(sent).events]
    other_ids = [
        event["event_id"] for event in map_entries({**sent, "eid": str(uuid.uuid4())}).events
    ]
    assert not set(other_ids) & set(event_ids)
    kept = result.events[0]["snowplow"]
    assert "ue_px" not in kept and "cx" not in kept
    assert kept["ue_pr"]["data"]["data"] == {"type": "transaction"}
    assert kept["co"]["data"] == entities
    assert kept["tv"] == "js-3.24.0"


def test_a_legacy_transaction_item_is_a_purchase_and_its_header_is_rejected():
    result = map_entries(
        entry(e="tr", tr_id="order-1", tr_tt="19.0"),
        entry(e="ti", ti_id="order-1", ti_sk="sku-4", ti_pr="19.0", ti_qu="1"),
    )
    assert [(event["product_action"], event["product_sku"]) for event in result.events] == [
        ("purchase", "sku-4")
    ]
    assert [rejection.reason for rejection in result.rejections] == [
        "snowplow e=tr (ecommerce transaction header; its items, e=ti, map) is not supported"
    ]


def test_a_legacy_add_to_cart_event_maps():
    cart_event = {
        "schema": "iglu:com.snowplowanalytics.snowplow/add_to_cart/jsonschema/1-0-0",
        "data": {"sku": "sku-5", "quantity": 2},
    }
    sent = entry(e="ue", ue_px=base64url({"schema": UNSTRUCT_SCHEMA, "data": cart_event}))
    [event] = map_entries(sent).events
    assert (event["product_action"], event["product_sku"]) == ("add", "sku-5")


def impression_entry(data: dict[str, Any], *, encoded: bool = True) -> dict[str, Any]:
    unstruct = {"schema": UNSTRUCT_SCHEMA, "data": {"schema": IMPRESSION_SCHEMA, "data": data}}
    if encoded:
        return entry(e="ue", ue_px=base64url(unstruct))
    return entry(e="ue", ue_pr=orjson.dumps(unstruct).decode())


def click(request_id: Any = "5d0c2a", position: Any = 2) -> dict[str, Any]:
    return {"schema": CLICK_SCHEMA, "data": {"request_id": request_id, "position": position}}


@pytest.mark.parametrize("encoded", [True, False], ids=["ue_px", "ue_pr"])
def test_an_impression_event_maps_to_the_same_impression_as_the_collector_s(encoded):
    result = map_entries(impression_entry(IMPRESSION_DATA, encoded=encoded))
    assert result.rejections == []
    [event] = result.events
    # What `POST /collect` lands for the same impression, sent as the contract has it.
    canonical = finish_event(
        {
            "event_id": EVENT_ID,
            "session_id": "session-1",
            "user_id": "user-1",
            "event_type": "impression",
            "product_action": None,
            "url": "https://shop.example/p/1",
            "client_ts": SERVER_TS - 5_000,
            **IMPRESSION_DATA,
        },
        server_ts=SERVER_TS,
        source="snowplow",
        limits=LIMITS,
    )
    assert {name: value for name, value in event.items() if name != "snowplow"} == canonical


def test_a_recommendation_click_context_makes_a_product_view_a_carousel_click():
    sent = ecommerce_entry("product_view", [product("sku-1"), click()])
    [event] = map_entries(sent).events
    assert mapped(event)[:3] == ("event_product", "detail", "sku-1")
    assert (event["request_id"], event["position"]) == ("5d0c2a", 2)
    [plain] = map_entries(ecommerce_entry("product_view", [product("sku-1")])).events
    assert "request_id" not in plain and "position" not in plain


def encoded_ue(inner_event: Any) -> str:
    return base64url({"schema": UNSTRUCT_SCHEMA, "data": inner_event})


LINK_CLICK = {
    "schema": "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1",
    "data": {"targetUrl": "https://elsewhere.example"},
}
REJECTED_ENTRIES = [
    (
        entry(e="se", se_ca="shop", se_ac="click"),
        "snowplow e=se (structured event) is not supported",
    ),
    (entry(e="pp"), "snowplow e=pp (page ping) is not supported"),
    (entry(e="pp", sid=None, duid=None), "snowplow e=pp (page ping) is not supported"),
    (entry(e="xx"), "snowplow e=xx (unknown event type) is not supported"),
    (entry(e=None), "snowplow entry has no e (event type)"),
    (
        entry(sid=None, duid=None),
        "snowplow entry has neither sid (domain session id) nor duid",
    ),
    (
        entry(e="ue", ue_px=encoded_ue(LINK_CLICK)),
        f"snowplow self-describing event {LINK_CLICK['schema']} is not supported",
    ),
    (
        ecommerce_entry("list_view", [product("sku-1")]),
        "snowplow ecommerce action type 'list_view' is not supported "
        "(only product_view, add_to_cart, remove_from_cart, transaction)",
    ),
    (
        ecommerce_entry("add_to_cart", []),
        "snowplow ecommerce action add_to_cart has no product entity",
    ),
    (
        ecommerce_entry(
            "transaction", [{"schema": TRANSACTION_SCHEMA, "data": {"transaction_id": "o"}}]
        ),
        "snowplow ecommerce action transaction has no product entity",
    ),
    (
        ecommerce_entry("add_to_cart", [product("sku-1"), product(17)]),
        "snowplow product entity 1 has no string id",
    ),
    (entry(e="ue"), "snowplow self-describing event (e=ue) has neither ue_pr nor ue_px"),
    (entry(e="ue", ue_px="not base64!"), "snowplow ue_px is not base64url"),
    (entry(e="ue", ue_px="abcde"), "snowplow ue_px is not base64url"),
    (
        entry(e="ue", ue_px=base64.urlsafe_b64encode(b"{not json").decode()),
        "snowplow ue_px is not valid JSON",
    ),
    (
        entry(e="ue", ue_px=base64.urlsafe_b64encode(b"\xff\xfe").decode()),
        "snowplow ue_px is not valid JSON",
    ),
    (entry(e="ue", ue_pr="{"), "snowplow ue_pr is not valid JSON"),
    (
        entry(e="ue", ue_pr=orjson.dumps(LINK_CLICK).decode()),
        "snowplow ue_pr/ue_px is not a "
        "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-* envelope",
    ),
    (
        entry(e="ue", ue_px=encoded_ue(["not", "an", "event"])),
        "snowplow ue_pr/ue_px does not wrap a self-describing event",
    ),
    (
        {**ecommerce_entry("add_to_cart", [product("sku-1")]), "cx": "e30"},
        "snowplow co/cx is not a "
        "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-* envelope",
    ),
    (
        {**ecommerce_entry("add_to_cart", [product("sku-1")]), "cx": "e30x"},
        "snowplow cx is not valid JSON",
    ),
    (
        entry(cx=base64url({"schema": CONTEXTS_SCHEMA, "data": {"id": "sku-1"}})),
        "snowplow co/cx data is not a list of self-describing entities",
    ),
    # The online loop's entities, mapped or not.
    (
        ecommerce_entry("product_view", [product("sku-1"), click(), click()]),
        "snowplow entry has 2 recommendation_click entities",
    ),
    (
        ecommerce_entry("product_view", [product("sku-1"), {"schema": CLICK_SCHEMA, "data": 2}]),
        "snowplow recommendation_click entity has no data object",
    ),
    (
        ecommerce_entry("transaction", [product("sku-1"), product("sku-2"), click()]),
        "snowplow recommendation_click on an entry of 2 products: a click is on one product",
    ),
    (entry(dtm="yesterday"), "snowplow dtm is not an integer (epoch ms)"),
    (entry(ttm="1.7e12"), "snowplow ttm is not an integer (epoch ms)"),
    (entry(ttm="9" * 5000), "snowplow ttm is not an integer (epoch ms)"),
    (entry(sid=42), "snowplow sid is not a string"),
    (entry(e=["pv"]), "snowplow e is not a string"),
    ("e=pv&sid=s", "snowplow entry is not a JSON object"),
]


@pytest.mark.parametrize(("sent", "reason"), REJECTED_ENTRIES)
def test_an_unmappable_entry_is_rejected_with_its_reason_next_to_good_ones(sent, reason):
    result = map_entries(entry(eid="before"), sent, entry(eid="after"))
    assert [event["event_id"] for event in result.events] == ["before", "after"]
    assert [(rejection.reason, rejection.raw) for rejection in result.rejections] == [
        (reason, sent)
    ]


# Entries that map, to events that break the contract: the contract's reasons, as for any event.
CONTRACT_REJECTED_ENTRIES = [
    (
        impression_entry({**IMPRESSION_DATA, "shown_skus": ["sku-1", "sku-1"]}),
        "impression needs shown_skus: a non-empty list of distinct non-empty strings",
    ),
    (
        impression_entry({**IMPRESSION_DATA, "request_id": None}),
        "impression needs request_id (a non-empty string)",
    ),
    (
        impression_entry({**IMPRESSION_DATA, "model_version": None}),
        "impression needs model_version (a non-empty string; null only with a fallback)",
    ),
    (
        ecommerce_entry("product_view", [product("sku-1"), click(position="2")]),
        "position not an integer from 1 to 2147483647 or null",
    ),
    (
        ecommerce_entry("product_view", [product("sku-1"), click(request_id=None)]),
        "event_product needs request_id and position together (a click) or neither",
    ),
    (
        entry(cx=base64url({"schema": CONTEXTS_SCHEMA, "data": [click()]})),
        "pageview carries no request_id or position",
    ),
]


@pytest.mark.parametrize(("sent", "reason"), CONTRACT_REJECTED_ENTRIES)
def test_a_broken_impression_or_click_gets_the_contract_s_reason(sent, reason):
    result = map_entries(entry(eid="before"), sent, entry(eid="after"))
    assert [event["event_id"] for event in result.events] == ["before", "after"]
    [rejection] = result.rejections
    assert rejection.reason == reason
    assert rejection.raw["snowplow"]["eid"] == sent["eid"]  # the mapped event, its entry kept


def test_the_contract_and_the_collector_limits_apply_to_mapped_events():
    result = map_entries(
        entry(eid="future", dtm=str(SERVER_TS + LIMITS.max_future_ms + 1)),
        entry(eid="long", url="https://shop.example/" + "x" * LIMITS.max_string_chars),
        ecommerce_entry("transaction", [product("sku-1"), product("s" * 5000)]),
    )
    assert [event["product_sku"] for event in result.events] == ["sku-1"]
    assert [rejection.reason for rejection in result.rejections] == [
        "client_ts too far in the future",
        f"url longer than {LIMITS.max_string_chars} characters",
        f"product_sku longer than {LIMITS.max_string_chars} characters",
    ]


def test_more_entries_than_the_limit_is_413():
    limits = CollectorLimits(max_events_per_request=2)
    assert len(map_entries(entry(), entry(), limits=limits).events) == 2
    with pytest.raises(RequestRejected) as error:
        map_entries(entry(), entry(), entry(), limits=limits)
    assert error.value.status == 413


def test_a_body_over_the_size_limit_is_413():
    with pytest.raises(RequestRejected) as error:
        map_entries(entry(), limits=CollectorLimits(max_body_bytes=50))
    assert error.value.status == 413


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty body"),
        (b"e=pv&sid=s", "body is not valid UTF-8 JSON"),
        (b"\xff{}", "body is not valid UTF-8 JSON"),
        (orjson.dumps([entry()]), "not a Snowplow payload_data envelope"),
        (orjson.dumps(entry()), "not a Snowplow payload_data envelope"),
        (orjson.dumps({"schema": CONTEXTS_SCHEMA, "data": []}), "payload_data envelope"),
        (orjson.dumps({"schema": PAYLOAD_DATA_SCHEMA, "data": entry()}), "payload_data envelope"),
        (orjson.dumps({"schema": PAYLOAD_DATA_SCHEMA}), "payload_data envelope"),
    ],
)
def test_a_body_that_is_not_a_payload_data_envelope_is_400(body, reason):
    with pytest.raises(RequestRejected) as error:
        events_from_snowplow_tp2(body, server_ts=SERVER_TS, limits=LIMITS)
    assert error.value.status == 400
    assert reason in error.value.reason


def test_the_get_emitter_query_maps_like_a_post_entry():
    query = {name: str(value) for name, value in ecommerce_entry("add_to_cart", []).items()}
    query["cx"] = base64url({"schema": CONTEXTS_SCHEMA, "data": [product("a"), product("b")]})
    result = events_from_snowplow_query(query, server_ts=SERVER_TS, limits=LIMITS)
    assert result.rejections == []
    assert [mapped(event)[:3] for event in result.events] == [
        ("event_product", "add", "a"),
        ("event_product", "add", "b"),
    ]
    assert result.events == map_entries(query).events


def test_an_unmappable_query_is_a_rejection_not_an_error():
    result = events_from_snowplow_query({"e": "se", "sid": "s"}, server_ts=SERVER_TS, limits=LIMITS)
    assert result.events == []
    assert [rejection.reason for rejection in result.rejections] == [
        "snowplow e=se (structured event) is not supported"
    ]


# --- what the real tracker sends --------------------------------------------------------------


@dataclass(frozen=True)
class CapturedRequest:
    method: str
    path: str
    query: dict[str, str]
    content_type: str | None
    body: bytes


class _CapturingHandler(http.server.BaseHTTPRequestHandler):
    captured: list[CapturedRequest]

    def _capture(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        split = urlsplit(self.path)
        self.captured.append(
            CapturedRequest(
                method=self.command,
                path=split.path,
                query=dict(parse_qsl(split.query, keep_blank_values=True)),
                content_type=self.headers.get("Content-Type"),
                body=self.rfile.read(length),
            )
        )
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _capture

    def log_message(self, *args: Any) -> None:  # no line on stderr per request
        pass


@pytest.fixture
def capture_server() -> Iterator[tuple[int, list[CapturedRequest]]]:
    """An HTTP server on 127.0.0.1 that records every request and answers 200."""
    captured: list[CapturedRequest] = []
    handler = type("Handler", (_CapturingHandler,), {"captured": captured})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], captured
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Expected:
    fields: tuple[Any, ...]
    """What `mapped` should read off the event."""
    event_id: str | None = None
    """The tracker's event id; None where one Snowplow event yields several of ours."""
    client_ts: int | None = None
    """The true timestamp given; None where the tracker stamps `dtm` itself."""


def track_a_shopping_session(
    emitters: list[Emitter], true_ts: int, tag: str = "1"
) -> list[Expected]:
    """Page views and every ecommerce action, then a structured event (which must be
    rejected), in session `session-{tag}`; returns what each mapped event should look like."""
    browser = Tracker(
        "shop",
        emitters,
        subject=Subject()
        .set_domain_session_id(f"session-{tag}")
        .set_domain_user_id(f"browser-{tag}")
        .set_user_id(f"user-{tag}"),
        app_id="shop",
    )
    without_session = Tracker(
        "backend", emitters, subject=Subject().set_domain_user_id(f"other-browser-{tag}")
    )
    home, page = "https://shop.example/", "https://shop.example/p/1"
    session = (f"session-{tag}", f"user-{tag}")
    expected = [
        Expected(
            ("pageview", None, None, *session, home),
            browser.track(PageView(page_url=home, page_title="Home")),
        ),
        Expected(
            ("pageview", None, None, *session, page),
            browser.track(PageView(page_url=page, true_timestamp=true_ts)),
            true_ts,
        ),
    ]
    for action_type, action in [
        ("product_view", "detail"),
        ("add_to_cart", "add"),
        ("remove_from_cart", "remove"),
    ]:
        sku = f"sku-{action_type}"
        event = SelfDescribing(
            SelfDescribingJson(ACTION_SCHEMA, {"type": action_type}),
            context=[SelfDescribingJson(PRODUCT_SCHEMA, {"id": sku, "price": 12.5})],
        )
        expected.append(
            Expected(("event_product", action, sku, *session, None), browser.track(event))
        )
    order = SelfDescribing(
        SelfDescribingJson(ACTION_SCHEMA, {"type": "transaction"}),
        context=[
            SelfDescribingJson(TRANSACTION_SCHEMA, {"transaction_id": "order-1", "revenue": 30}),
            *(SelfDescribingJson(PRODUCT_SCHEMA, {"id": sku, "price": 10}) for sku in "abc"),
        ],
    )
    browser.track(order)
    expected += [Expected(("event_product", "purchase", sku, *session, None)) for sku in "abc"]
    expected.append(
        Expected(
            ("pageview", None, None, f"other-browser-{tag}", f"other-browser-{tag}", home),
            without_session.track(PageView(page_url=home)),
        )
    )
    browser.track(StructuredEvent(category="shop", action="scroll"))
    return expected


def assert_maps_exactly_once(
    events: list[dict[str, Any]],
    rejection_reasons: list[str],
    expected: list[Expected],
    tracked_between: tuple[int, int],
) -> None:
    assert rejection_reasons == ["snowplow e=se (structured event) is not supported"]
    assert Counter(mapped(event) for event in events) == Counter(each.fields for each in expected)
    by_id = {event["event_id"]: event for event in events}
    assert len(by_id) == len(events)
    for each in expected:
        if each.event_id is not None:
            event = by_id[each.event_id]
            assert mapped(event) == each.fields
            if each.client_ts is None:
                assert tracked_between[0] <= event["client_ts"] <= tracked_between[1]
            else:
                assert event["client_ts"] == each.client_ts
    for event in events:
        assert event["source"] == "snowplow"
        assert event["snowplow"]["tv"] == "py-1.1.0"


def test_what_the_real_tracker_sends_with_get_and_post_maps_exactly_once(capture_server):
    port, captured = capture_server
    failures: list[Any] = []
    with requests.Session() as session:
        session.trust_env = False  # 127.0.0.1 directly, whatever proxy the environment names
        emitters = [
            Emitter(
                "127.0.0.1",
                protocol="http",
                port=port,
                method=method,
                batch_size=batch_size,
                request_timeout=5,
                session=session,
                on_failure=lambda sent, unsent: failures.append(unsent),
            )
            for method, batch_size in [("get", None), ("post", 3)]
        ]
        started = now_ms()
        expected = track_a_shopping_session(emitters, true_ts=started - 90_000)
        for emitter in emitters:
            emitter.flush()
        finished = now_ms()
    assert failures == []

    gets = [request for request in captured if request.method == "GET"]
    posts = [request for request in captured if request.method == "POST"]
    assert len(gets) == 8 and len(posts) == 3  # one GET per Snowplow event; POSTs batch 3, 3, 2
    from_get, from_post = ParseResult(), ParseResult()
    for request in gets:
        assert (request.path, request.body) == ("/i", b"")
        from_get.extend(
            events_from_snowplow_query(request.query, server_ts=finished, limits=LIMITS)
        )
    for request in posts:
        assert request.path == "/com.snowplowanalytics.snowplow/tp2"
        assert request.content_type == "application/json; charset=utf-8"
        from_post.extend(events_from_snowplow_tp2(request.body, server_ts=finished, limits=LIMITS))

    for result in (from_get, from_post):
        reasons = [rejection.reason for rejection in result.rejections]
        assert_maps_exactly_once(result.events, reasons, expected, (started, finished))
    # Both emitters carried the same Snowplow events, so the ids match (derived ones included)
    # and the warehouse's dedupe on event_id sees one event each.
    assert sorted(event["event_id"] for event in from_get.events) == sorted(
        event["event_id"] for event in from_post.events
    )


def test_what_the_real_tracker_sends_for_an_impression_and_a_click_maps(capture_server):
    port, captured = capture_server
    with requests.Session() as session:
        session.trust_env = False
        emitter = Emitter(
            "127.0.0.1",
            protocol="http",
            port=port,
            method="post",
            batch_size=2,
            request_timeout=5,
            session=session,
        )
        browser = Tracker(
            "shop",
            [emitter],
            subject=Subject().set_domain_session_id("session-9").set_domain_user_id("browser-9"),
        )
        impression_id = browser.track(
            SelfDescribing(SelfDescribingJson(IMPRESSION_SCHEMA, IMPRESSION_DATA))
        )
        click_id = browser.track(
            SelfDescribing(
                SelfDescribingJson(ACTION_SCHEMA, {"type": "product_view"}),
                context=[
                    SelfDescribingJson(PRODUCT_SCHEMA, {"id": "sku-1", "price": 12.5}),
                    SelfDescribingJson(CLICK_SCHEMA, {"request_id": "5d0c2a", "position": 2}),
                ],
            )
        )
        emitter.flush()
    (request,) = captured
    result = events_from_snowplow_tp2(request.body, server_ts=now_ms(), limits=LIMITS)
    assert result.rejections == []
    by_id = {event["event_id"]: event for event in result.events}
    shown, clicked = by_id[impression_id], by_id[click_id]
    assert {name: shown[name] for name in IMPRESSION_DATA} == IMPRESSION_DATA
    assert (shown["event_type"], shown["session_id"]) == ("impression", "session-9")
    assert (clicked["event_type"], clicked["product_action"], clicked["product_sku"]) == (
        "event_product",
        "detail",
        "sku-1",
    )
    assert (clicked["request_id"], clicked["position"]) == ("5d0c2a", 2)


SCHEMAS = Path(__file__).parents[2] / "deployments/snowplow/schemas/com.recs-platform"


def iglu_schema(name: str) -> dict[str, Any]:
    """The shipped Iglu schema `name`/1-0-0, its self-description checked against its path."""
    schema = orjson.loads((SCHEMAS / name / "jsonschema/1-0-0").read_bytes())
    assert schema["self"] == {
        "vendor": "com.recs-platform",
        "name": name,
        "format": "jsonschema",
        "version": "1-0-0",
    }
    return schema


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        (
            "impression",
            [IMPRESSION_DATA, {**IMPRESSION_DATA, "model_version": None, "fallback": "popular"}],
            [
                {**IMPRESSION_DATA, "shown_skus": ["sku-1", "sku-1"]},
                {**IMPRESSION_DATA, "shown_skus": []},
                {**IMPRESSION_DATA, "request_id": ""},
                {key: value for key, value in IMPRESSION_DATA.items() if key != "variant"},
            ],
        ),
        (
            "recommendation_click",
            [click()["data"]],
            [
                click(position="2")["data"],
                click(position=0)["data"],
                click(request_id=None)["data"],
            ],
        ),
    ],
)
def test_the_shipped_iglu_schemas_take_what_the_mapping_takes(name, good, bad):
    """A shop's own Snowplow pipeline validates against these schemas: they accept the data
    the mapping lands and refuse what the contract refuses."""
    import jsonschema

    schema = iglu_schema(name)
    validator = jsonschema.Draft4Validator(
        {key: value for key, value in schema.items() if key not in ("$schema", "self")}
    )
    assert IMPRESSION_SCHEMA.startswith("iglu:com.recs-platform/impression/jsonschema/1-")
    assert CLICK_SCHEMA.startswith("iglu:com.recs-platform/recommendation_click/jsonschema/1-")
    for data in good:
        assert not list(validator.iter_errors(data)), data
    for data in bad:
        assert list(validator.iter_errors(data)), data
    # What the mapping makes of the good data lands as the contract has it.
    for data in good:
        if name == "impression":
            assert map_entries(impression_entry(data)).rejections == []
        else:
            sent = ecommerce_entry(
                "product_view", [product("sku-1"), {"schema": CLICK_SCHEMA, "data": data}]
            )
            assert map_entries(sent).rejections == []
