"""What the project's two raw ASGI apps (the collector, the inference server) share."""

from __future__ import annotations


class BodyTooLarge(ValueError):
    """The request body passed the limit (the apps answer 413)."""


async def read_body(receive, limit: int) -> bytes:
    """The whole request body, refused as soon as it passes `limit` bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
