"""The Lambda collector: API Gateway events in, Firehose (moto) to S3, Snowflake (fakesnow) loads.

moto's Firehose writes S3 objects in a layout of its own; `settle_moto_firehose_objects` (fakes.py)
turns them into the objects real Firehose writes with the production configuration, and documents
exactly which moto limitations that bridges.
"""

from __future__ import annotations

import base64
import gzip
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from botocore.stub import Stubber
from hypothesis import given, settings
from hypothesis import strategies as st

from recs_platform.collection import lambda_handler
from recs_platform.collection.lambda_handler import (
    MAX_BYTES_PER_CALL,
    FirehoseWriter,
    LambdaCollector,
    LambdaSettings,
)
from recs_platform.collection.routes import PIXEL_GIF
from recs_platform.events.landing import arrival_date, iter_lines_recovering
from recs_platform.events.s3_landing import list_s3_dates, list_s3_partition, open_s3_file
from recs_platform.warehouse.snowflake_raw import load_raw_events_partition
from recs_platform_tests.collection.strategies import EVENT_LIKE, JSON_VALUES
from recs_platform_tests.collection.test_app import as_sent
from recs_platform_tests.factories import CAROUSEL_BAD_LINES
from recs_platform_tests.fakes import create_landing_delivery_stream, settle_moto_firehose_objects

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning"),
]

PREFIX = "prod/landing/"
SHOP = "https://shop.test"


def now_ms() -> int:
    return int(time.time() * 1000)


def raw_event(number: int, **overrides: Any) -> dict[str, Any]:
    return {
        "event_id": f"evt-{number}-{uuid.uuid4().hex[:8]}",
        "session_id": f"s-{number // 2}",
        "user_id": f"u-{number}" if number % 2 else None,
        "event_type": "event_product",
        "product_action": "detail",
        "product_sku": f"sku-{number}",
        "url": f"/p/sku-{number}",
        "client_ts": now_ms() - 1000,
        **overrides,
    }


def api_event(
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    base64_body: bool = False,
    query: str = "",
    headers: dict[str, str] | None = None,
    time_epoch: int | None = None,
    stage: str = "$default",
) -> dict[str, Any]:
    """An API Gateway HTTP API request event, payload format 2.0."""
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"content-type": "application/json", **(headers or {})},
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1"},
            "stage": stage,
            "timeEpoch": now_ms() if time_epoch is None else time_epoch,
        },
        "isBase64Encoded": base64_body,
    }
    if body is not None:
        event["body"] = base64.b64encode(body).decode() if base64_body else body.decode()
    return event


def body_of(response: dict[str, Any]) -> Any:
    assert response["headers"]["Content-Type"] == "application/json"
    return orjson.loads(response["body"])


def assert_pixel(response: dict[str, Any]) -> None:
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "image/gif"
    assert response["isBase64Encoded"] is True
    assert base64.b64decode(response["body"]) == PIXEL_GIF


@dataclass
class Landing:
    s3_client: Any
    firehose_client: Any
    bucket: str
    events_stream: str
    rejected_stream: str

    def settle(self) -> None:
        for stream in (self.events_stream, self.rejected_stream):
            settle_moto_firehose_objects(self.s3_client, self.firehose_client, stream)

    def landed_events(self) -> list[dict[str, Any]]:
        """Every line of every finalized landing file, as the production listing finds them."""
        self.settle()
        events = []
        for day in list_s3_dates(self.s3_client, self.bucket, PREFIX):
            for landing_file in list_s3_partition(self.s3_client, self.bucket, PREFIX, day):
                assert landing_file.key.endswith(".jsonl.gz")
                with open_s3_file(self.s3_client, self.bucket, PREFIX, landing_file) as stream:
                    events += [
                        orjson.loads(line) for _, line in iter_lines_recovering(stream, True)
                    ]
        return events

    def rejected_records(self) -> list[dict[str, Any]]:
        self.settle()
        listing = self.s3_client.list_objects_v2(Bucket=self.bucket, Prefix=f"{PREFIX}rejected/")
        records = []
        for entry in sorted(listing.get("Contents", []), key=lambda entry: entry["Key"]):
            body = self.s3_client.get_object(Bucket=self.bucket, Key=entry["Key"])["Body"].read()
            records += [orjson.loads(line) for line in gzip.decompress(body).splitlines()]
        return records


