"""The collector app in process (Starlette's TestClient drives the ASGI app, lifespan included)."""

import time

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from recs_platform.collection.app import CollectorConfig, create_app
from recs_platform.collection.parsing import CollectorLimits
from recs_platform.collection.routes import PIXEL_GIF
from recs_platform_tests.collection.servers import landed_events, rejected_records
from recs_platform_tests.collection.strategies import EVENT_LIKE, JSON_VALUES
from recs_platform_tests.factories import CAROUSEL_BAD_LINES

LIMITS = CollectorLimits(max_body_bytes=20_000, max_events_per_request=20, max_string_chars=200)


def now_ms() -> int:
    return int(time.time() * 1000)


def event(number: int = 0, **overrides) -> dict:
    return {
        "session_id": f"s-{number}",
        "event_type": "event_product",
        "product_action": "detail",
        "product_sku": f"sku-{number}",
        "url": f"/p/sku-{number}",
        "client_ts": now_ms() - 1000,
        **overrides,
    }


@pytest.fixture
def collector(tmp_path):
    app = create_app(CollectorConfig(tmp_path, limits=LIMITS, cors_origins=("https://shop.test",)))
    with TestClient(app) as client:
        yield client


def test_a_mixed_batch_lands_its_good_events_and_names_the_bad_ones(collector, tmp_path):
    batch = [
        event(1),
        event(2, event_type="click"),
        event(3, client_ts=now_ms() + 3 * 86_400_000),
        event(4, client_ts=now_ms() - 90 * 86_400_000),
        event(5, url="x" * 201),
        event(6),
    ]
    response = collector.post(
        "/collect", content=orjson.dumps(batch), headers={"content-type": "text/plain"}
    )
    assert response.status_code == 200
    assert response.json() == {
        "accepted": 2,
        "rejected": 4,
        "reasons": [
            "event_type not one of pageview, event_product, impression",
            "client_ts too far in the future",
            "client_ts too far in the past",
            "url longer than 200 characters",
        ],
    }
    collector.__exit__(None, None, None)
    landed = landed_events(tmp_path)
    assert [e["product_sku"] for e in landed] == ["sku-1", "sku-6"]
    assert all(e["source"] == "collector" and e["server_ts"] >= e["client_ts"] for e in landed)
    assert len({e["event_id"] for e in landed}) == 2
    assert len(rejected_records(tmp_path)) == 4


def impression(number: int = 0, **overrides) -> dict:
    """What the carousel on the page of sku-0 showed, as recs.js sends it."""
    return event(
        number,
        event_type="impression",
        product_action=None,
        product_sku="sku-0",
        request_id="a3f1c2",
        shown_skus=["sku-4", "sku-2", "sku-6"],
        model_name="session-recommender",
        model_version="3",
        variant="champion",
        fallback=None,
        **overrides,
    )


def as_sent(line: bytes) -> dict:
    """A contract line as a browser would send it now: the collector sets the server's fields."""
    sent = orjson.loads(line)
    for name in ("server_ts", "source"):
        sent.pop(name)
    return {**sent, "client_ts": now_ms() - 1000}


def test_an_impression_and_its_click_land_with_their_fields(collector, tmp_path):
    shown = impression(1)
    click = event(2, product_sku="sku-2", request_id="a3f1c2", position=2)
    response = collector.post("/collect", json=[shown, click])
    assert response.json() == {"accepted": 2, "rejected": 0, "reasons": []}
    collector.__exit__(None, None, None)
    landed_impression, landed_click = landed_events(tmp_path)
    assert landed_impression == {
        **shown,
        "event_id": landed_impression["event_id"],
        "server_ts": landed_impression["server_ts"],
        "source": "collector",
    }
    assert (landed_click["request_id"], landed_click["position"]) == ("a3f1c2", 2)
    assert rejected_records(tmp_path) == []


@pytest.mark.parametrize(("line", "reason"), CAROUSEL_BAD_LINES)
def test_a_broken_impression_or_click_gets_a_400_and_a_rejection_record(
    collector, tmp_path, line, reason
):
    sent = as_sent(line)
    response = collector.post("/collect", json=[sent])
    assert response.status_code == 400
    assert response.json() == {"accepted": 0, "rejected": 1, "reasons": [reason]}
    collector.__exit__(None, None, None)
    assert landed_events(tmp_path) == []
    (record,) = rejected_records(tmp_path)
    assert (record["reason"], record["raw"]) == (reason, sent)


def test_the_pixel_carries_an_impression_and_a_click(collector, tmp_path):
    shown = {k: v for k, v in impression(1).items() if k != "shown_skus" and v is not None}
    collector.get("/i", params={**shown, "shown_skus": "sku-4,sku-2,sku-6"})
    collector.get("/i", params={**event(2), "request_id": "a3f1c2", "position": "2"})
    collector.get("/i", params={**event(3), "request_id": "a3f1c2", "position": "second"})
    collector.get("/i", params={**shown, "shown_skus": "sku-4,,sku-6"})
    collector.__exit__(None, None, None)
    landed_impression, landed_click = landed_events(tmp_path)
    assert landed_impression["shown_skus"] == ["sku-4", "sku-2", "sku-6"]
    assert landed_impression["model_version"] == "3" and "fallback" not in landed_impression
    assert (landed_click["request_id"], landed_click["position"]) == ("a3f1c2", 2)
    assert [r["reason"] for r in rejected_records(tmp_path)] == [
        "position not an integer from 1 to 2147483647 or null",
        "impression needs shown_skus: a non-empty list of distinct non-empty strings",
    ]


