"""Invoking a SageMaker endpoint: the `sagemaker-runtime` client and one inference request,
with the container's own refusal reasons kept (what the `/recommend` resource and the deployment
probe call; `sagemaker.py` deploys)."""

from __future__ import annotations

import json
from typing import Any

import orjson
from botocore.exceptions import ClientError

JSON_CONTENT_TYPE = "application/json"


def sagemaker_runtime_client(
    timeout_s: float = 60.0, region_name: str | None = None, endpoint_url: str | None = None
) -> Any:
    """A `sagemaker-runtime` client whose calls give up after `timeout_s` (SageMaker's own
    limit for an invocation is 60 s); `endpoint_url` points it at a local endpoint."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=min(timeout_s, 10.0),
        read_timeout=timeout_s,
        retries={"max_attempts": 2, "mode": "standard"},
    )
    return boto3.client(
        "sagemaker-runtime", region_name=region_name, endpoint_url=endpoint_url, config=config
    )


def invoke_sagemaker(
    runtime: Any, endpoint_name: str, payload: dict, target_variant: str | None = None
) -> tuple[int, dict]:
    """POST `payload` (the inference contract's request) through `invoke_endpoint`, to the
    production variant `target_variant` when given (SageMaker's `TargetVariant`; else SageMaker
    picks one by the variants' weights).

    Returns (200, the response document), or, when the container refuses the request, its HTTP
    status and `{"error": <its reason>}`; SageMaker's own refusals (no such endpoint, throttled)
    likewise come back as their status. Network failures and timeouts (the client's config, see
    `sagemaker_runtime_client`) raise.
    """
    _keep_container_reasons(runtime)
    target = {"TargetVariant": target_variant} if target_variant is not None else {}
    try:
        response = runtime.invoke_endpoint(
            EndpointName=endpoint_name,
            ContentType=JSON_CONTENT_TYPE,
            Accept=JSON_CONTENT_TYPE,
            Body=orjson.dumps(payload),
            **target,
        )
    except runtime.exceptions.ModelError as error:
        # SageMaker reached the container, which answered non-2xx: its status and body.
        answer = error.response
        status = answer.get("OriginalStatusCode") or answer["ResponseMetadata"]["HTTPStatusCode"]
        document = {"error": _reason(answer.get("OriginalMessage") or answer["Error"]["Message"])}
        if answer.get("LogStreamArn"):
            document["log_stream"] = answer["LogStreamArn"]
        return int(status), document
    except ClientError as error:
        details = error.response.get("Error", {})
        status = error.response["ResponseMetadata"]["HTTPStatusCode"]
        return int(status), {"error": details.get("Message") or details.get("Code", "")}
    body = response["Body"].read()
    try:
        return 200, orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueError(
            f"endpoint {endpoint_name} answered 200 with a body that is not JSON: {body[:200]!r}"
        ) from None


def _keep_container_reasons(runtime: Any) -> None:
    """botocore takes an error's reason from a `message` field; the container answers
    `{"error": ...}`, which a client pointed straight at it (a local endpoint) would drop."""
    runtime.meta.events.register(
        "after-call.sagemaker-runtime.InvokeEndpoint",
        _reason_from_error_body,
        unique_id="recs-platform-container-reason",
    )


def _reason_from_error_body(http_response: Any, parsed: dict, **_: Any) -> None:
    error = parsed.get("Error")
    if http_response.status_code >= 300 and error is not None and not error.get("Message"):
        error["Message"] = _reason(http_response.content.decode("utf-8", errors="replace"))


def _reason(text: str) -> str:
    """The `error` of a container's JSON answer, else the answer itself."""
    try:
        document = json.loads(text)
    except ValueError:
        return text
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        return document["error"]
    return text
