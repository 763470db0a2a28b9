"""The collector's pixel route takes a fast path (`pixel_event`); it must land exactly what the
general path (`parse_request`, which the Lambda handler uses) lands for the same query."""

import asyncio
import time

from starlette.testclient import TestClient

from recs_platform.collection.app import CollectorConfig, create_app
from recs_platform.collection.durable import DurableLandingWriter
from recs_platform.collection.parsing import CollectorLimits
from recs_platform.collection.routes import PIXEL_GIF, CollectRequest, parse_request
from recs_platform.web.query import parse_query
from recs_platform_tests.collection.servers import landed_events, rejected_records
from recs_platform_tests.factories import make_event

LIMITS = CollectorLimits(max_string_chars=200)
NOW = int(time.time() * 1000)
QUERIES = [
    f"session_id=s1&event_type=event_product&action=detail&sku=sku-1&url=%2Fp%2F1&ts={NOW}",
    f"session_id=s2&event_type=pageview&url=/&client_ts={NOW}&event_id=chosen&extra=kept",
    "session_id=s3&event_type=pageview&ts=12+3",
    "session_id=s4&event_type=pageview&ts=not-a-number",
    "event_type=pageview",
    f"session_id=s5&event_type=event_product&sku=sku-5&ts={NOW + 3 * 86_400_000}",
    "session_id=s6&event_type=pageview&url=" + "x" * 201,
    "session_id=s7&event_type=click",
    "session_id=s8&event_type=pageview&client_ts=1&ts=2",
]


def test_the_pixel_lands_what_the_general_path_lands(tmp_path):
    app = create_app(CollectorConfig(tmp_path, limits=LIMITS))
    with TestClient(app) as client:
        for query in QUERIES:
            response = client.get(f"/i?{query}")
            assert (response.status_code, response.content) == (200, PIXEL_GIF)
    expected_events, expected_rejections = [], []
    for query in QUERIES:
        result = parse_request(
            CollectRequest("GET", "/i", parse_query(query.encode()), b"", NOW), LIMITS
        )
        expected_events += result.events
        expected_rejections += [(r.reason, r.raw) for r in result.rejections]

    def comparable(event: dict) -> tuple:
        generated = event["event_id"] != "chosen"
        return tuple(
            (k, v)
            for k, v in event.items()
            if k != "server_ts" and not (k == "event_id" and generated)
        ), list(event)

    landed = landed_events(tmp_path)
    assert [comparable(e) for e in landed] == [comparable(e) for e in expected_events]
    assert all(e["source"] == "pixel" for e in landed)
    assert [(r["reason"], r["raw"]) for r in rejected_records(tmp_path)] == expected_rejections


def test_stop_waits_for_every_pending_group(tmp_path):
    async def scenario():
        writer = DurableLandingWriter(tmp_path)
        await writer.start()
        appends = [asyncio.ensure_future(writer.append([make_event(n)])) for n in range(50)]
        await asyncio.sleep(0)  # the first group is handed over, the rest are pending
        await writer.stop()
        return [task.done() and task.exception() is None for task in appends]

    assert all(asyncio.run(scenario()))
    assert len(landed_events(tmp_path)) == 50
