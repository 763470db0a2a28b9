"""The tracker (recs.js) in real Chromium: a shop page served from one origin loads the tracker
from the collector on another origin, as on a real shop, and what the collector lands is checked.

Chromium is required: CI installs Debian's `chromium`. Without it these tests fail, never skip.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from playwright.sync_api import BrowserContext

from recs_platform_tests.browser import ARTIFACTS, chromium, new_context
from recs_platform_tests.collection.servers import (
    landed_events,
    rejected_records,
    running_collector,
)

pytestmark = pytest.mark.timeout(60)

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
MINUTE_MS = 60_000
HOLD_MS = 600_000  # a flush delay no test waits for: only pagehide / visibilitychange send

# The copy-paste snippet the README shows: a stub that queues calls until recs.js has loaded.
SNIPPET = """<script>
  window.recs = window.recs || {q: []};
  ["init", "pageView", "productView", "addToCart", "removeFromCart", "purchase",
   "impression", "carouselClick"]
    .forEach(function (m) {
      recs[m] = recs[m] || function () { recs.q.push([m, [].slice.call(arguments)]); };
    });
  recs.init({collector: "COLLECTOR", flushDelay: HOLD});
  recs.pageView();
</script>
<script async src="COLLECTOR/recs.js"></script>"""

SHOP_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Test shop</title>
SNIPPET
</head><body style="font-family: sans-serif">
<h1>Test shop</h1>
<p>Blue running shoe, sku-1</p>
<button id="view" onclick="recs.productView('sku-1')">View details</button>
<button id="add" onclick="recs.addToCart('sku-1')">Add to cart</button>
<a id="cart" href="/cart?step=2">Go to cart</a>
</body></html>"""

# The second page loads the tracker with a plain script tag and its data-collector attribute.
CART_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Cart</title>
<script src="COLLECTOR/recs.js" data-collector="COLLECTOR"></script>
<script>recs.pageView();</script>
</head><body>
<h1>Cart</h1>
<button id="remove" onclick="recs.removeFromCart('sku-1')">Remove sku-1</button>
<button id="buy" onclick="recs.purchase(['sku-2', 'sku-3'])">Buy sku-2 and sku-3</button>
</body></html>"""


class _ShopHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        url = urlsplit(self.path)
        collector = self.server.collector  # type: ignore[attr-defined]
        if url.path == "/":
            hold = parse_qs(url.query).get("hold", ["0"])[0]
            page = SHOP_PAGE.replace("SNIPPET", SNIPPET).replace("HOLD", str(int(hold)))
        elif url.path == "/cart":
            page = CART_PAGE
        else:
            self.send_error(404)
            return
        body = page.replace("COLLECTOR", collector).encode()
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def shop_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ShopHandler)
    server.collector = ""  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def shop_and_collector(data_dir: Path) -> Iterator[tuple[str, str]]:
    """(shop URL, collector URL): two servers on 127.0.0.1, so the shop page is cross-origin."""
    with shop_server() as shop:
        shop_url = f"http://127.0.0.1:{shop.server_address[1]}"
        with running_collector(
            data_dir, "--rotate-seconds", "3600", RECS_CORS_ORIGINS=shop_url
        ) as collector:
            shop.collector = collector  # type: ignore[attr-defined]
            yield shop_url, collector


def delivered(landing: Path) -> list[dict]:
    """Events acknowledged so far: in the collector's open file or already published."""
    events = []
    for path in sorted(landing.glob("events/date=*/*")):
        if path.name.endswith((".jsonl", ".jsonl.tmp")):
            events += [orjson.loads(line) for line in path.read_bytes().splitlines() if line]
    return events


