"""A small shop on the simulated catalogue, served by the collector, that closes the loop.

Product pages send their events through the collector's `recs.js` (the README snippet, from the
same origin) and show a "Recommended for you" carousel that `storefront.js` fills from
`GET /recommend` with the session's viewed SKUs, so every click both lands an event and changes
what the model is asked. What the carousel shows lands as an impression with the answer's request
id, and the product view a click on it opens carries that request id and the card's position.
Routes, answered by the collector when `CollectorConfig.storefront` is set (404 otherwise):

- `GET /shop`: home, a grid of the most popular products;
- `GET /shop/products/<sku>`: a product page (404 page for an SKU the catalogue lacks);
- `GET /shop/cards?skus=a,b`: the product cards the carousel shows, rendered here so that every
  card is escaped in one place (`{"cards": [{"sku", "html"}], "unknown": [...]}`);
- `GET /shop/storefront.js`: the carousel's script (the collector serves the static file).

Everything is rendered on the server and escaped; the only inline script is the snippet, the same
text on every page (the SKU travels in a `data-` attribute), so the pages carry a strict
Content-Security-Policy that allows exactly that script by its hash.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import orjson

if TYPE_CHECKING:  # the simulator (numpy and all) loads only when a storefront is built
    from recs_platform.simulation import ShopConfig

SHOP_PATH = "/shop"
PRODUCTS_PREFIX = "/shop/products/"
CARDS_PATH = "/shop/cards"
SCRIPT_PATH = "/shop/storefront.js"
DEFAULT_CAROUSEL_K = 8
HOME_PRODUCTS = 12
MAX_CARDS = 100
"""At most this many cards per `/shop/cards` request (the facade's `MAX_K`)."""

Response = tuple[int, bytes, list[tuple[bytes, bytes]]]

# (category, product noun) by category index; names repeat with a number past the end.
CATEGORY_NOUNS = (
    ("Lamps", "Lamp"),
    ("Chairs", "Chair"),
    ("Mugs", "Mug"),
    ("Backpacks", "Backpack"),
    ("Scarves", "Scarf"),
    ("Sneakers", "Sneaker"),
    ("Teapots", "Teapot"),
    ("Notebooks", "Notebook"),
    ("Blankets", "Blanket"),
    ("Watches", "Watch"),
    ("Vases", "Vase"),
    ("Jackets", "Jacket"),
    ("Headphones", "Headphones"),
    ("Candles", "Candle"),
    ("Cushions", "Cushion"),
    ("Bottles", "Bottle"),
    ("Wallets", "Wallet"),
    ("Rugs", "Rug"),
    ("Kettles", "Kettle"),
    ("Sweaters", "Sweater"),
    ("Clocks", "Clock"),
    ("Plant pots", "Plant pot"),
    ("Pans", "Pan"),
    ("Umbrellas", "Umbrella"),
    ("Tote bags", "Tote bag"),
    ("Desks", "Desk"),
    ("Mirrors", "Mirror"),
    ("Sunglasses", "Sunglasses"),
    ("Towels", "Towel"),
    ("Speakers", "Speaker"),
    ("Bowls", "Bowl"),
    ("Beanies", "Beanie"),
    ("Shelves", "Shelf"),
    ("Frames", "Frame"),
    ("Gloves", "Gloves"),
    ("Baskets", "Basket"),
    ("Stools", "Stool"),
    ("Pens", "Pen"),
    ("Aprons", "Apron"),
    ("Knives", "Knife"),
)
# (style name, colour) by style index; past the end, "Style <n>" on a colour wheel.
STYLES = (
    ("Classic", "#3b5b92"),
    ("Modern", "#2a9d8f"),
    ("Rustic", "#b5651d"),
    ("Bold", "#c0392b"),
    ("Nordic", "#5f6f7f"),
    ("Vintage", "#8e5c87"),
    ("Sunny", "#c99a06"),
    ("Forest", "#2e7d32"),
)
PRICE_LEVEL_BASE_EUROS = 9.0
PRICE_LEVEL_FACTOR = 2.2


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    category: str
    style: str
    colour: str
    """The style's colour, `#rrggbb`: the placeholder image is drawn in it."""
    shape: int
    """Which placeholder shape (0..2), from the category, so a category looks alike."""
    price_cents: int
    popularity: float

    @property
    def url(self) -> str:
        return PRODUCTS_PREFIX + quote(self.sku, safe="")

    @property
    def price(self) -> str:
        return f"€{self.price_cents // 100}.{self.price_cents % 100:02d}"


def products_of(config: ShopConfig) -> list[Product]:
    """The simulated catalogue as shop products: names, prices and looks made up from each
    item's SKU, category, style and price level (the same config, the same shop)."""
    from recs_platform.simulation import build_catalogue

    catalogue = build_catalogue(config)
    products = []
    for index, sku in enumerate(catalogue.skus):
        category_index = int(catalogue.category[index])
        category, noun = _category_and_noun(category_index)
        style, colour = _style(int(catalogue.style[index]), config.n_styles)
        products.append(
            Product(
                sku=sku,
                name=f"{style} {noun} No. {index}",
                category=category,
                style=style,
                colour=colour,
                shape=category_index % 3,
                price_cents=_price_cents(int(catalogue.price_level[index]), index),
                popularity=float(catalogue.base_popularity[index]),
            )
        )
    return products


def _category_and_noun(category_index: int) -> tuple[str, str]:
    category, noun = CATEGORY_NOUNS[category_index % len(CATEGORY_NOUNS)]
    repeat = category_index // len(CATEGORY_NOUNS)
    return (f"{category} {repeat + 1}" if repeat else category), noun


def _style(style_index: int, n_styles: int) -> tuple[str, str]:
    if n_styles <= len(STYLES):
        return STYLES[style_index]
    hue = round(360 * style_index / n_styles)
    return f"Style {style_index + 1}", _hsl_to_hex(hue, 0.5, 0.42)


def _hsl_to_hex(hue: int, saturation: float, lightness: float) -> str:
    chroma = (1 - abs(2 * lightness - 1)) * saturation
    second = chroma * (1 - abs((hue / 60) % 2 - 1))
    sector = int(hue // 60) % 6
    red, green, blue = [
        (chroma, second, 0),
        (second, chroma, 0),
        (0, chroma, second),
        (0, second, chroma),
        (second, 0, chroma),
        (chroma, 0, second),
    ][sector]
    match = lightness - chroma / 2
    return "#" + "".join(f"{round((channel + match) * 255):02x}" for channel in (red, green, blue))


def _price_cents(price_level: int, index: int) -> int:
    """A x.99 price: the level's base (each level about twice the last), varied per item."""
    base = PRICE_LEVEL_BASE_EUROS * PRICE_LEVEL_FACTOR**price_level
    variation = 0.8 + 0.4 * ((index * 7919) % 100) / 100
    return max(1, int(base * variation)) * 100 - 1


def _tint(colour: str, share_white: float = 0.86) -> str:
    channels = [int(colour[at : at + 2], 16) for at in (1, 3, 5)]
    mixed = [round(channel + (255 - channel) * share_white) for channel in channels]
    return "#" + "".join(f"{channel:02x}" for channel in mixed)


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


# The README snippet, the same on every page: the SKU comes from the script's data-sku.
SNIPPET = """
  window.recs = window.recs || {q: []};
  ["init", "pageView", "productView", "addToCart", "removeFromCart", "purchase",
   "impression", "carouselClick"]
    .forEach(function (m) {
      recs[m] = recs[m] || function () { recs.q.push([m, [].slice.call(arguments)]); };
    });
  recs.init({collector: location.origin});
  recs.pageView();
  if (document.currentScript.dataset.sku) recs.productView(document.currentScript.dataset.sku);
"""

STYLESHEET = """
*{box-sizing:border-box}
[hidden]{display:none!important}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1f2328;background:#f5f6f8}
a{color:inherit;text-decoration:none}
.bar{background:#fff;border-bottom:1px solid #e2e4e8}
.bar-inner,main,footer{max-width:1120px;margin:0 auto;padding-left:20px;padding-right:20px}
.bar-inner{display:flex;justify-content:space-between;align-items:center;height:56px}
.brand{font-weight:700;font-size:18px;letter-spacing:.2px}
.cart{color:#57606a;font-size:14px}
main{padding-top:24px;padding-bottom:32px}
h1{font-size:24px;margin:0 0 16px}
h2{font-size:18px;margin:0}
.crumbs{font-size:13px;color:#57606a;margin:0 0 12px}
.crumbs a:hover,.card a:hover .name{text-decoration:underline}
.grid{list-style:none;padding:0;margin:0;display:grid;
grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:16px}
.card{background:#fff;border:1px solid #e2e4e8;border-radius:8px}
.card a{display:block;padding:10px}
.art{display:block;width:100%;height:auto;border-radius:6px}
.card .name{font-weight:600;font-size:13px;margin-top:8px}
.card .meta{color:#57606a;font-size:12px}
.card .price{font-weight:600;font-size:14px;margin-top:2px}
.product{display:grid;grid-template-columns:minmax(0,440px) 1fr;gap:32px;background:#fff;
border:1px solid #e2e4e8;border-radius:8px;padding:24px}
.product h1{margin-bottom:6px}
.product .meta{color:#57606a;margin:0 0 12px}
.product .blurb{margin:0 0 16px;max-width:52ch}
.product .price{font-size:24px;font-weight:700;margin:0 0 20px}
.product .sku{color:#8c959f;font-size:12px;margin-top:20px}
button{font:inherit;font-weight:600;background:#1f6feb;color:#fff;border:0;border-radius:6px;
padding:10px 22px;cursor:pointer}
button:hover{background:#1858c4}
button:disabled{background:#2da44e;cursor:default}
.carousel{margin-top:28px}
.carousel-head{display:flex;align-items:baseline;gap:10px;margin-bottom:12px}
.model{color:#8c959f;font-size:12px}
.row{list-style:none;padding:0 0 4px;margin:0;display:grid;grid-auto-flow:column;
grid-auto-columns:minmax(124px,1fr);gap:12px;overflow-x:auto}
.notice{color:#57606a;font-size:14px;margin:0}
.back a{color:#0b57d0;text-decoration:underline}
footer{color:#8c959f;font-size:12px;padding-top:8px;padding-bottom:32px}
@media (max-width:720px){.product{grid-template-columns:1fr}}
"""


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


# Same-origin scripts, fetches and beacons; the snippet and the stylesheet by their hashes.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; "
    f"script-src 'self' {_csp_hash(SNIPPET)}; "
    f"style-src {_csp_hash(STYLESHEET)}; "
    "connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HTML_HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
_JSON_HEADERS = [
    (b"content-type", b"application/json"),
    (b"cache-control", b"no-cache"),
    (b"x-content-type-options", b"nosniff"),
]


def is_shop_path(path: str) -> bool:
    return path == SHOP_PATH or path.startswith(SHOP_PATH + "/")


class Storefront:
    """The shop's pages for a fixed list of products (`Storefront.from_config` for the simulated
    shop). `respond` answers one `GET` under `/shop` with (status, body, headers)."""

    def __init__(
        self,
        products: Sequence[Product],
        shop_name: str = "The Simulated Shop",
        footer: str = "",
        carousel_k: int = DEFAULT_CAROUSEL_K,
        home_products: int = HOME_PRODUCTS,
    ):
        if carousel_k < 1:
            raise ValueError(f"carousel_k must be at least 1, got {carousel_k}")
        self.products = {product.sku: product for product in products}
        if len(self.products) != len(products):
            raise ValueError("products have duplicate SKUs")
        self.popular = sorted(products, key=lambda product: (-product.popularity, product.sku))[
            :home_products
        ]
        self.shop_name = shop_name
        self.footer = footer
        self.carousel_k = carousel_k

    @classmethod
    def from_config(cls, config: ShopConfig, **options) -> Storefront:
        footer = (
            f"A shop simulated by recs-platform: {config.n_items} products in "
            f"{config.n_categories} categories (seed {config.seed})."
        )
        return cls(products_of(config), footer=footer, **options)

    @classmethod
    def read(cls, shop_config_path: Path, **options) -> Storefront:
        """The storefront of the shop a `shop.json` describes (the simulator writes one to
        `landing/simulator/shop.json`); raises ValueError or OSError for an unusable file."""
        from recs_platform.simulation import ShopConfig

        return cls.from_config(ShopConfig.read(shop_config_path), **options)

    def respond(self, path: str, query: Mapping[str, str]) -> Response:
        """The answer to `GET path?query` for a path under `/shop` (`is_shop_path`)."""
        if path in (SHOP_PATH, SHOP_PATH + "/"):
            return 200, self.home_page().encode(), list(_HTML_HEADERS)
        if path == CARDS_PATH:
            return self.cards(query.get("skus", ""))
        if path.startswith(PRODUCTS_PREFIX):
            sku = path[len(PRODUCTS_PREFIX) :]
            product = self.products.get(sku)
            if product is not None:
                return 200, self.product_page(product).encode(), list(_HTML_HEADERS)
            return 404, self.not_found_page(f"No product {sku}").encode(), list(_HTML_HEADERS)
        return 404, self.not_found_page(f"No page {path}").encode(), list(_HTML_HEADERS)

    def home_page(self) -> str:
        grid = "".join(self.card(product) for product in self.popular)
        return self._page(
            title="Popular products",
            sku=None,
            main=(
                '<h1>Popular products</h1><ul class="grid" data-popular>'
                f"{grid}</ul>{self._carousel(None, 'Based on what you viewed')}"
            ),
        )

    def product_page(self, product: Product) -> str:
        name, sku = _escape(product.name), _escape(product.sku)
        return self._page(
            title=product.name,
            sku=product.sku,
            main=(
                f'<p class="crumbs"><a href="{SHOP_PATH}">{_escape(self.shop_name)}</a> › '
                f"{_escape(product.category)}</p>"
                f'<article class="product" data-product="{sku}">'
                f"{self.placeholder(product, 'big')}"
                f"<div><h1>{name}</h1>"
                f'<p class="meta">{_escape(product.style)} · {_escape(product.category)}</p>'
                f'<p class="blurb">From our {_escape(product.category.lower())} range, in the '
                f"{_escape(product.style.lower())} style.</p>"
                f'<p class="price">{_escape(product.price)}</p>'
                f'<button type="button" data-add-to-cart="{sku}">Add to cart</button>'
                f'<p class="sku">SKU {sku}</p></div></article>'
                f"{self._carousel(product.sku, 'Recommended for you')}"
            ),
        )

    def not_found_page(self, message: str) -> str:
        return self._page(
            title="Not found",
            sku=None,
            main=(
                f"<h1>Not found</h1><p>{_escape(message)}.</p>"
                f'<p class="back"><a href="{SHOP_PATH}">Back to {_escape(self.shop_name)}</a></p>'
            ),
        )

    def cards(self, skus_text: str) -> Response:
        """The cards of the SKUs asked for, in that order; SKUs the shop lacks are listed apart
        (a model trained on another catalogue: the carousel leaves them out)."""
        skus = list(dict.fromkeys(sku.strip() for sku in skus_text.split(",") if sku.strip()))
        if len(skus) > MAX_CARDS:
            document = {"error": f"{len(skus)} SKUs; ask for at most {MAX_CARDS}"}
            return 400, orjson.dumps(document), list(_JSON_HEADERS)
        cards = [
            {"sku": sku, "html": self.card(self.products[sku])}
            for sku in skus
            if sku in self.products
        ]
        unknown = [sku for sku in skus if sku not in self.products]
        return 200, orjson.dumps({"cards": cards, "unknown": unknown}), list(_JSON_HEADERS)

    def card(self, product: Product) -> str:
        return (
            f'<li class="card" data-sku="{_escape(product.sku)}">'
            f'<a href="{_escape(product.url)}">{self.placeholder(product, "small")}'
            f'<div class="name">{_escape(product.name)}</div>'
            f'<div class="meta">{_escape(product.category)}</div>'
            f'<div class="price">{_escape(product.price)}</div></a></li>'
        )

    @staticmethod
    def placeholder(product: Product, size: str) -> str:
        """An inline SVG in the style's colour, its shape and letter from the category."""
        colour = _escape(product.colour)
        shapes = (
            f'<circle cx="80" cy="58" r="32" fill="{colour}"/>',
            f'<rect x="48" y="26" width="64" height="64" rx="10" fill="{colour}"/>',
            f'<path d="M80 22 L116 90 L44 90 Z" fill="{colour}"/>',
        )
        initial = _escape(product.category[:1].upper())
        return (
            f'<svg class="art art-{_escape(size)}" viewBox="0 0 160 120" role="img" '
            f'aria-label="{_escape(product.name)}" xmlns="http://www.w3.org/2000/svg">'
            f'<rect width="160" height="120" fill="{_escape(_tint(product.colour))}"/>'
            f"{shapes[product.shape % len(shapes)]}"
            f'<rect x="56" y="100" width="48" height="6" rx="3" fill="{colour}" opacity=".3"/>'
            f'<text x="80" y="69" text-anchor="middle" font-size="26" font-weight="700" '
            f'font-family="sans-serif" fill="#fff">{initial}</text></svg>'
        )

    def _carousel(self, sku: str | None, heading: str) -> str:
        """The carousel's frame; storefront.js fills it (or hides it with a notice)."""
        data_sku = f' data-sku="{_escape(sku)}"' if sku is not None else ""
        return (
            f'<section class="carousel" data-recs-carousel data-k="{self.carousel_k}"'
            f'{data_sku} data-state="loading" aria-live="polite">'
            f'<div class="carousel-head"><h2>{_escape(heading)}</h2>'
            '<span class="model" data-recs-model></span></div>'
            '<ul class="row" data-recs-items></ul>'
            '<p class="notice" data-recs-notice hidden></p></section>'
        )

    def _page(self, title: str, sku: str | None, main: str) -> str:
        data_sku = f' data-sku="{_escape(sku)}"' if sku is not None else ""
        return (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="icon" href="data:,">'
            f"<title>{_escape(title)} · {_escape(self.shop_name)}</title>"
            f"<style>{STYLESHEET}</style>"
            f"<script{data_sku}>{SNIPPET}</script>"
            # Both deferred, so they run in this order: the carousel finds the tracker loaded
            # and asks /recommend for the tracker's session (the same variant on every page).
            '<script defer src="/recs.js"></script>'
            f'<script defer src="{SCRIPT_PATH}"></script></head><body>'
            '<header class="bar"><div class="bar-inner">'
            f'<a class="brand" href="{SHOP_PATH}">{_escape(self.shop_name)}</a>'
            '<span class="cart">Cart (<span data-cart-count>0</span>)</span></div></header>'
            f"<main>{main}</main><footer>{_escape(self.footer)}</footer></body></html>"
        )
