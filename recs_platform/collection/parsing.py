"""Turn what a tracker sends into raw events of the contract, or into named rejections.

Every entry point returns a `ParseResult`: the accepted events (server fields added, contract
checked) and the rejections with their reasons. One bad event never sinks the good ones of the
same request; only a request that cannot be read at all (not JSON, too large) is refused whole.
The local collector and the Lambda handler call the same functions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from recs_platform.events.contract import InvalidEvent, validate_event


@dataclass(frozen=True)
class CollectorLimits:
    max_body_bytes: int = 1_048_576
    max_events_per_request: int = 500
    max_string_chars: int = 4096
    max_future_ms: int = 24 * 3600 * 1000
    """A client clock this far ahead of the server is not believed."""
    max_past_ms: int = 30 * 24 * 3600 * 1000
    """Events older than this (by the client's clock) are refused: a replay or a broken clock."""


class RequestRejected(ValueError):
    """The whole request is unusable; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Rejection:
    reason: str
    raw: Any


@dataclass
class ParseResult:
    events: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    def extend(self, other: ParseResult) -> None:
        self.events += other.events
        self.rejections += other.rejections


def _too_long(event: Mapping[str, Any], limit: int) -> str | None:
    for name, value in event.items():
        if type(value) is str and len(value) > limit:
            return f"{name} longer than {limit} characters"
        if type(value) is list:  # shown_skus
            for item in value:
                if type(item) is str and len(item) > limit:
                    return f"an item of {name} longer than {limit} characters"
    return None


def new_event_id() -> str:
    """A random (version 4) UUID; formatted by hand, which is three times cheaper than uuid4()."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def finish_event(
    raw: Any, *, server_ts: int, source: str, limits: CollectorLimits
) -> dict[str, Any]:
    """Add the server's fields to one incoming event and check it; raises `InvalidEvent`."""
    if not isinstance(raw, dict):
        raise InvalidEvent("not a JSON object")
    return _complete_event(dict(raw), server_ts=server_ts, source=source, limits=limits)


def _complete_event(
    event: dict[str, Any], *, server_ts: int, source: str, limits: CollectorLimits
) -> dict[str, Any]:
    """`finish_event` on a dict of our own, which it completes in place."""
    event["server_ts"] = server_ts
    if "event_id" not in event:
        event["event_id"] = new_event_id()
    event["source"] = source
    if event.get("client_ts") is None:
        event["client_ts"] = server_ts
    long_field = _too_long(event, limits.max_string_chars)
    if long_field:
        raise InvalidEvent(long_field)
    validate_event(event)
    if event["client_ts"] > server_ts + limits.max_future_ms:
        raise InvalidEvent("client_ts too far in the future")
    if event["client_ts"] < server_ts - limits.max_past_ms:
        raise InvalidEvent("client_ts too far in the past")
    return event


def finish_events(
    raws: list[Any], *, server_ts: int, source: str, limits: CollectorLimits
) -> ParseResult:
    result = ParseResult()
    for raw in raws:
        try:
            result.events.append(
                finish_event(raw, server_ts=server_ts, source=source, limits=limits)
            )
        except InvalidEvent as error:
            result.rejections.append(Rejection(str(error), raw))
    return result


def check_body_size(body: bytes, limits: CollectorLimits) -> None:
    if len(body) > limits.max_body_bytes:
        raise RequestRejected(413, f"body larger than {limits.max_body_bytes} bytes")


def load_json_body(body: bytes, limits: CollectorLimits) -> Any:
    """The JSON document of a request body; `RequestRejected` if too large or not JSON."""
    check_body_size(body, limits)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        reason = "body is not valid UTF-8 JSON" if body else "empty body"
        raise RequestRejected(400, reason) from error


def events_from_json_body(
    body: bytes, *, server_ts: int, limits: CollectorLimits, source: str = "collector"
) -> ParseResult:
    """`POST /collect`: a JSON array of raw events (or one object), as JSON or text/plain."""
    document = load_json_body(body, limits)
    raws = document if isinstance(document, list) else [document]
    if len(raws) > limits.max_events_per_request:
        raise RequestRejected(
            413, f"{len(raws)} events in one request; at most {limits.max_events_per_request}"
        )
    return finish_events(raws, server_ts=server_ts, source=source, limits=limits)


# Query parameters of the pixel: our contract names, plus short aliases.
_PIXEL_ALIASES = {"sku": "product_sku", "action": "product_action", "ts": "client_ts"}
# An impression's shown_skus travel comma-separated, as /recommend's session does.
_PIXEL_LISTS = ("shown_skus",)
_PIXEL_INTEGERS = ("position",)
_MAX_INTEGER_DIGITS = 19


class EventRejected(ValueError):
    """One event of a request is refused: `rejection` is what to record."""

    def __init__(self, rejection: Rejection):
        super().__init__(rejection.reason)
        self.rejection = rejection


def _pixel_raw(query: Mapping[str, str]) -> dict[str, Any]:
    """The raw event of the pixel's query: aliases resolved (the first name given wins), client_ts
    an integer (raises `ValueError` if it is not one), shown_skus a list and a position of digits
    an integer (any other position stays text, which the contract refuses)."""
    raw: dict[str, Any] = {}
    for name, value in query.items():
        raw.setdefault(_PIXEL_ALIASES.get(name, name), value)
    if "client_ts" in raw:
        raw["client_ts"] = int(raw["client_ts"])
    for name in _PIXEL_LISTS:
        if name in raw:
            raw[name] = raw[name].split(",")
    for name in _PIXEL_INTEGERS:
        value = raw.get(name)
        if value and value.isascii() and value.isdigit() and len(value) <= _MAX_INTEGER_DIGITS:
            raw[name] = int(value)
    return raw


def pixel_event(
    query: Mapping[str, str], *, server_ts: int, limits: CollectorLimits, source: str = "pixel"
) -> dict[str, Any]:
    """`GET /i` with our field names: the event of the query parameters, finished and checked
    (`finish_event`'s rules); raises `EventRejected`. The collector's pixel route calls it
    directly; everything else goes through `event_from_query`."""
    try:
        event = _pixel_raw(query)
    except ValueError:
        raise EventRejected(Rejection("client_ts is not an integer", dict(query))) from None
    try:
        # The dict is ours, so it is completed in place rather than copied (`finish_event`).
        return _complete_event(event, server_ts=server_ts, source=source, limits=limits)
    except InvalidEvent as error:
        # What is recorded is the raw event, without the server's fields: rebuild it.
        raise EventRejected(Rejection(str(error), _pixel_raw(query))) from None


def event_from_query(
    query: Mapping[str, str], *, server_ts: int, limits: CollectorLimits, source: str = "pixel"
) -> ParseResult:
    """`GET /i` with our field names: one event from query parameters."""
    try:
        event = pixel_event(query, server_ts=server_ts, limits=limits, source=source)
    except EventRejected as rejected:
        return ParseResult(rejections=[rejected.rejection])
    return ParseResult(events=[event])