def wait_for_events(landing: Path, count: int, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = delivered(landing)
        if len(events) >= count:
            time.sleep(0.3)  # a duplicate would arrive now
            return delivered(landing)
        time.sleep(0.05)
    raise AssertionError(f"{count} events expected within {timeout} s, got {delivered(landing)}")


def cookie(context: BrowserContext, name: str) -> str:
    (value,) = [c["value"] for c in context.cookies() if c["name"] == name]
    return value


def shape(event: dict) -> tuple:
    return (
        event["event_type"],
        event.get("product_action"),
        event.get("product_sku"),
        event["url"],
    )


def check_envelope(events: list[dict], source: str, started_ms: int) -> None:
    ids = [e["event_id"] for e in events]
    assert len(set(ids)) == len(ids), "an event landed twice"
    for event in events:
        assert UUID4.match(event["event_id"]), event
        assert isinstance(event["client_ts"], int), event
        assert started_ms <= event["client_ts"] <= event["server_ts"] + 1000, event
        assert event["source"] == source


def test_a_shopping_journey_lands_every_event_once_with_sendbeacon(tmp_path):
    landing = tmp_path / "landing"
    started_ms = int(time.time() * 1000)
    with shop_and_collector(tmp_path) as (shop, _), chromium() as browser:
        context = new_context(browser)
        page = context.new_page()
        page.goto(f"{shop}/?hold={HOLD_MS}")
        page.click("#view")
        page.click("#add")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "tracker-shop-page.png"))
        time.sleep(0.5)
        assert delivered(landing) == [], "the page held its events: only pagehide sends them"

        page.click("#cart")
        page.wait_for_url("**/cart?step=2")
        wait_for_events(landing, 3)  # the first page's batch, sent on pagehide
        page.click("#remove")
        page.click("#buy")
        wait_for_events(landing, 7)
        uid, sid = cookie(context, "recs_uid"), cookie(context, "recs_sid")
        context.close()

    events = landed_events(landing)
    assert rejected_records(landing) == []
    home = f"/?hold={HOLD_MS}"
    assert sorted(map(shape, events), key=str) == sorted(
        [
            ("pageview", None, None, home),
            ("event_product", "detail", "sku-1", home),
            ("event_product", "add", "sku-1", home),
            ("pageview", None, None, "/cart?step=2"),
            ("event_product", "remove", "sku-1", "/cart?step=2"),
            ("event_product", "purchase", "sku-2", "/cart?step=2"),
            ("event_product", "purchase", "sku-3", "/cart?step=2"),
        ],
        key=str,
    )
    check_envelope(events, "collector", started_ms)
    assert UUID4.match(uid)
    assert {e["user_id"] for e in events} == {uid}
    assert {e["session_id"] for e in events} == {sid.split(".")[0]}, "one session across pages"
    assert int(sid.split(".")[1]) == max(e["client_ts"] for e in events)


@pytest.mark.parametrize(
    "init_script",
    [
        "Navigator.prototype.sendBeacon = function () { return false; };",
        # an old browser: no sendBeacon, no crypto.randomUUID (ids from getRandomValues)
        "delete Navigator.prototype.sendBeacon; delete Crypto.prototype.randomUUID;",
    ],
    ids=["sendbeacon-refuses", "no-sendbeacon-no-randomuuid"],
)
def test_without_sendbeacon_each_event_goes_as_a_pixel(tmp_path, init_script):
    landing = tmp_path / "landing"
    started_ms = int(time.time() * 1000)
    with shop_and_collector(tmp_path) as (shop, _), chromium() as browser:
        context = new_context(browser, init_script)
        page = context.new_page()
        pixels = []
        page.on("request", lambda r: pixels.append(r.url) if "/i?" in r.url else None)
        page.goto(f"{shop}/")
        page.click("#view")
        page.click("#add")
        wait_for_events(landing, 3)
        uid = cookie(context, "recs_uid")
        context.close()

    events = landed_events(landing)
    assert rejected_records(landing) == []
    assert len(pixels) == 3
    assert sorted(map(shape, events), key=str) == sorted(
        [
            ("pageview", None, None, "/"),
            ("event_product", "detail", "sku-1", "/"),
            ("event_product", "add", "sku-1", "/"),
        ],
        key=str,
    )
    check_envelope(events, "pixel", started_ms)
    assert {e["user_id"] for e in events} == {uid}
    assert len({e["session_id"] for e in events}) == 1