@pytest.fixture
def landing(s3_client, s3_bucket, firehose_client) -> Landing:
    return Landing(
        s3_client,
        firehose_client,
        s3_bucket,
        create_landing_delivery_stream(firehose_client, s3_bucket, PREFIX),
        create_landing_delivery_stream(
            firehose_client,
            s3_bucket,
            PREFIX,
            events_prefix="rejected/date=!{timestamp:yyyy-MM-dd}/",
        ),
    )


@pytest.fixture
def lambda_env(monkeypatch, moto_endpoint, landing) -> Landing:
    """The handler's environment as the SAM template would set it, Firehose pointed at moto."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_FIREHOSE", moto_endpoint)
    monkeypatch.setenv("RECS_FIREHOSE_STREAM", landing.events_stream)
    monkeypatch.setenv("RECS_FIREHOSE_REJECTED_STREAM", landing.rejected_stream)
    monkeypatch.setenv("RECS_CORS_ORIGINS", f"{SHOP}, https://m.shop.test")
    monkeypatch.setattr(lambda_handler, "_collector", None)
    return landing


def call(event: dict[str, Any]) -> dict[str, Any]:
    return lambda_handler.handler(event, None)


def test_accepted_events_land_once_each_where_the_production_raw_load_finds_them(
    lambda_env, snowflake_conn
):
    received_ts = now_ms()
    pixel_ts = received_ts - 5_000
    batch = [raw_event(number) for number in range(3)]
    mixed = [raw_event(3), raw_event(4, event_type="click"), raw_event(5, product_sku=None)]
    mixed.append(raw_event(6))

    batch_answer = call(
        api_event("POST", "/collect", body=orjson.dumps(batch), time_epoch=received_ts)
    )
    pixel_answer = call(
        api_event(
            "GET",
            "/i",
            query=f"session_id=s-px&event_type=event_product&action=add&sku=sku-px&ts={pixel_ts}",
            time_epoch=received_ts,
        )
    )
    mixed_answer = call(
        api_event("POST", "/collect", body=orjson.dumps(mixed), time_epoch=received_ts)
    )

    assert (batch_answer["statusCode"], body_of(batch_answer)) == (
        200,
        {"accepted": 3, "rejected": 0, "reasons": []},
    )
    assert_pixel(pixel_answer)
    assert (mixed_answer["statusCode"], body_of(mixed_answer)) == (
        200,
        {
            "accepted": 2,
            "rejected": 2,
            "reasons": [
                "event_type not one of pageview, event_product, impression",
                "event_product needs product_sku and product_action",
            ],
        },
    )

    lambda_env.settle()
    day = arrival_date(received_ts)
    assert list_s3_dates(lambda_env.s3_client, lambda_env.bucket, PREFIX) == [day]
    files = list_s3_partition(lambda_env.s3_client, lambda_env.bucket, PREFIX, day)
    assert len(files) == 3  # moto writes one object per PutRecordBatch call
    load = load_raw_events_partition(
        snowflake_conn,
        day,
        files,
        lambda landing_file: open_s3_file(
            lambda_env.s3_client, lambda_env.bucket, PREFIX, landing_file
        ),
    )
    assert (load.rows, load.rejected_rows, load.corrupt_files) == (6, 0, [])

    cursor = snowflake_conn.cursor()
    cursor.execute(
        "SELECT event_id, session_id, user_id, event_type, product_action, product_sku, url,"
        " client_ts, server_ts, source FROM raw.events"
    )
    rows = cursor.fetchall()
    cursor.close()
    assert len(rows) == 6
    rows = {row[0]: row[1:] for row in rows}
    fields = ("session_id", "user_id", "event_type", "product_action", "product_sku", "url")
    expected = {
        sent["event_id"]: (
            *(sent[name] for name in fields),
            sent["client_ts"],
            received_ts,
            "collector",
        )
        for sent in [*batch, mixed[0], mixed[3]]
    }
    (pixel_id,) = set(rows) - set(expected)
    uuid.UUID(pixel_id)  # the pixel sent no id: the collector made one
    expected[pixel_id] = (
        "s-px",
        None,
        "event_product",
        "add",
        "sku-px",
        None,
        pixel_ts,
        received_ts,
        "pixel",
    )
    assert {event_id: tuple(row) for event_id, row in rows.items()} == expected

    rejected = lambda_env.rejected_records()
    assert [(record["source"], record["reason"]) for record in rejected] == [
        ("/collect", "event_type not one of pageview, event_product, impression"),
        ("/collect", "event_product needs product_sku and product_action"),
    ]
    assert [record["raw"] for record in rejected] == [mixed[1], mixed[2]]
    assert {record["received_ts"] for record in rejected} == {received_ts}


def impression(number: int, **overrides: Any) -> dict[str, Any]:
    fields = {
        "event_type": "impression",
        "product_action": None,
        "product_sku": "sku-anchor",
        "request_id": "9b2e77",
        "shown_skus": ["sku-a", "sku-b", "sku-c"],
        "model_name": "session-recommender",
        "model_version": "4",
        "variant": "challenger",
    }
    return raw_event(number, **{**fields, **overrides})


def test_an_impression_and_its_click_land_and_load_with_their_fields(lambda_env, snowflake_conn):
    received_ts = now_ms()
    shown = impression(1)
    click = raw_event(2, product_sku="sku-b", request_id="9b2e77", position=2)
    broken = impression(3, shown_skus=["sku-a", "sku-a"])
    answer = call(
        api_event(
            "POST", "/collect", body=orjson.dumps([shown, click, broken]), time_epoch=received_ts
        )
    )
    pixel_query = (
        "session_id=s-px&event_type=impression&product_sku=sku-anchor&request_id=9b2e77"
        "&shown_skus=sku-c%2Csku-a&model_name=m&model_version=4&variant=challenger"
    )
    assert_pixel(call(api_event("GET", "/i", query=pixel_query, time_epoch=received_ts)))

    shown_skus_reason = (
        "impression needs shown_skus: a non-empty list of distinct non-empty strings"
    )
    assert (answer["statusCode"], body_of(answer)) == (
        200,
        {"accepted": 2, "rejected": 1, "reasons": [shown_skus_reason]},
    )
    ((source, reason, raw),) = [
        (record["source"], record["reason"], record["raw"])
        for record in lambda_env.rejected_records()
    ]
    assert (source, reason, raw) == ("/collect", shown_skus_reason, broken)

    day = arrival_date(received_ts)
    files = list_s3_partition(lambda_env.s3_client, lambda_env.bucket, PREFIX, day)
    load = load_raw_events_partition(
        snowflake_conn,
        day,
        files,
        lambda landing_file: open_s3_file(
            lambda_env.s3_client, lambda_env.bucket, PREFIX, landing_file
        ),
    )
    assert (load.rows, load.rejected_rows) == (3, 0)
    cursor = snowflake_conn.cursor()
    cursor.execute(
        "SELECT event_type, product_sku, payload:request_id::VARCHAR, "
        "TO_JSON(payload:shown_skus), payload:variant::VARCHAR, payload:position::INTEGER "
        "FROM raw.events ORDER BY source_file, line_number"
    )
    rows = sorted(tuple(row) for row in cursor.fetchall())
    cursor.close()
    assert rows == [
        ("event_product", "sku-b", "9b2e77", None, None, 2),
        ("impression", "sku-anchor", "9b2e77", '["sku-a","sku-b","sku-c"]', "challenger", None),
        ("impression", "sku-anchor", "9b2e77", '["sku-c","sku-a"]', "challenger", None),
    ]


def test_each_broken_impression_or_click_gets_the_local_collector_s_400_and_record(lambda_env):
    reasons_and_sent = [(reason, as_sent(line)) for line, reason in CAROUSEL_BAD_LINES]
    for reason, sent in reasons_and_sent:
        response = call(api_event("POST", "/collect", body=orjson.dumps([sent])))
        assert (response["statusCode"], body_of(response)) == (
            400,
            {"accepted": 0, "rejected": 1, "reasons": [reason]},
        ), sent
    recorded = [(record["reason"], record["raw"]) for record in lambda_env.rejected_records()]
    key = orjson.dumps
    assert sorted(recorded, key=key) == sorted(reasons_and_sent, key=key)
    assert lambda_env.landed_events() == []


class FlakyFirehose:
    """Forwards PutRecordBatch to a real client, except the records `refuses(call, index)` picks:
    those are reported failed, as Firehose reports a partial failure, and never sent."""

    def __init__(self, inner: Any, refuses):
        self.inner = inner
        self.refuses = refuses
        self.calls: list[list[bytes]] = []

    def put_record_batch(self, DeliveryStreamName: str, Records: list[dict]) -> dict:
        call_number = len(self.calls)
        self.calls.append([record["Data"] for record in Records])
        refused = [self.refuses(call_number, index) for index in range(len(Records))]
        taken = [record for record, no in zip(Records, refused, strict=True) if not no]
        if taken:
            self.inner.put_record_batch(DeliveryStreamName=DeliveryStreamName, Records=taken)
        outcomes = [
            {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."}
            if no
            else {"RecordId": uuid.uuid4().hex}
            for no in refused
        ]
        return {"FailedPutCount": sum(refused), "Encrypted": False, "RequestResponses": outcomes}


def collector_over(client: Any, landing: Landing, delays: list[float]) -> LambdaCollector:
    settings = LambdaSettings(landing.events_stream)
    return LambdaCollector(
        settings, FirehoseWriter(client, settings.events_stream, sleep=delays.append)
    )


def test_records_firehose_refuses_are_sent_again_and_land_once(landing):
    delays: list[float] = []
    flaky = FlakyFirehose(landing.firehose_client, lambda call, index: call == 0 and index % 2)
    batch = [raw_event(number) for number in range(5)]

    answer = collector_over(flaky, landing, delays).handle(
        api_event("POST", "/collect", body=orjson.dumps(batch))
    )

    assert (answer["statusCode"], body_of(answer)["accepted"]) == (200, 5)
    assert [len(call) for call in flaky.calls] == [5, 2]
    assert flaky.calls[1] == [flaky.calls[0][1], flaky.calls[0][3]]
    assert delays == [0.05]
    landed_ids = sorted(event["event_id"] for event in landing.landed_events())
    assert landed_ids == sorted(event["event_id"] for event in batch)


def test_records_firehose_keeps_refusing_give_a_503_and_nothing_reported_accepted(landing):
    delays: list[float] = []
    flaky = FlakyFirehose(landing.firehose_client, lambda call, index: index == 0)
    collector = collector_over(flaky, landing, delays)

    answer = collector.handle(api_event("POST", "/collect", body=orjson.dumps([raw_event(1)])))
    pixel = collector.handle(api_event("GET", "/i", query="session_id=s&event_type=pageview"))

    for response in (answer, pixel):
        assert response["statusCode"] == 503
        assert response["headers"]["Retry-After"] == "1"
        assert body_of(response) == {"error": "1 of 1 events not stored; send the request again"}
    assert len(flaky.calls) == 8  # four attempts per request
    assert delays == [0.05, 0.1, 0.2] * 2
    assert landing.landed_events() == []


def test_retries_with_a_stubbed_client_resend_only_the_failed_records(fake_aws_env):
    import boto3

    client = boto3.client("firehose", region_name="us-east-1")
    sent: list[list[bytes]] = []
    client.meta.events.register(
        "before-parameter-build.firehose.PutRecordBatch",
        lambda params, **_: sent.append([record["Data"] for record in params["Records"]]),
    )
    failed = {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}
    ok = {"RecordId": "r"}
    writer = FirehoseWriter(client, "events", sleep=lambda seconds: None)
    lines = [b'{"n":%d}\n' % number for number in range(3)]
    with Stubber(client) as stubber:
        stubber.add_response(
            "put_record_batch", {"FailedPutCount": 2, "RequestResponses": [failed, ok, failed]}
        )
        stubber.add_client_error(
            "put_record_batch", "ServiceUnavailableException", http_status_code=400
        )
        stubber.add_response(
            "put_record_batch", {"FailedPutCount": 1, "RequestResponses": [ok, failed]}
        )
        stubber.add_response("put_record_batch", {"FailedPutCount": 0, "RequestResponses": [ok]})
        assert writer.put_lines(lines) == []
        stubber.assert_no_pending_responses()
    assert sent == [lines, [lines[0], lines[2]], [lines[0], lines[2]], [lines[2]]]


def test_lines_go_in_batches_within_the_put_record_batch_quotas():
    class Recording:
        def __init__(self):
            self.calls: list[list[bytes]] = []

        def put_record_batch(self, DeliveryStreamName: str, Records: list[dict]) -> dict:
            self.calls.append([record["Data"] for record in Records])
            return {"FailedPutCount": 0, "RequestResponses": [{"RecordId": "r"}] * len(Records)}

    client = Recording()
    small = [b"{}\n"] * 1_200
    big = [b"x" * (900 * 1024)] * 5
    assert FirehoseWriter(client, "events").put_lines(small + big) == []
    assert [len(call) for call in client.calls] == [500, 500, 204, 1]
    assert all(sum(map(len, call)) <= MAX_BYTES_PER_CALL for call in client.calls)


def test_the_pixel_always_answers_a_gif_and_rejections_are_logged_without_a_stream(
    lambda_env, monkeypatch, caplog
):
    monkeypatch.delenv("RECS_FIREHOSE_REJECTED_STREAM")
    good = call(
        api_event("GET", "/pixel.gif", query="session_id=s9&event_type=pageview&url=%2F&url=%2Fx")
    )
    bad = call(api_event("GET", "/i", query="event_type=pageview"))
    not_utf8 = call(api_event("GET", "/i", query="session_id=%ff%fe"))
    lone_surrogate = call(api_event("GET", "/i", query="session_id=\udcff"))
    bad_ts = call(api_event("GET", "/i", query="session_id=s&event_type=pageview&ts=soon"))
    for response in (good, bad, not_utf8, lone_surrogate, bad_ts):
        assert_pixel(response)

    (landed,) = lambda_env.landed_events()
    assert (landed["session_id"], landed["url"], landed["source"]) == ("s9", "/", "pixel")
    logged = [
        orjson.loads(record.getMessage())
        for record in caplog.records
        if record.name == "recs_platform.collection.lambda_handler.rejections"
    ]
    assert [(record["source"], record["reason"], record["raw"]) for record in logged] == [
        ("/i", "session_id missing or not a non-empty string", {"event_type": "pageview"}),
        ("/i", "query string is not UTF-8", "session_id=%ff%fe"),
        ("/i", "query string is not UTF-8", "session_id=\ufffd\ufffd\ufffd"),
        (
            "/i",
            "client_ts is not an integer",
            {"session_id": "s", "event_type": "pageview", "ts": "soon"},
        ),
    ]
    assert lambda_env.rejected_records() == []


BIG_EVENT = raw_event(0, **{f"field_{number}": "x" * 4000 for number in range(256)})


@pytest.mark.parametrize(
    ("request_event", "status", "answer"),
    [
        pytest.param(
            api_event("POST", "/collect", body=b"{not json"),
            400,
            {"error": "body is not valid UTF-8 JSON"},
            id="invalid-json",
        ),
        pytest.param(
            api_event("POST", "/collect", body=b""), 400, {"error": "empty body"}, id="empty"
        ),
        pytest.param(
            api_event("POST", "/collect", body=b"\xff\xfe[]", base64_body=True),
            400,
            {"error": "body is not valid UTF-8 JSON"},
            id="base64-not-utf8",
        ),
        pytest.param(
            {**api_event("POST", "/collect"), "body": "[\udcff]"},
            400,
            {"error": "body is not valid UTF-8 JSON"},
            id="lone-surrogate",
        ),
        pytest.param(
            {**api_event("POST", "/collect"), "body": "not base64!", "isBase64Encoded": True},
            400,
            {"error": "body is not valid base64"},
            id="invalid-base64",
        ),
        pytest.param(
            api_event("POST", "/collect", body=b"x" * (1_048_576 + 1)),
            413,
            {"error": "body larger than 1048576 bytes"},
            id="too-large",
        ),
        pytest.param(
            api_event("POST", "/collect", body=b"[" + b",".join([b"{}"] * 501) + b"]"),
            413,
            {"error": "501 events in one request; at most 500"},
            id="too-many-events",
        ),
        pytest.param(
            api_event("POST", "/collect", body=orjson.dumps([{"event_type": "pageview"}, 7])),
            400,
            {
                "accepted": 0,
                "rejected": 2,
                "reasons": ["session_id missing or not a non-empty string", "not a JSON object"],
            },
            id="every-event-bad",
        ),
        pytest.param(
            api_event("POST", "/collect", body=orjson.dumps(BIG_EVENT)),
            400,
            {
                "accepted": 0,
                "rejected": 1,
                "reasons": ["event larger than 1024000 bytes, Firehose's record limit"],
            },
            id="event-over-firehose-record-limit",
        ),
        pytest.param(
            api_event("GET", "/collect"), 404, {"error": "no route GET /collect"}, id="get-collect"
        ),
        pytest.param(
            api_event("POST", "/i", body=b"[]"), 404, {"error": "no route POST /i"}, id="post-pixel"
        ),
        pytest.param(
            api_event("GET", "/nope"), 404, {"error": "no route GET /nope"}, id="unknown-route"
        ),
    ],
)
def test_unusable_requests_get_a_4xx_with_a_json_reason(lambda_env, request_event, status, answer):
    response = call(request_event)
    assert (response["statusCode"], body_of(response)) == (status, answer)
    assert lambda_env.landed_events() == []


SNOWPLOW_PAYLOAD_SCHEMA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"


def test_snowplow_trackers_get_the_same_routes_and_a_200_even_when_all_is_rejected(lambda_env):
    page_view = {"e": "pv", "sid": "sp-session", "url": "https://shop.test/", "p": "web"}
    tp2 = "/com.snowplowanalytics.snowplow/tp2"

    posted = call(
        api_event(
            "POST",
            tp2,
            body=orjson.dumps(
                {"schema": SNOWPLOW_PAYLOAD_SCHEMA, "data": [page_view, {"e": "pv"}]}
            ),
        )
    )
    refused = call(
        api_event(
            "POST",
            tp2,
            body=orjson.dumps({"schema": SNOWPLOW_PAYLOAD_SCHEMA, "data": [{"e": "pv"}]}),
        )
    )
    pixel = call(api_event("GET", "/i", query="e=pv&sid=sp-get&url=%2Fcart"))

    assert (posted["statusCode"], body_of(posted)["accepted"]) == (200, 1)
    assert (refused["statusCode"], body_of(refused)["accepted"]) == (200, 0)
    assert_pixel(pixel)
    landed = sorted(
        (event["session_id"], event["url"], event["source"]) for event in lambda_env.landed_events()
    )
    assert landed == [
        ("sp-get", "/cart", "snowplow"),
        ("sp-session", "https://shop.test/", "snowplow"),
    ]
    assert len(lambda_env.rejected_records()) == 2


def test_health_and_an_empty_batch_answer_200(lambda_env):
    health = call(api_event("GET", "/health"))
    assert (health["statusCode"], body_of(health)) == (200, {"status": "ok"})
    empty = call(api_event("POST", "/collect", body=b"[]"))
    assert (empty["statusCode"], body_of(empty)) == (
        200,
        {"accepted": 0, "rejected": 0, "reasons": []},
    )


def test_a_base64_body_and_a_named_stage_are_understood(lambda_env):
    sent = raw_event(1)
    response = call(
        api_event(
            "POST", "/prod/collect", body=orjson.dumps([sent]), base64_body=True, stage="prod"
        )
    )
    assert (response["statusCode"], body_of(response)["accepted"]) == (200, 1)
    (landed,) = lambda_env.landed_events()
    assert landed["event_id"] == sent["event_id"]


def test_cors_follows_the_allow_list_from_the_environment(lambda_env):
    body = orjson.dumps([raw_event(1)])
    allowed = call(api_event("POST", "/collect", body=body, headers={"origin": SHOP}))
    assert allowed["headers"]["Access-Control-Allow-Origin"] == SHOP
    assert allowed["headers"]["Vary"] == "Origin"
    mobile = call(api_event("GET", "/health", headers={"Origin": "https://m.shop.test"}))
    assert mobile["headers"]["Access-Control-Allow-Origin"] == "https://m.shop.test"
    other = call(api_event("POST", "/collect", body=body, headers={"origin": "https://evil.test"}))
    assert "Access-Control-Allow-Origin" not in other["headers"]

    preflight = call(
        api_event(
            "OPTIONS",
            "/collect",
            headers={"origin": SHOP, "access-control-request-method": "POST"},
        )
    )
    assert preflight["statusCode"] == 204
    assert preflight["headers"]["Access-Control-Allow-Origin"] == SHOP
    assert "POST" in preflight["headers"]["Access-Control-Allow-Methods"]
    assert preflight["headers"]["Access-Control-Allow-Headers"] == "content-type"
    refused = call(api_event("OPTIONS", "/collect", headers={"origin": "https://evil.test"}))
    assert "Access-Control-Allow-Origin" not in refused["headers"]


def test_any_origin_with_a_star(lambda_env, monkeypatch):
    monkeypatch.setenv("RECS_CORS_ORIGINS", "*")
    response = call(api_event("GET", "/health", headers={"origin": "https://anyone.test"}))
    assert response["headers"]["Access-Control-Allow-Origin"] == "https://anyone.test"


def test_settings_and_client_are_made_on_the_first_call_only(lambda_env, monkeypatch):
    import boto3

    made: list[str] = []
    real_client = boto3.client
    monkeypatch.setattr(
        boto3,
        "client",
        lambda service, **kwargs: made.append(service) or real_client(service, **kwargs),
    )
    assert lambda_handler._collector is None
    for _ in range(3):
        assert call(api_event("GET", "/health"))["statusCode"] == 200
    assert made == ["firehose"]


def test_importing_the_handler_reads_no_setting_and_loads_no_aws_library():
    check = (
        "import sys; from recs_platform.collection import lambda_handler as module; "
        "assert module._collector is None; "
        "assert not {'boto3', 'botocore', 'dagster'} & set(sys.modules), sorted(sys.modules)"
    )
    environment = {"PATH": os.environ.get("PATH", ""), "RECS_FIREHOSE_STREAM": ""}
    subprocess.run([sys.executable, "-c", check], check=True, env=environment, timeout=30)


def test_a_missing_stream_setting_is_named(monkeypatch):
    monkeypatch.delenv("RECS_FIREHOSE_STREAM", raising=False)
    monkeypatch.setattr(lambda_handler, "_collector", None)
    with pytest.raises(RuntimeError, match="RECS_FIREHOSE_STREAM is not set"):
        call(api_event("GET", "/health"))


class AcceptingFirehose:
    def put_record_batch(self, DeliveryStreamName: str, Records: list[dict]) -> dict:
        return {"FailedPutCount": 0, "RequestResponses": [{"RecordId": "r"}] * len(Records)}


@settings(max_examples=500, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "OPTIONS", "HEAD"]),
    path=st.sampled_from(["/collect", "/i", "/pixel.gif", "/health", "/", "/nope"]),
    body=st.one_of(
        st.none(),
        st.binary(max_size=200),
        st.lists(EVENT_LIKE, max_size=10).map(orjson.dumps),
        JSON_VALUES.map(orjson.dumps),
    ),
    base64_body=st.booleans(),
    query=st.text(st.characters(exclude_categories=()), max_size=40)
    | st.text(st.characters(categories=["Cs"]), max_size=3),
    origin=st.sampled_from([None, SHOP, "https://evil.test", ""]),
)
def test_no_generated_request_gets_a_5xx(method, path, body, base64_body, query, origin):
    settings_ = LambdaSettings("events", cors_origins=frozenset({SHOP}))
    collector = LambdaCollector(settings_, FirehoseWriter(AcceptingFirehose(), "events"))
    request_event = api_event(
        method,
        path,
        body=body if base64_body else None,
        base64_body=base64_body,
        query=query,
        headers={"origin": origin} if origin is not None else {},
    )
    if body is not None and not base64_body:
        request_event["body"] = body.decode("utf-8", "surrogateescape")
    response = collector.handle(request_event)
    assert response["statusCode"] < 500, response
    if method == "GET" and path in ("/i", "/pixel.gif"):
        assert_pixel(response)
