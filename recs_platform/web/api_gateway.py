"""What both Lambda handlers (collect, recommend) share of API Gateway's HTTP API (payload 2.0):
reading the route and headers of an event, CORS, and building the response dict."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import orjson


def http_method(event: Mapping[str, Any]) -> str:
    return str(event.get("requestContext", {}).get("http", {}).get("method", "")).upper()


def route_path(event: Mapping[str, Any]) -> str:
    """`rawPath` without the stage, which API Gateway puts first for a stage other than $default."""
    path = event.get("rawPath") or "/"
    stage = event.get("requestContext", {}).get("stage")
    if stage and stage != "$default" and (path == f"/{stage}" or path.startswith(f"/{stage}/")):
        path = path[len(stage) + 1 :] or "/"
    return path


def request_headers(event: Mapping[str, Any]) -> dict[str, str]:
    return {name.lower(): value for name, value in (event.get("headers") or {}).items()}


def cors_headers(allowed: Collection[str], origin: str | None) -> dict[str, str]:
    """As the local collector: an allowed origin is echoed, credentials allowed."""
    if not origin or not allowed or not ("*" in allowed or origin in allowed):
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


def response(
    status: int,
    body: str,
    content_type: str | None,
    headers: Mapping[str, str],
    *,
    binary: bool = False,
) -> dict[str, Any]:
    all_headers = dict(headers)
    if content_type:
        all_headers["Content-Type"] = content_type
    return {
        "statusCode": status,
        "headers": all_headers,
        "body": body,
        "isBase64Encoded": binary,
    }


def json_response(status: int, document: Any, headers: Mapping[str, str]) -> dict[str, Any]:
    return response(status, orjson.dumps(document).decode("utf-8"), "application/json", headers)