def test_a_new_session_starts_after_30_minutes_without_activity(tmp_path):
    landing = tmp_path / "landing"
    with shop_and_collector(tmp_path) as (shop, _), chromium() as browser:
        context = new_context(browser)
        page = context.new_page()
        page.goto(f"{shop}/")
        wait_for_events(landing, 1)
        first_session = cookie(context, "recs_sid").split(".")[0]

        def last_activity_ago(minutes: int) -> None:
            value = f"{first_session}.{int(time.time() * 1000) - minutes * MINUTE_MS}"
            context.add_cookies([{"name": "recs_sid", "value": value, "url": shop}])

        last_activity_ago(29)
        page.click("#view")
        wait_for_events(landing, 2)
        last_activity_ago(31)
        page.click("#add")
        wait_for_events(landing, 3)
        second_session = cookie(context, "recs_sid").split(".")[0]
        context.close()

    events = sorted(landed_events(landing), key=lambda e: e["client_ts"])
    assert [e.get("product_action") for e in events] == [None, "detail", "add"]
    assert [e["session_id"] for e in events] == [first_session, first_session, second_session]
    assert second_session != first_session
    assert len({e["user_id"] for e in events}) == 1, "a new session, the same shopper"


CAROUSEL_ANSWER = (
    "{request_id: 'r-1', items: ['sku-2', 'sku-3', 'sku-4'], fallback: null,"
    " model: {name: 'session-recommender', version: '2'}, variant: 'challenger'}"
)


@pytest.mark.parametrize(
    "init_script",
    [None, "Navigator.prototype.sendBeacon = function () { return false; };"],
    ids=["sendbeacon", "pixel"],
)
def test_an_impression_and_the_click_it_led_to_land_with_its_request_and_position(
    tmp_path, init_script
):
    landing = tmp_path / "landing"
    with shop_and_collector(tmp_path) as (shop, _), chromium() as browser:
        context = new_context(browser, init_script)
        page = context.new_page()
        page.goto(f"{shop}/")
        page.evaluate(f"recs.impression('sku-1', ['sku-2', 'sku-3', 'sku-4'], {CAROUSEL_ANSWER})")
        # The shopper clicks the second card, and its page says it is viewed.
        page.evaluate("recs.carouselClick('sku-3', 'r-1', 2)")
        page.goto(f"{shop}/cart")
        page.evaluate("recs.productView('sku-3')")
        page.evaluate("recs.productView('sku-3')")  # viewed again: not a click any more
        # A click that is itself the view (a quick view on the same page).
        page.evaluate("recs.productView('sku-4', {request_id: 'r-1', position: 3})")
        wait_for_events(landing, 6)
        context.close()

    assert rejected_records(landing) == []
    events = sorted(landed_events(landing), key=lambda event: event["client_ts"])
    (impression,) = [event for event in events if event["event_type"] == "impression"]
    assert {name: impression.get(name) for name in ("product_sku", "shown_skus", "url")} == {
        "product_sku": "sku-1",
        "shown_skus": ["sku-2", "sku-3", "sku-4"],
        "url": "/",
    }
    assert (impression["request_id"], impression["variant"], impression.get("fallback")) == (
        "r-1",
        "challenger",
        None,
    )
    assert (impression["model_name"], impression["model_version"]) == ("session-recommender", "2")
    assert impression.get("product_action") is None
    views = [event for event in events if event.get("product_action") == "detail"]
    assert [(e["product_sku"], e.get("request_id"), e.get("position")) for e in views] == [
        ("sku-3", "r-1", 2),
        ("sku-3", None, None),
        ("sku-4", "r-1", 3),
    ]
    assert {event["source"] for event in events} == {
        "collector" if init_script is None else "pixel"
    }
