"""The real `snowplow-tracker`, with its GET and its POST emitter, against the real collector
(uvicorn on 127.0.0.1): every event lands exactly once, mapped, and the unmappable one is
recorded as rejected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests
from snowplow_tracker import Emitter

from recs_platform_tests.collection.servers import (
    landed_events,
    rejected_records,
    running_collector,
)
from recs_platform_tests.collection.test_snowplow import (
    assert_maps_exactly_once,
    now_ms,
    track_a_shopping_session,
)


def test_the_real_tracker_lands_every_event_exactly_once(tmp_path: Path):
    failures: list[Any] = []
    expected_by_session = {}
    with running_collector(tmp_path) as base_url, requests.Session() as session:
        session.trust_env = False  # 127.0.0.1 directly, whatever proxy the environment names
        started = now_ms()
        for method, batch_size in [("get", None), ("post", 3)]:
            emitter = Emitter(
                base_url,
                method=method,
                batch_size=batch_size,
                request_timeout=10,
                session=session,
                on_failure=lambda sent, unsent: failures.append(unsent),
            )
            expected_by_session[method] = track_a_shopping_session(
                [emitter], true_ts=started - 90_000, tag=method
            )
            emitter.flush()
        finished = now_ms()
    assert failures == []

    landing_root = tmp_path / "landing"
    events = landed_events(landing_root)
    rejected = rejected_records(landing_root)
    assert all(started <= event["server_ts"] <= finished for event in events)
    assert len(events) == sum(len(expected) for expected in expected_by_session.values())
    for method, expected in expected_by_session.items():
        sessions = (f"session-{method}", f"other-browser-{method}")
        assert_maps_exactly_once(
            [event for event in events if event["session_id"] in sessions],
            [record["reason"] for record in rejected if record["raw"]["sid"] in sessions],
            expected,
            (started, finished),
        )
    assert sorted(record["source"] for record in rejected) == [
        "/com.snowplowanalytics.snowplow/tp2",
        "/i",
    ]
