"""The ceiling for bench_collector.py: an ASGI app that only answers the 1x1 GIF."""

from recs_platform.collection.routes import PIXEL_GIF

_HEADERS = [(b"content-type", b"image/gif"), (b"cache-control", b"no-store, max-age=0")]


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["method"] == "POST":
        while (await receive()).get("more_body"):
            pass
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": PIXEL_GIF})
