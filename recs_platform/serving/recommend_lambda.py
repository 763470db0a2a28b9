"""`GET /recommend` as an AWS Lambda behind API Gateway (HTTP API, payload 2.0): the production
twin of the collector's route, calling the SageMaker endpoint through `sagemaker-runtime`.

Environment (read on the first request): ``RECS_SAGEMAKER_ENDPOINT`` (required) the endpoint's
name; ``RECS_CORS_ORIGINS`` (optional) as for the collector. boto3 itself honours
``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` (the tests point it at a local inference server, which
answers the runtime API's path).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from recs_platform.serving.facade import (
    RECOMMEND_PATH,
    BadRecommendQuery,
    EndpointUnavailable,
    parse_recommend_query,
    recommend_answer,
)
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

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecommendSettings:
    endpoint_name: str
    cors_origins: frozenset[str] = frozenset()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> RecommendSettings:
        endpoint_name = environ.get("RECS_SAGEMAKER_ENDPOINT", "").strip()
        if not endpoint_name:
            raise RuntimeError(
                "RECS_SAGEMAKER_ENDPOINT is not set: name the SageMaker endpoint to call"
            )
        cors = frozenset(Settings.from_env(dict(environ)).cors_origins)
        return cls(endpoint_name=endpoint_name, cors_origins=cors)


def sagemaker_runtime_client() -> Any:
    import boto3
    from botocore.config import Config

    # A carousel that waits longer than this is worse than none: fail fast, the page hides it.
    config = Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 2})
    return boto3.client("sagemaker-runtime", config=config)


class RecommendHandler:
    def __init__(self, settings: RecommendSettings, runtime: Any):
        self.settings = settings
        self.runtime = runtime

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        method, path = http_method(event), route_path(event)
        cors = cors_headers(self.settings.cors_origins, request_headers(event).get("origin"))
        if method == "OPTIONS":
            preflight = {
                "Access-Control-Allow-Methods": "GET, OPTIONS",
                "Access-Control-Max-Age": "86400",
            }
            return response(204, "", None, {**preflight, **cors})
        if method != "GET" or path != RECOMMEND_PATH:
            return json_response(404, {"error": f"no route {method} {path}"}, cors)
        try:
            query = parse_recommend_query(
                parse_query((event.get("rawQueryString") or "").encode("utf-8"))
            )
        except UnicodeError:
            return json_response(400, {"error": "query string is not UTF-8"}, cors)
        except BadRecommendQuery as error:
            return json_response(400, {"error": str(error)}, cors)
        try:
            answer = recommend_answer(*self._invoke(query.invocation_body()))
        except EndpointUnavailable as error:
            logger.warning("endpoint %s: %s", self.settings.endpoint_name, error)
            return json_response(503, {"error": str(error)}, cors)
        return json_response(200, answer, {**cors, "Cache-Control": "no-store"})

    def _invoke(self, body: bytes) -> tuple[int, bytes]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            result = self.runtime.invoke_endpoint(
                EndpointName=self.settings.endpoint_name,
                ContentType="application/json",
                Accept="application/json",
                Body=body,
            )
        except ClientError as error:  # ModelError (the container's 4xx/5xx) included
            status = error.response.get("OriginalStatusCode") or error.response.get(
                "ResponseMetadata", {}
            ).get("HTTPStatusCode", 500)
            raise EndpointUnavailable(f"invoke_endpoint failed ({status}): {error}") from error
        except BotoCoreError as error:
            raise EndpointUnavailable(f"invoke_endpoint failed: {error}") from error
        return 200, result["Body"].read()


_handler: RecommendHandler | None = None


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point; settings and the runtime client are made on the first call."""
    global _handler
    if _handler is None:
        _handler = RecommendHandler(
            RecommendSettings.from_environment(), sagemaker_runtime_client()
        )
    return _handler.handle(event)
