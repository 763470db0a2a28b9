"""The collector as an AWS Lambda behind API Gateway (HTTP API, payload format 2.0).

The production twin of the local collector: same routes, same parsing (`routes.parse_request`).
Accepted events go to a Kinesis Firehose delivery stream, which lands them in S3 under
``events/date=YYYY-MM-DD/``. A client gets a 2xx only once Firehose has taken every accepted
event of its request; otherwise it gets a 503 and sends the request again (delivery is
at-least-once, `event_id` is the dedupe key).

Environment (read on the first request, when the Firehose client is made too):
``RECS_FIREHOSE_STREAM`` (required) the events stream; ``RECS_FIREHOSE_REJECTED_STREAM``
(optional) a stream for rejections, which are logged otherwise; ``RECS_CORS_ORIGINS``
(optional) comma-separated allowed origins, ``*`` for any. boto3 itself honours
``AWS_ENDPOINT_URL_FIREHOSE`` / ``AWS_ENDPOINT_URL``.

Answers, CORS and rejection records are the local collector's (`app.py`), so a tracker cannot
tell the two apart.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from recs_platform.collection.landing_files import rejection_line
from recs_platform.collection.parsing import CollectorLimits, Rejection, RequestRejected
from recs_platform.collection.routes import (
    PIXEL_GIF,
    PIXEL_PATHS,
    CollectRequest,
    batch_status,
    is_collect_route,
    parse_request,
)
from recs_platform.events.contract import encode_event
from recs_platform.settings import Settings
from recs_platform.web.api_gateway import (
    cors_headers,
    http_method,
    json_response,
    request_headers,
    response,
    route_path,
)
from recs_platform.web.query import parse_query

HEALTH_PATH = "/health"
# Firehose PutRecordBatch quotas.
MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 4 * 1024 * 1024
MAX_RECORD_BYTES = 1000 * 1024
MAX_REASONS_IN_ANSWER = 5
# What a rejection keeps of a request refused whole, or of anything too big for one record.
MAX_REJECTED_RAW_CHARS = 10_000
_PIXEL_BODY = base64.b64encode(PIXEL_GIF).decode("ascii")

logger = logging.getLogger(__name__)
rejections_logger = logging.getLogger(f"{__name__}.rejections")


@dataclass(frozen=True)
class LambdaSettings:
    events_stream: str
    rejected_stream: str | None = None
    cors_origins: frozenset[str] = frozenset()
    limits: CollectorLimits = field(default_factory=CollectorLimits)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> LambdaSettings:
        events_stream = environ.get("RECS_FIREHOSE_STREAM", "").strip()
        if not events_stream:
            raise RuntimeError(
                "RECS_FIREHOSE_STREAM is not set: name the Firehose delivery stream for events"
            )
        return cls(
            events_stream=events_stream,
            rejected_stream=environ.get("RECS_FIREHOSE_REJECTED_STREAM", "").strip() or None,
            cors_origins=frozenset(Settings.from_env(dict(environ)).cors_origins),
        )


def firehose_client() -> Any:
    """A Firehose client with short timeouts; `FirehoseWriter` does the retrying."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=2,
        read_timeout=5,
        retries={"mode": "standard", "total_max_attempts": 2},
    )
    return boto3.client("firehose", config=config)


def _batches(lines: Sequence[bytes]) -> Iterator[list[bytes]]:
    """Runs of lines within one PutRecordBatch call's record and byte quotas."""
    batch: list[bytes] = []
    batch_bytes = 0
    for line in lines:
        if batch and (
            len(batch) == MAX_RECORDS_PER_CALL or batch_bytes + len(line) > MAX_BYTES_PER_CALL
        ):
            yield batch
            batch, batch_bytes = [], 0
        batch.append(line)
        batch_bytes += len(line)
    if batch:
        yield batch