def test_an_event_id_sent_by_the_client_is_kept(collector, tmp_path):
    collector.post("/collect", json=[event(1, event_id="client-chosen-id")])
    collector.__exit__(None, None, None)
    assert [e["event_id"] for e in landed_events(tmp_path)] == ["client-chosen-id"]


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"{not json", 400, "body is not valid UTF-8 JSON"),
        (b"", 400, "empty body"),
        (b"\xff\xfe[]", 400, "body is not valid UTF-8 JSON"),
        (b"[" + b",".join([b"{}"] * 21) + b"]", 413, "21 events in one request; at most 20"),
        (b"x" * 20_001, 413, "body larger than 20000 bytes"),
        (orjson.dumps([{"event_type": "pageview"}]), 400, None),
    ],
)
def test_unusable_requests_get_a_4xx_with_a_json_reason(collector, tmp_path, body, status, reason):
    response = collector.post("/collect", content=body)
    assert response.status_code == status
    if reason:
        assert response.json() == {"error": reason}
    else:
        assert response.json()["reasons"] == ["session_id missing or not a non-empty string"]
    collector.__exit__(None, None, None)
    assert landed_events(tmp_path) == []
    assert len(rejected_records(tmp_path)) == 1


def test_the_pixel_always_answers_a_gif_and_records_what_it_refused(collector, tmp_path):
    good = collector.get("/i", params={"session_id": "s9", "event_type": "pageview", "url": "/"})
    bad = collector.get("/pixel.gif", params={"event_type": "pageview"})
    not_utf8 = collector.get("/i?session_id=%ff%fe")
    for response in (good, bad, not_utf8):
        assert response.status_code == 200
        assert response.content == PIXEL_GIF
        assert response.headers["content-type"] == "image/gif"
    collector.__exit__(None, None, None)
    (landed,) = landed_events(tmp_path)
    assert (landed["session_id"], landed["source"]) == ("s9", "pixel")
    assert [r["reason"] for r in rejected_records(tmp_path)] == [
        "session_id missing or not a non-empty string",
        "query string is not UTF-8",
    ]


def test_cors_follows_the_allow_list(collector):
    allowed = collector.post("/collect", json=[event(1)], headers={"origin": "https://shop.test"})
    assert allowed.headers["access-control-allow-origin"] == "https://shop.test"
    other = collector.post("/collect", json=[event(2)], headers={"origin": "https://evil.test"})
    assert "access-control-allow-origin" not in other.headers
    preflight = collector.options(
        "/collect", headers={"origin": "https://shop.test", "access-control-request-method": "POST"}
    )
    assert preflight.status_code == 204
    assert "POST" in preflight.headers["access-control-allow-methods"]


def test_health_and_unknown_routes(collector):
    assert collector.get("/health").json() == {"status": "ok"}
    missing = collector.get("/collect")
    assert missing.status_code == 404 and missing.json() == {"error": "no route GET /collect"}


_BODIES = st.one_of(
    st.binary(max_size=300),
    st.lists(EVENT_LIKE, max_size=25).map(orjson.dumps),
    JSON_VALUES.map(orjson.dumps),
)


@settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS"]),
    path=st.sampled_from(
        ["/collect", "/i", "/pixel.gif", "/health", "/nope", "/com.snowplowanalytics.snowplow/tp2"]
    ),
    body=_BODIES,
    query=st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=5),
    content_type=st.sampled_from(["application/json", "text/plain", "image/png"]),
)
def test_no_generated_request_gets_a_5xx(collector, method, path, body, query, content_type):
    response = collector.request(
        method,
        path,
        params=query,
        content=body if method != "GET" else None,
        headers={"content-type": content_type},
    )
    assert response.status_code < 500, (response.status_code, response.text)
    if path in ("/i", "/pixel.gif") and method == "GET":
        assert response.content == PIXEL_GIF


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(bad=st.lists(EVENT_LIKE, min_size=1, max_size=8), where=st.integers(0, 8))
def test_good_events_survive_any_bad_neighbours(tmp_path_factory, bad, where):
    root = tmp_path_factory.mktemp("landing")
    good = [event(1, event_id="good-1"), event(2, event_id="good-2")]
    batch = bad[:where] + good[:1] + bad[where:] + good[1:]
    with TestClient(create_app(CollectorConfig(root, limits=LIMITS))) as client:
        response = client.post("/collect", content=orjson.dumps(batch))
        assert response.status_code == 200
    landed_ids = [e["event_id"] for e in landed_events(root)]
    assert {"good-1", "good-2"} <= set(landed_ids)
    assert len(landed_ids) + len(rejected_records(root)) == len(batch)


def test_snowplow_batches_get_200_even_when_nothing_maps(collector, tmp_path):
    payload = {
        "schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
        "data": [{"e": "se", "eid": "e-1", "sid": "s-1", "dtm": str(now_ms()), "se_ca": "x"}],
    }
    response = collector.post("/com.snowplowanalytics.snowplow/tp2", json=payload)
    assert response.status_code == 200
    assert response.json()["accepted"] == 0 and response.json()["rejected"] == 1
    collector.__exit__(None, None, None)
    assert len(rejected_records(tmp_path)) == 1


def test_the_query_parser_decodes_like_the_standard_library():
    from urllib.parse import parse_qsl, urlencode

    from recs_platform.web.query import parse_query

    query = {"a b": "x/y+z&=", "url": "/p/é?x=1", "sku": "sku-1", "empty": ""}
    encoded = urlencode(query).encode()
    assert parse_query(encoded) == dict(parse_qsl(encoded.decode(), keep_blank_values=True))
    assert parse_query(b"sku=1&sku=2&&flag") == {"sku": "1", "flag": ""}
    with pytest.raises(UnicodeDecodeError):
        parse_query(b"sku=%ff")
