"""The storefront's pages through the collector app, without a browser: what they render, that
everything is escaped, the 404s, and that no route exists unless a storefront is configured."""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
from html.parser import HTMLParser

import pytest
from starlette.testclient import TestClient

from recs_platform.cli import UsageError, _collector_storefront, build_parser
from recs_platform.collection.app import CollectorConfig, create_app
from recs_platform.serving.storefront import (
    DEFAULT_CAROUSEL_K,
    HOME_PRODUCTS,
    MAX_CARDS,
    Product,
    Storefront,
    products_of,
)
from recs_platform.settings import Settings
from recs_platform.simulation import SHOP_CONFIG_FILE, ShopConfig, build_catalogue

SHOP = ShopConfig(days=2, sessions_per_day=50, n_items=60, n_categories=6, seed=5)
HOSTILE = Product(
    sku='x"><img src=x onerror=alert(1)>',
    name="<script>alert('name')</script> & Co",
    category="<b>Tools</b>",
    style='"Bold"',
    colour="#c0392b",
    shape=1,
    price_cents=1999,
    popularity=1.0,
)


class Tags(HTMLParser):
    """The elements of a page and the text of its inline scripts."""

    def __init__(self, page: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.inline_scripts: list[str] = []
        self._in_script = False
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script" and "src" not in dict(attrs)

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.inline_scripts.append(data)

    def named(self, tag: str) -> list[dict]:
        return [attrs for name, attrs in self.tags if name == tag]


@pytest.fixture(scope="module")
def storefront() -> Storefront:
    return Storefront.from_config(SHOP)


@pytest.fixture
def shop(tmp_path, storefront):
    with TestClient(create_app(CollectorConfig(tmp_path, storefront=storefront))) as client:
        yield client


def test_the_home_page_shows_the_most_popular_products(shop, storefront) -> None:
    response = shop.get("/shop")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    catalogue = build_catalogue(SHOP)
    by_popularity = sorted(
        range(SHOP.n_items), key=lambda i: (-catalogue.base_popularity[i], catalogue.skus[i])
    )
    page = Tags(response.text)
    grid = [attrs["data-sku"] for attrs in page.named("li")]
    assert grid == [catalogue.skus[i] for i in by_popularity[:HOME_PRODUCTS]]
    links = {attrs["href"] for attrs in page.named("a")}
    assert {f"/shop/products/{sku}" for sku in grid} <= links
    assert shop.get("/shop/").text == response.text


def test_a_product_page_has_its_details_the_tracker_and_the_carousel(shop, storefront) -> None:
    product = storefront.popular[0]
    response = shop.get(f"/shop/products/{product.sku}")
    assert response.status_code == 200
    text = response.text
    for shown in (product.name, product.price, product.category, product.style):
        assert shown in text
    assert re.fullmatch(r"€\d+\.99", product.price)
    page = Tags(text)
    scripts = page.named("script")
    # The README snippet from the same origin, then recs.js and the carousel's script.
    assert scripts[0] == {"data-sku": product.sku}
    assert "recs.init({collector: location.origin})" in page.inline_scripts[0]
    assert "recs.pageView()" in page.inline_scripts[0]
    assert "recs.productView(document.currentScript.dataset.sku)" in page.inline_scripts[0]
    assert [s.get("src") for s in scripts[1:]] == ["/recs.js", "/shop/storefront.js"]
    (carousel,) = page.named("section")
    assert carousel["data-sku"] == product.sku
    assert carousel["data-k"] == str(DEFAULT_CAROUSEL_K)
    assert "Recommended for you" in text
    (button,) = page.named("button")
    assert button["data-add-to-cart"] == product.sku
    (svg,) = page.named("svg")
    assert svg["aria-label"] == product.name
    assert {attrs.get("fill") for attrs in page.named("circle") + page.named("rect")} & {
        product.colour
    }


def test_the_content_security_policy_allows_exactly_the_inline_snippet(shop, storefront) -> None:
    response = shop.get(storefront.popular[0].url)
    policy = response.headers["content-security-policy"]
    (snippet,) = Tags(response.text).inline_scripts
    digest = base64.b64encode(hashlib.sha256(snippet.encode()).digest()).decode()
    assert f"script-src 'self' 'sha256-{digest}';" in policy
    assert "'unsafe-inline'" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_same_config_gives_the_same_shop_and_prices_follow_the_price_level() -> None:
    assert products_of(SHOP) == products_of(SHOP)
    catalogue = build_catalogue(SHOP)
    products = products_of(SHOP)
    levels = catalogue.price_level.tolist()
    for level in range(SHOP.n_price_levels - 1):
        cheaper = [p.price_cents for p, at in zip(products, levels, strict=True) if at == level]
        dearer = [p.price_cents for p, at in zip(products, levels, strict=True) if at > level]
        if cheaper and dearer:
            assert max(cheaper) < min(dearer)
    assert len({p.name for p in products}) == len(products)


def test_a_large_shop_gets_names_and_colours_for_every_category_and_style() -> None:
    config = ShopConfig(days=1, sessions_per_day=10, n_items=100, n_categories=45, n_styles=10)
    products = products_of(config)
    assert len({p.category for p in products}) == 45
    assert len({p.style for p in products}) <= 10
    assert all(re.fullmatch(r"#[0-9a-f]{6}", p.colour) for p in products)


def test_an_unknown_sku_gets_a_404_page_with_the_sku_escaped(shop) -> None:
    response = shop.get("/shop/products/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert response.status_code == 404
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    assert "<script>alert" not in response.text
    assert shop.get("/shop/products/").status_code == 404
    assert shop.get("/shop/elsewhere").status_code == 404


def test_every_product_field_is_escaped(tmp_path) -> None:
    hostile_shop = Storefront([HOSTILE])
    with TestClient(create_app(CollectorConfig(tmp_path, storefront=hostile_shop))) as client:
        product_page = client.get(HOSTILE.url)
        home_page = client.get("/shop")
        cards = client.get("/shop/cards", params={"skus": HOSTILE.sku})
    assert product_page.status_code == 200
    assert HOSTILE.url == "/shop/products/x%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E"
    (card,) = cards.json()["cards"]
    for text in (product_page.text, home_page.text, card["html"]):
        page = Tags(text)
        assert not page.named("img") and not page.named("b")
        assert not [s for s in page.inline_scripts if "alert" in s]
        assert "&lt;script&gt;alert(&#x27;name&#x27;)&lt;/script&gt; &amp; Co" in text
    page = Tags(product_page.text)
    assert page.named("button")[0]["data-add-to-cart"] == HOSTILE.sku
    assert page.named("section")[0]["data-sku"] == HOSTILE.sku
    assert Tags(card["html"]).named("li")[0]["data-sku"] == HOSTILE.sku


def test_cards_come_in_the_order_asked_with_unknown_skus_apart(shop, storefront) -> None:
    first, second = storefront.popular[1].sku, storefront.popular[0].sku
    response = shop.get("/shop/cards", params={"skus": f"{first},nope,{second},{first}"})
    assert response.status_code == 200
    document = response.json()
    assert [card["sku"] for card in document["cards"]] == [first, second]
    assert document["unknown"] == ["nope"]
    assert f'data-sku="{first}"' in document["cards"][0]["html"]
    assert shop.get("/shop/cards").json() == {"cards": [], "unknown": []}
    too_many = ",".join(f"s{n}" for n in range(MAX_CARDS + 1))
    assert shop.get("/shop/cards", params={"skus": too_many}).status_code == 400
    assert shop.get("/shop/cards?skus=%ff").status_code == 400


def test_the_carousel_script_is_served(shop) -> None:
    response = shop.get("/shop/storefront.js")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/javascript; charset=utf-8"
    assert "/recommend?" in response.text and "data-recs-carousel" in response.text


def test_only_get_is_answered(shop, storefront) -> None:
    response = shop.post(storefront.popular[0].url, content=b"")
    assert response.status_code == 405


@pytest.mark.parametrize("path", ["/shop", "/shop/products/sku-000001", "/shop/storefront.js"])
def test_no_shop_routes_without_a_storefront(tmp_path, path) -> None:
    with TestClient(create_app(CollectorConfig(tmp_path))) as client:
        response = client.get(path)
        assert response.status_code == 404
        assert response.json() == {"error": f"no route GET {path}"}
        assert client.get("/health").status_code == 200


def collector_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["collector", *argv])


def test_the_collector_serves_the_landing_zones_simulated_shop_by_default(tmp_path) -> None:
    settings = Settings(env="local", data_dir=tmp_path, partitions_start=SHOP.start)
    assert _collector_storefront(collector_args(), settings) is None
    shop_json = settings.landing_dir / SHOP_CONFIG_FILE
    shop_json.parent.mkdir(parents=True)
    shop_json.write_text(SHOP.to_json())
    default = _collector_storefront(collector_args(), settings)
    assert default is not None and len(default.products) == SHOP.n_items
    assert _collector_storefront(collector_args("--no-storefront"), settings) is None

    other = tmp_path / "other.json"
    other.write_text(ShopConfig(n_items=30, n_categories=3).to_json())
    explicit = _collector_storefront(collector_args("--storefront", str(other)), settings)
    assert len(explicit.products) == 30
    with pytest.raises(UsageError, match="missing.json"):
        _collector_storefront(
            collector_args("--storefront", str(tmp_path / "missing.json")), settings
        )
    other.write_text("{}")
    with pytest.raises(UsageError, match="not a shop configuration"):
        _collector_storefront(collector_args("--storefront", str(other)), settings)
    with pytest.raises(UsageError, match="not both"):
        _collector_storefront(
            collector_args("--storefront", str(other), "--no-storefront"), settings
        )
