"""The loop closed in real Chromium: the collector serves the shop on the simulated catalogue, the
shop asks `/recommend`, the collector asks a real inference server (`recs-platform serve`) for a
Markov chain fitted on that shop, and every page's events land.

Chromium is required: CI installs Debian's `chromium`. Without it these tests fail, never skip.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Page

from recs_platform.models.markov import MarkovRecommender
from recs_platform.serving.inference import package_model
from recs_platform.serving.storefront import DEFAULT_CAROUSEL_K, Storefront
from recs_platform.simulation import SHOP_CONFIG_FILE, ShopConfig, simulate_sessions
from recs_platform_tests.browser import ARTIFACTS, chromium, new_context
from recs_platform_tests.collection.servers import (
    free_port,
    landed_events,
    rejected_records,
    start_collector,
    stop_collector,
)
from recs_platform_tests.collection.test_tracker_browser import cookie, wait_for_events
from recs_platform_tests.serving.servers import running_inference_server

pytestmark = pytest.mark.timeout(120)

SHOP = ShopConfig(days=3, sessions_per_day=300, n_items=150, n_categories=6, seed=11)
MODEL_VERSION = "3"
CAROUSEL = "[data-recs-carousel]"
CAROUSEL_CARDS = "[data-recs-carousel] [data-recs-items] > [data-sku]"
IMPRESSION_FIELDS = (
    "product_sku",
    "url",
    "shown_skus",
    "request_id",
    "model_name",
    "model_version",
    "variant",
    "fallback",
)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sessions = [session.skus for session in simulate_sessions(SHOP)]
    return package_model(
        MarkovRecommender().fit(sessions),
        tmp_path_factory.mktemp("model"),
        "session-recommender",
        MODEL_VERSION,
        f"models:/session-recommender/{MODEL_VERSION}",
    )


@contextlib.contextmanager
def shop_collector(data_dir: Path, endpoint_url: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """The collector with the shop of `SHOP` and `endpoint_url` behind /recommend; the test
    stops it (SIGTERM publishes the landing files) to read what landed; stopped here otherwise."""
    shop_json = data_dir / "landing" / SHOP_CONFIG_FILE
    shop_json.parent.mkdir(parents=True, exist_ok=True)
    shop_json.write_text(SHOP.to_json())
    port = free_port()
    process = start_collector(
        data_dir,
        port,
        "--endpoint-url",
        endpoint_url,
        "--storefront",
        str(shop_json),
        "--rotate-seconds",
        "3600",
    )
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        if process.poll() is None:
            try:
                stop_collector(process)
            except subprocess.TimeoutExpired:
                process.kill()
                raise


def carousel_skus(page: Page) -> list[str]:
    """The carousel's SKUs once storefront.js has filled it."""
    page.wait_for_selector(f'{CAROUSEL}[data-state="ready"]', state="attached")
    return page.locator(CAROUSEL_CARDS).evaluate_all("cards => cards.map(c => c.dataset.sku)")


