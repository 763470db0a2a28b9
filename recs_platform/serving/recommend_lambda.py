"""`GET /recommend` as an AWS Lambda behind API Gateway (HTTP API, payload 2.0): the production
twin of the collector's route, calling the SageMaker endpoint through `sagemaker-runtime`.

Environment (read on the first request): ``RECS_SAGEMAKER_ENDPOINT`` (required) the endpoint's
name; ``RECS_CORS_ORIGINS`` (optional) as for the collector. boto3 itself honours
``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` (the tests point it at a local inference server, which
answers the runtime API's path).

Champion and challenger: SageMaker picks a production variant per request by the variants'
weights, which would show one session both models. So the handler picks the variant itself,
per session (`inference.variant_for_session`, the same hash the local endpoint uses), and sends
it as `TargetVariant`. The challenger's share is read from the endpoint's weights
(`describe_endpoint`, at most once a minute: it changes only with a deployment). While the
share is unknown (the call failed; it is logged) or zero, SageMaker's weights decide.
"""

from __future__ import annotations

import logging
import math
import os
import time
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
from recs_platform.serving.inference import variant_for_session
from recs_platform.serving.sagemaker import challenger_share
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

# Seconds the challenger's share read from the endpoint is reused.
SHARE_TTL_S = 60.0


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


def sagemaker_control_client() -> Any:
    """For `describe_endpoint` (the variants' weights): quick, or the share stays unknown."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1})
    return boto3.client("sagemaker", config=config)


class RecommendHandler:
    def __init__(
        self,
        settings: RecommendSettings,
        runtime: Any,
        control: Any = None,
        clock: Any = time.monotonic,
    ):
        """`control`: a SageMaker client to read the challenger's share from (None: never
        target a variant, SageMaker's weights decide)."""
        self.settings = settings
        self.runtime = runtime
        self.control = control
        self.clock = clock
        self._share: float | None = None
        self._share_read_at = -math.inf

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
        share = self.challenger_share()
        target = None
        if share:  # a session keeps its variant; without a challenger nothing to choose
            target = variant_for_session(query.session_id, share).value
        try:
            status, body, invoked = self._invoke(query.invocation_body(), target)
            answer = recommend_answer(status, body, variant=invoked)
        except EndpointUnavailable as error:
            logger.warning("endpoint %s: %s", self.settings.endpoint_name, error)
            return json_response(503, {"error": str(error)}, cors)
        return json_response(200, answer, {**cors, "Cache-Control": "no-store"})

    def challenger_share(self) -> float | None:
        """The challenger's share of the endpoint's weights, read at most every `SHARE_TTL_S`
        seconds; None while unknown."""
        if self.control is None:
            return None
        now = self.clock()
        if now - self._share_read_at < SHARE_TTL_S:
            return self._share
        from botocore.exceptions import BotoCoreError, ClientError

        self._share_read_at = now
        try:
            description = self.control.describe_endpoint(EndpointName=self.settings.endpoint_name)
        except (BotoCoreError, ClientError) as error:
            # The carousel still answers, by SageMaker's weights; a minute later it asks again.
            logger.warning("describe_endpoint %s failed: %s", self.settings.endpoint_name, error)
            self._share = None
            return None
        self._share = challenger_share(description)
        return self._share

    def _invoke(self, body: bytes, target_variant: str | None) -> tuple[int, bytes, str | None]:
        from botocore.exceptions import BotoCoreError, ClientError

        target = {"TargetVariant": target_variant} if target_variant is not None else {}
        try:
            result = self.runtime.invoke_endpoint(
                EndpointName=self.settings.endpoint_name,
                ContentType="application/json",
                Accept="application/json",
                Body=body,
                **target,
            )
        except ClientError as error:  # ModelError (the container's 4xx/5xx) included
            status = error.response.get("OriginalStatusCode") or error.response.get(
                "ResponseMetadata", {}
            ).get("HTTPStatusCode", 500)
            raise EndpointUnavailable(f"invoke_endpoint failed ({status}): {error}") from error
        except BotoCoreError as error:
            raise EndpointUnavailable(f"invoke_endpoint failed: {error}") from error
        return 200, result["Body"].read(), result.get("InvokedProductionVariant")


_handler: RecommendHandler | None = None


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point; settings and the runtime client are made on the first call."""
    global _handler
    if _handler is None:
        _handler = RecommendHandler(
            RecommendSettings.from_environment(),
            sagemaker_runtime_client(),
            sagemaker_control_client(),
        )
    return _handler.handle(event)
