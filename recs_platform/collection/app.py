"""The collector: a small ASGI app on uvicorn. `recs-platform collector` runs it.

Routes: `GET /i` and `/pixel.gif` (1x1 GIF; our field names or Snowplow's GET emitter),
`POST /collect` (JSON array of raw events; text/plain too, for `navigator.sendBeacon`),
`POST /com.snowplowanalytics.snowplow/tp2` (Snowplow's POST emitter), `GET /health`,
`GET /recs.js` (the tracker), `GET /recommend` (the facade) and, with a storefront configured,
the shop's pages under `/shop` (`recs_platform/serving/storefront.py`). A 2xx means every
accepted event is on disk (fsynced): one writer process (`landing_process.py`) parses the
pixel's queries and writes every landing file. Bad input gets a 4xx with a JSON reason, and the
pixel still answers with its GIF; a 503 means the writer process is gone (nothing is acked).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import orjson

from recs_platform.asgi import BodyTooLarge, read_body
from recs_platform.collection.durable import DurableLandingWriter, LandingUnavailable
from recs_platform.collection.landing_files import rejection_line
from recs_platform.collection.parsing import CollectorLimits, RequestRejected
from recs_platform.collection.routes import (
    PIXEL_GIF,
    PIXEL_PATHS,
    CollectRequest,
    batch_status,
    is_collect_route,
    parse_request,
)
from recs_platform.serving.facade import (
    RECOMMEND_PATH,
    BadRecommendQuery,
    EndpointUnavailable,
    parse_recommend_query,
    recommend_answer,
)
from recs_platform.serving.storefront import SCRIPT_PATH as STOREFRONT_SCRIPT_PATH
from recs_platform.serving.storefront import is_shop_path
from recs_platform.web.query import parse_query

if TYPE_CHECKING:
    from recs_platform.serving.storefront import Storefront

log = logging.getLogger(__name__)

_REASONS_SHOWN = 5
_REJECTED_BODY_BYTES = 10_000


@dataclass(frozen=True)
class CollectorConfig:
    landing_root: Path
    limits: CollectorLimits = field(default_factory=CollectorLimits)
    cors_origins: tuple[str, ...] = ()
    rotate_bytes: int = 64 * 1024 * 1024
    rotate_seconds: float = 60.0
    endpoint_url: str | None = None
    """The inference endpoint `GET /recommend` asks (the local endpoint, say)."""
    endpoint_timeout_s: float = 2.0
    storefront: Storefront | None = None
    """The shop's pages under `/shop` (a demo shop on the simulated catalogue); none: 404."""


_PIXEL_RESPONSE = (
    200,
    PIXEL_GIF,
    [
        (b"content-type", b"image/gif"),
        (b"cache-control", b"no-store, max-age=0"),
    ],
)


def _json(status: int, document: dict) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    return status, orjson.dumps(document), [(b"content-type", b"application/json")]


