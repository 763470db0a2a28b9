"""Which parser answers which request: shared by the ASGI collector and the Lambda handler."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass

from recs_platform.collection.parsing import (
    CollectorLimits,
    ParseResult,
    RequestRejected,
    event_from_query,
    events_from_json_body,
)

PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
PIXEL_PATHS = ("/i", "/pixel.gif")
COLLECT_PATH = "/collect"
SNOWPLOW_POST_PATH = "/com.snowplowanalytics.snowplow/tp2"


@dataclass(frozen=True)
class CollectRequest:
    method: str
    path: str
    query: Mapping[str, str]
    body: bytes
    server_ts: int


def batch_status(path: str, *, accepted: int, rejected: int) -> int:
    """200, or 400 when every event of a batch was rejected. Snowplow trackers treat a 4xx as
    final and drop the batch, so tp2 answers 200 like Snowplow's own collector (the rejections
    are recorded either way)."""
    if rejected and not accepted and path != SNOWPLOW_POST_PATH:
        return 400
    return 200


def is_collect_route(method: str, path: str) -> bool:
    return (method == "GET" and path in PIXEL_PATHS) or (
        method == "POST" and path in (COLLECT_PATH, SNOWPLOW_POST_PATH)
    )


def parse_request(request: CollectRequest, limits: CollectorLimits) -> ParseResult:
    """The events of one collection request; raises `RequestRejected` for an unusable one."""
    if request.method == "GET" and request.path in PIXEL_PATHS:
        if "e" in request.query:  # Snowplow's GET emitter speaks the tracker protocol
            from recs_platform.collection import snowplow

            return snowplow.events_from_snowplow_query(
                request.query, server_ts=request.server_ts, limits=limits
            )
        return event_from_query(request.query, server_ts=request.server_ts, limits=limits)
    if request.method == "POST" and request.path == COLLECT_PATH:
        return events_from_json_body(request.body, server_ts=request.server_ts, limits=limits)
    if request.method == "POST" and request.path == SNOWPLOW_POST_PATH:
        from recs_platform.collection import snowplow

        return snowplow.events_from_snowplow_tp2(
            request.body, server_ts=request.server_ts, limits=limits
        )
    raise RequestRejected(404, f"no collection endpoint {request.method} {request.path}")