def invocations(endpoint_url: str, session: list[str], k: int) -> dict:
    response = httpx.post(
        f"{endpoint_url}/invocations",
        json={"instances": [{"session": session, "k": k}]},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["predictions"][0]


def shape(event: dict) -> tuple:
    return (
        event["event_type"],
        event.get("product_action"),
        event.get("product_sku"),
        event["url"],
    )


def test_clicking_through_the_carousel_follows_the_model_and_lands_every_event(
    tmp_path, model_folder
) -> None:
    landing = tmp_path / "landing"
    storefront = Storefront.from_config(SHOP)
    page_errors: list[str] = []
    visited: list[str] = []
    with (
        running_inference_server(model_folder) as endpoint,
        shop_collector(tmp_path, endpoint) as (shop, collector),
        chromium() as browser,
    ):
        context = new_context(browser)
        page = context.new_page()
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        page.on("console", lambda m: page_errors.append(m.text) if m.type == "error" else None)

        page.goto(f"{shop}/shop")
        popular = page.locator("[data-popular] > [data-sku]")
        assert popular.evaluate_all("cards => cards.map(c => c.dataset.sku)") == [
            product.sku for product in storefront.popular
        ]
        # Nothing viewed yet: the home page has no carousel to show.
        page.wait_for_selector(f'{CAROUSEL}[data-state="empty"]', state="attached")
        assert page.locator(CAROUSEL).is_hidden()
        popular.first.locator("a").click()

        carousels: list[tuple[str, list[str]]] = []  # (request id, SKUs shown) per page
        for step in range(4):
            current = storefront.popular[0].sku if step == 0 else visited[-1]
            page.wait_for_url(f"**/shop/products/{current}")
            if step == 0:
                visited.append(current)
            k = int(page.locator(CAROUSEL).get_attribute("data-k"))
            assert k == DEFAULT_CAROUSEL_K
            shown = carousel_skus(page)
            carousels.append((page.locator(CAROUSEL).get_attribute("data-request-id"), shown))
            expected = invocations(endpoint, visited, k)
            assert expected["fallback"] is None
            assert len(shown) == k, shown
            assert len(set(shown)) == k, f"a product twice: {shown}"
            assert current not in shown, "the product on screen is in its own carousel"
            assert not set(shown) & set(visited), "the session's products are excluded"
            assert shown == expected["items"], "the carousel is the endpoint's ranking"
            assert page.locator("[data-recs-model]").inner_text() == f"model v{MODEL_VERSION}"
            if step < 3:
                # A different position each time: the first, second and third card.
                target = page.locator(CAROUSEL_CARDS).nth(step)
                visited.append(target.get_attribute("data-sku"))
                target.locator("a").click()

        assert len(set(visited)) == 4
        page.click("[data-add-to-cart]")
        assert page.locator("[data-add-to-cart]").inner_text() == "Added to cart"
        assert page.locator("[data-cart-count]").inner_text() == "1"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "storefront.png"), full_page=True)

        # Back home, the carousel recommends for the whole session.
        page.goto(f"{shop}/shop")
        home_shown = carousel_skus(page)
        assert home_shown == invocations(endpoint, visited, k)["items"]
        carousels.append((page.locator(CAROUSEL).get_attribute("data-request-id"), home_shown))
        # Each page its views, each carousel its impression; the add; home's view and impression.
        expected_count = 1 + 3 * len(visited) + 1 + 2
        wait_for_events(landing, expected_count)
        session_cookie = cookie(context, "recs_sid")
        context.close()
        stop_collector(collector)  # SIGTERM: the open landing file is published

    assert page_errors == [], "the pages logged errors (a CSP violation, a script error)"
    assert rejected_records(landing) == []
    events = sorted(landed_events(landing), key=lambda event: event["client_ts"])
    product_pages = [
        [
            ("pageview", None, None, f"/shop/products/{sku}"),
            ("event_product", "detail", sku, f"/shop/products/{sku}"),
            ("impression", None, sku, f"/shop/products/{sku}"),
        ]
        for sku in visited
    ]
    assert [shape(event) for event in events] == [
        ("pageview", None, None, "/shop"),
        *[event for page_events in product_pages for event in page_events],
        ("event_product", "add", visited[-1], f"/shop/products/{visited[-1]}"),
        ("pageview", None, None, "/shop"),
        # Home's carousel is anchored on the last product viewed.
        ("impression", None, visited[-1], "/shop"),
    ]
    impressions = [event for event in events if event["event_type"] == "impression"]
    assert [(e["request_id"], e["shown_skus"]) for e in impressions] == carousels
    assert len({request_id for request_id, _ in carousels}) == len(carousels)
    # The product views the carousel led to carry the request id and the card's position.
    views = [event for event in events if event.get("product_action") == "detail"]
    assert [(e.get("request_id"), e.get("position")) for e in views] == [
        (None, None),
        *[(carousels[step][0], step + 1) for step in range(3)],
    ]
    assert len({event["event_id"] for event in events}) == len(events), "an event landed twice"
    assert {event["session_id"] for event in events} == {session_cookie.split(".")[0]}
    assert len({event["user_id"] for event in events}) == 1