class FirehoseWriter:
    """Puts records on one delivery stream, retrying only those Firehose did not take."""

    def __init__(
        self,
        client: Any,
        stream: str,
        *,
        attempts: int = 4,
        first_backoff_s: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.client = client
        self.stream = stream
        self.attempts = attempts
        self.first_backoff_s = first_backoff_s
        self.sleep = sleep

    def put_lines(self, lines: Sequence[bytes]) -> list[bytes]:
        """Send every line as one record; returns those still refused after the last attempt."""
        pending = list(lines)
        for attempt in range(self.attempts):
            if not pending:
                break
            if attempt:
                self.sleep(self.first_backoff_s * 2 ** (attempt - 1))
            pending = [line for batch in _batches(pending) for line in self._put_batch(batch)]
        if pending:
            logger.error(
                "Firehose stream %s refused %d records after %d attempts",
                self.stream,
                len(pending),
                self.attempts,
            )
        return pending

    def _put_batch(self, batch: list[bytes]) -> list[bytes]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.put_record_batch(
                DeliveryStreamName=self.stream, Records=[{"Data": line} for line in batch]
            )
        except (BotoCoreError, ClientError) as error:
            logger.warning("PutRecordBatch to %s failed: %s", self.stream, error)
            return batch
        if not response.get("FailedPutCount"):
            return []
        return [
            line
            for line, outcome in zip(batch, response["RequestResponses"], strict=True)
            if outcome.get("ErrorCode")
        ]


def _pixel_response(headers: Mapping[str, str]) -> dict[str, Any]:
    no_cache = {**headers, "Cache-Control": "no-store, max-age=0"}
    return response(200, _PIXEL_BODY, "image/gif", no_cache, binary=True)


def _query(event: Mapping[str, Any]) -> dict[str, str]:
    """`rawQueryString` parsed as the local collector parses its query (`queryStringParameters`
    would join the values of a repeated name with commas)."""
    try:
        return parse_query((event.get("rawQueryString") or "").encode("utf-8"))
    except UnicodeError as error:  # a lone surrogate or a percent-escape that is not UTF-8
        raise RequestRejected(400, "query string is not UTF-8") from error


def _body(event: Mapping[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as error:
            raise RequestRejected(400, "body is not valid base64") from error
    # Lone surrogates pass through so that the JSON parser refuses them with its own reason.
    return body.encode("utf-8", "surrogatepass")


def _received_ts(event: Mapping[str, Any]) -> int:
    time_epoch = event.get("requestContext", {}).get("timeEpoch")
    if isinstance(time_epoch, int) and not isinstance(time_epoch, bool):
        return time_epoch
    return time.time_ns() // 1_000_000


def _fitting_rejection_line(received_ts: int, path: str, rejection: Rejection) -> bytes:
    """The local collector's rejection record, its `raw` cut short when too big for one record."""
    line = rejection_line(received_ts, path, rejection.reason, rejection.raw)
    if len(line) <= MAX_RECORD_BYTES:
        return line
    raw_text = orjson.dumps(rejection.raw, default=str).decode("utf-8")
    return rejection_line(received_ts, path, rejection.reason, raw_text[:MAX_REJECTED_RAW_CHARS])


class LambdaCollector:
    """Answers API Gateway requests; `handle` takes the event and returns the response dict."""

    def __init__(
        self,
        settings: LambdaSettings,
        events_writer: FirehoseWriter,
        rejected_writer: FirehoseWriter | None = None,
    ):
        self.settings = settings
        self.events_writer = events_writer
        self.rejected_writer = rejected_writer

    @classmethod
    def from_environment(cls) -> LambdaCollector:
        settings = LambdaSettings.from_environment()
        client = firehose_client()
        rejected_writer = (
            FirehoseWriter(client, settings.rejected_stream) if settings.rejected_stream else None
        )
        return cls(settings, FirehoseWriter(client, settings.events_stream), rejected_writer)

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        method = http_method(event)
        path = route_path(event)
        cors = cors_headers(self.settings.cors_origins, request_headers(event).get("origin"))
        if method == "OPTIONS":
            preflight = {
                "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                "Access-Control-Allow-Headers": "content-type",
                "Access-Control-Max-Age": "86400",
            }
            return response(204, "", None, {**preflight, **cors})
        if method == "GET" and path == HEALTH_PATH:
            return json_response(200, {"status": "ok"}, cors)
        if not is_collect_route(method, path):
            return json_response(404, {"error": f"no route {method} {path}"}, cors)
        return self._collect(event, method, path, cors)

    def _collect(
        self, event: Mapping[str, Any], method: str, path: str, cors: Mapping[str, str]
    ) -> dict[str, Any]:
        received_ts = _received_ts(event)
        try:
            request = CollectRequest(method, path, _query(event), _body(event), received_ts)
            result = parse_request(request, self.settings.limits)
        except RequestRejected as refused:
            sent = (event.get("rawQueryString") if method == "GET" else event.get("body")) or ""
            # As bytes, which the record decodes leniently: the text may hold lone surrogates.
            raw = sent.encode("utf-8", "surrogatepass")[:MAX_REJECTED_RAW_CHARS]
            self._record_rejections([Rejection(refused.reason, raw)], path, received_ts)
            if path in PIXEL_PATHS:
                return _pixel_response(cors)
            return json_response(refused.status, {"error": refused.reason}, cors)

        rejections = list(result.rejections)
        lines = []
        for accepted in result.events:
            line = encode_event(accepted)
            if len(line) > MAX_RECORD_BYTES:
                reason = f"event larger than {MAX_RECORD_BYTES} bytes, Firehose's record limit"
                rejections.append(Rejection(reason, accepted))
            else:
                lines.append(line)
        undelivered = self.events_writer.put_lines(lines)
        self._record_rejections(rejections, path, received_ts)
        if undelivered:
            error = f"{len(undelivered)} of {len(lines)} events not stored; send the request again"
            return json_response(503, {"error": error}, {**cors, "Retry-After": "1"})
        if path in PIXEL_PATHS:
            return _pixel_response(cors)
        answer = {
            "accepted": len(lines),
            "rejected": len(rejections),
            "reasons": [rejection.reason for rejection in rejections[:MAX_REASONS_IN_ANSWER]],
        }
        status = batch_status(path, accepted=len(lines), rejected=len(rejections))
        return json_response(status, answer, cors)

    def _record_rejections(
        self, rejections: Sequence[Rejection], path: str, received_ts: int
    ) -> None:
        """To the rejected stream when there is one; whatever it refuses is logged instead."""
        if not rejections:
            return
        lines = [_fitting_rejection_line(received_ts, path, rejection) for rejection in rejections]
        if self.rejected_writer is not None:
            lines = self.rejected_writer.put_lines(lines)
        for line in lines:
            rejections_logger.warning("%s", line.rstrip(b"\n").decode("utf-8"))


_collector: LambdaCollector | None = None


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point; settings and the Firehose client are made on the first call."""
    global _collector
    if _collector is None:
        _collector = LambdaCollector.from_environment()
    return _collector.handle(event)