class CollectorApp:
    def __init__(self, config: CollectorConfig):
        self.config = config
        self.writer = DurableLandingWriter(
            config.landing_root,
            rotate_bytes=config.rotate_bytes,
            rotate_seconds=config.rotate_seconds,
            limits=config.limits,
        )
        self._tracker_js: bytes | None = None
        self._storefront_js: bytes | None = None
        self._endpoint_client = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            if scope["method"] == "GET" and scope["path"] in PIXEL_PATHS:
                # The pixel's hot path: the writer process parses the query and lands what it
                # holds (the GIF answers whatever it held); the GIF is sent once that is fsynced.
                await self.writer.land_pixel(
                    scope["path"], scope["query_string"], int(time.time() * 1000)
                )
                status, body, headers = _PIXEL_RESPONSE
            else:
                status, body, headers = await self._respond(scope, receive)
        except LandingUnavailable as error:
            status, body, headers = _json(503, {"error": str(error)})
        if self.config.cors_origins:
            headers = headers + self._cors_headers(scope)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.writer.start()
                except Exception as error:
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                recovery = self.writer.recovery
                if recovery.files_published or recovery.torn_lines:
                    log.warning(
                        "recovered %d lines in %d files left by a crash (%d torn lines rejected)",
                        recovery.lines_kept,
                        len(recovery.files_published),
                        recovery.torn_lines,
                    )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.writer.stop()
                if self._endpoint_client is not None:
                    await self._endpoint_client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _cors_headers(self, scope) -> list[tuple[bytes, bytes]]:
        allowed = self.config.cors_origins
        if not allowed:
            return []
        origin = next((v for k, v in scope["headers"] if k == b"origin"), None)
        if origin is None:
            return []
        if "*" in allowed or origin.decode("latin-1") in allowed:
            return [
                (b"access-control-allow-origin", origin),
                (b"access-control-allow-credentials", b"true"),
                (b"vary", b"Origin"),
            ]
        return []

    async def _respond(self, scope, receive):
        method, path = scope["method"], scope["path"]
        if method == "OPTIONS":
            return (
                204,
                b"",
                [
                    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
                    (b"access-control-allow-headers", b"content-type"),
                    (b"access-control-max-age", b"86400"),
                ],
            )
        if method == "GET" and path == "/health":
            return _json(200, {"status": "ok"})
        if method == "GET" and path == "/recs.js":
            return (
                200,
                self._tracker(),
                [
                    (b"content-type", b"application/javascript; charset=utf-8"),
                    (b"cache-control", b"public, max-age=300"),
                ],
            )
        if method == "GET" and path == RECOMMEND_PATH:
            return await self._recommend(scope)
        if not is_collect_route(method, path):
            if self.config.storefront is not None and is_shop_path(path):
                return self._shop(method, path, scope)
            return _json(404, {"error": f"no route {method} {path}"})
        return await self._collect(method, path, scope, receive)

    async def _collect(self, method: str, path: str, scope, receive):
        """A POST collection route: parse, land (written and fsynced), then answer with what
        was accepted and why the rest was not. (The pixel's GETs go to the writer process.)"""
        server_ts = int(time.time() * 1000)
        try:
            query = parse_query(scope["query_string"])
        except UnicodeDecodeError:
            query = None
        body = b""
        try:
            if query is None:
                raise RequestRejected(400, "query string is not UTF-8")
            try:
                body = await read_body(receive, self.config.limits.max_body_bytes)
            except BodyTooLarge as error:
                raise RequestRejected(413, str(error)) from None
            result = parse_request(
                CollectRequest(method, path, query, body, server_ts), self.config.limits
            )
        except RequestRejected as rejected:
            raw = body[:_REJECTED_BODY_BYTES]
            await self.writer.append(
                (), [rejection_line(server_ts, path, rejected.reason, raw)], server_ts
            )
            return _json(rejected.status, {"error": rejected.reason})
        rejections = [
            rejection_line(server_ts, path, rejection.reason, rejection.raw)
            for rejection in result.rejections
        ]
        await self.writer.append(result.events, rejections, server_ts)
        status = batch_status(path, accepted=len(result.events), rejected=len(result.rejections))
        return _json(
            status,
            {
                "accepted": len(result.events),
                "rejected": len(result.rejections),
                "reasons": [rejection.reason for rejection in result.rejections[:_REASONS_SHOWN]],
            },
        )

    async def _recommend(self, scope):
        """The facade the shop's page calls: one instance sent to the inference endpoint."""
        try:
            query = parse_recommend_query(parse_query(scope["query_string"]))
        except UnicodeDecodeError:
            return _json(400, {"error": "query string is not UTF-8"})
        except BadRecommendQuery as error:
            return _json(400, {"error": str(error)})
        if self.config.endpoint_url is None:
            return _json(503, {"error": "no recommendation endpoint configured"})
        if self._endpoint_client is None:
            self._endpoint_client = httpx.AsyncClient(
                base_url=self.config.endpoint_url, timeout=self.config.endpoint_timeout_s
            )
        try:
            response = await self._endpoint_client.post(
                "/invocations",
                content=query.invocation_body(),
                headers={"content-type": "application/json"},
            )
            answer = recommend_answer(response.status_code, response.content)
        except httpx.HTTPError as error:
            log.warning("recommendation endpoint %s: %s", self.config.endpoint_url, error)
            return _json(503, {"error": "the recommendation endpoint did not answer"})
        except EndpointUnavailable as error:
            return _json(503, {"error": str(error)})
        return (
            200,
            orjson.dumps(answer),
            [
                (b"content-type", b"application/json"),
                (b"cache-control", b"no-store"),
            ],
        )

    def _shop(self, method: str, path: str, scope):
        if method != "GET":
            return _json(
                405, {"error": f"{method} {path} is not allowed: the shop's pages are GET"}
            )
        if path == STOREFRONT_SCRIPT_PATH:
            return (
                200,
                self._static_storefront_js(),
                [
                    (b"content-type", b"application/javascript; charset=utf-8"),
                    (b"cache-control", b"public, max-age=300"),
                ],
            )
        try:
            query = parse_query(scope["query_string"])
        except UnicodeDecodeError:
            return _json(400, {"error": "query string is not UTF-8"})
        return self.config.storefront.respond(path, query)

    def _tracker(self) -> bytes:
        if self._tracker_js is None:
            self._tracker_js = (
                resources.files("recs_platform.collection").joinpath("static/recs.js").read_bytes()
            )
        return self._tracker_js

    def _static_storefront_js(self) -> bytes:
        if self._storefront_js is None:
            self._storefront_js = (
                resources.files("recs_platform.collection")
                .joinpath("static/storefront.js")
                .read_bytes()
            )
        return self._storefront_js


def create_app(config: CollectorConfig) -> CollectorApp:
    return CollectorApp(config)