def test_a_product_page_lands_its_impression_and_a_click_lands_a_view_with_its_position(
    tmp_path, model_folder
) -> None:
    landing = tmp_path / "landing"
    product = Storefront.from_config(SHOP).popular[3]
    with (
        running_inference_server(model_folder) as endpoint,
        shop_collector(tmp_path, endpoint) as (shop, collector),
        chromium() as browser,
    ):
        context = new_context(browser)
        page = context.new_page()
        with page.expect_response(lambda response: "/recommend?" in response.url) as asked:
            page.goto(f"{shop}{product.url}")
        answer = asked.value.json()
        asked_for = parse_qs(urlsplit(asked.value.url).query)
        shown = carousel_skus(page)
        assert shown == answer["items"][: len(shown)] and len(shown) == DEFAULT_CAROUSEL_K
        third = page.locator(CAROUSEL_CARDS).nth(2)
        third.locator("a").click()
        page.wait_for_url(f"**/shop/products/{shown[2]}")
        carousel_skus(page)
        wait_for_events(landing, 6)
        page.reload()  # the same page again: a view, but no second click
        reloaded_shown = carousel_skus(page)
        wait_for_events(landing, 9)
        # The middle button opens the first card in a new tab, which lands the click too.
        with context.expect_page() as opened:
            page.locator(CAROUSEL_CARDS).first.locator("a").click(button="middle")
        opened.value.wait_for_load_state()
        carousel_skus(opened.value)
        wait_for_events(landing, 12)
        reloaded_request_id = page.locator(CAROUSEL).get_attribute("data-request-id")
        session_id = cookie(context, "recs_sid").split(".")[0]
        context.close()
        stop_collector(collector)

    assert rejected_records(landing) == []
    events = sorted(landed_events(landing), key=lambda event: event["client_ts"])
    impressions = [event for event in events if event["event_type"] == "impression"]
    first = impressions[0]
    assert {name: first[name] for name in IMPRESSION_FIELDS} == {
        "product_sku": product.sku,
        "url": product.url,
        "shown_skus": shown,
        "request_id": answer["request_id"],
        "model_name": "session-recommender",
        "model_version": MODEL_VERSION,
        "variant": "champion",
        "fallback": None,
    }
    assert [event["request_id"] for event in impressions].count(answer["request_id"]) == 1
    # /recommend was asked for the tracker's session, which picks the variant.
    assert asked_for["session_id"] == [session_id] == [first["session_id"]]
    assert asked_for["session"] == [product.sku]
    views = [event for event in events if event.get("product_action") == "detail"]
    assert [(e["product_sku"], e.get("request_id"), e.get("position")) for e in views] == [
        (product.sku, None, None),
        (shown[2], answer["request_id"], 3),
        (shown[2], None, None),
        (reloaded_shown[0], reloaded_request_id, 1),
    ]


def test_when_the_endpoint_is_down_the_carousel_gives_way_to_a_notice(tmp_path) -> None:
    landing = tmp_path / "landing"
    storefront = Storefront.from_config(SHOP)
    product = storefront.popular[0]
    nothing_listening = f"http://127.0.0.1:{free_port()}"
    with shop_collector(tmp_path, nothing_listening) as (shop, _), chromium() as browser:
        context = new_context(browser)
        page = context.new_page()
        page.goto(f"{shop}{product.url}")
        page.wait_for_selector(f'{CAROUSEL}[data-state="unavailable"]', state="attached")
        assert page.locator("[data-recs-notice]").is_visible()
        assert "not available" in page.locator("[data-recs-notice]").inner_text()
        assert page.locator(CAROUSEL_CARDS).count() == 0
        assert not page.locator("[data-recs-items]").is_visible()
        # The shop still works: the page's events land and the cart takes the product.
        page.click("[data-add-to-cart]")
        events = wait_for_events(landing, 3)
        context.close()
    actions = [(event.get("product_action"), event.get("product_sku")) for event in events]
    assert sorted(actions, key=str) == sorted(
        [(None, None), ("detail", product.sku), ("add", product.sku)], key=str
    )
