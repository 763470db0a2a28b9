"""Query strings, parsed on the pixel's hot path and by the /recommend Lambda."""

from __future__ import annotations

from urllib.parse import unquote_plus


def parse_query(raw: bytes) -> dict[str, str]:
    """A query string as a dict (first value of a repeated name wins); raises
    UnicodeDecodeError unless it is UTF-8. On the pixel's hot path, so no general parser."""
    query: dict[str, str] = {}
    for part in raw.decode("utf-8").split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "%" in name or "+" in name:
            name = unquote_plus(name, errors="strict")
        if "%" in value or "+" in value:
            value = unquote_plus(value, errors="strict")
        query.setdefault(name, value)
    return query
