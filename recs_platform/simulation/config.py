"""Every parameter of the synthetic shop, with the defaults the README describes."""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

# Monday..Sunday; scaled to mean 1, so `sessions_per_day` is the average over a week.
DEFAULT_WEEKDAY_FACTORS = (0.95, 0.92, 0.95, 1.0, 1.05, 1.08, 1.05)
# Share of sessions starting in each UTC hour (scaled to sum 1): quiet nights, an evening peak.
DEFAULT_HOUR_PROFILE = (
    0.5, 0.3, 0.2, 0.15, 0.15, 0.2, 0.4, 0.7, 1.0, 1.2, 1.3, 1.35,
    1.4, 1.35, 1.3, 1.3, 1.35, 1.5, 1.7, 1.9, 2.0, 1.8, 1.3, 0.8,
)  # fmt: skip

# The shop families (generating processes), each with its exact oracle; see
# `recs_platform.simulation.families` and the package docstring.
FAMILY_NAMES = ("intent", "ordered", "complements", "trends", "revisits", "mixed")

# Named shop sizes (`ShopConfig.preset`): the fields that differ from the default shop. Every
# behaviour and event rate stays the default shop's.
PRESETS: dict[str, dict[str, object]] = {
    # The size of Coveo's SIGIR eCom 2021 browsing data (36 M events, almost 5 M sessions,
    # some 57,000 products): 30 days of 165,000 sessions (4.95 M), 50,000 products in 250
    # categories (200 a category on average), the mixed shop. 4.2 product views a session
    # on average (the default shop has 5) put the events near Coveo's 7.3 a session, so
    # about 36 M events with the default page views, carts, purchases, duplicates and late
    # events; a million returning shoppers keep the default share of returning sessions
    # from piling onto a few user ids.
    "coveo": {
        "days": 30,
        "sessions_per_day": 165_000,
        "n_items": 50_000,
        "n_categories": 250,
        "family": "mixed",
        "mean_session_length": 4.2,
        "n_returning_shoppers": 1_000_000,
    },
}


@dataclass(frozen=True)
class ShopConfig:
    """The synthetic shop: catalogue, shoppers' behaviour and the event stream they produce.

    The same config always gives the same shop, sessions and landing files.
    """

    # Window and scale.
    start: dt.date = dt.date(2026, 11, 1)
    days: int = 14
    sessions_per_day: int = 3000
    n_items: int = 2000
    n_categories: int = 40
    seed: int = 7
    # Which generating process the shoppers follow (one of FAMILY_NAMES); the catalogue is the
    # same for every family.
    family: str = "intent"

    # Catalogue.
    n_styles: int = 4
    n_price_levels: int = 5
    category_size_exponent: float = 0.9  # category of rank r gets a size share ~ r^-exponent
    # Base popularity of the item of popularity rank r: (r + offset * n_items)^-exponent. An
    # offset proportional to the catalogue keeps the curve's shape (and its Gini) the same at
    # any catalogue size, where a pure Zipf law gets more unequal as the catalogue grows.
    popularity_exponent: float = 2.0
    popularity_offset: float = 0.025
    new_item_share: float = 0.1  # items launched inside the window, unavailable before
    popularity_drift_sd: float = 0.02  # per-day drift of log popularity, Normal(0, sd)
    new_item_drift_mean: float = 0.05  # added to the drift of launched items
    n_neighbours: int = 8  # K: in-category neighbours per item
    neighbour_popularity_power: float = 1.0  # gamma: neighbour weight ~ popularity^gamma
    neighbour_weight_sd: float = 0.5  # sigma of the lognormal random factor of a neighbour weight
    n_related_categories: int = 3  # complements a shopper switches to
    related_category_weight: float = 0.7  # share of a switch going to a related category

    # Latent intent (style, price level) and the next-product mixture.
    beta_style: float = 2.5  # tilt towards items of the intended style
    beta_price: float = 1.0  # tilt away from items per price level off the intended one
    p_stay: float = 0.8  # next product from the current category
    alpha: float = 0.6  # within the category: from the current item's neighbours

    # Session length: distinct product views, 1 + NegativeBinomial, capped.
    mean_session_length: float = 5.0
    session_length_dispersion: float = 1.5  # negative binomial shape; smaller = longer tail
    max_session_length: int = 50

    # Traffic and timing.
    weekday_factors: tuple[float, ...] = DEFAULT_WEEKDAY_FACTORS
    hour_profile: tuple[float, ...] = DEFAULT_HOUR_PROFILE
    gap_median_seconds: float = 30.0  # between a shopper's events, lognormal
    gap_sigma: float = 0.9
    network_delay_median_ms: float = 120.0  # server_ts - client_ts, lognormal

    # Events around the product views.
    pageviews_per_product_view: float = 0.6  # plain page views, Poisson before each product view
    add_to_cart_rate: float = 0.07  # per product view
    remove_rate: float = 0.1  # per add: the item is taken out of the cart again
    purchase_rate: float = 0.3  # per session ending with a non-empty cart
    reload_rate: float = 0.02  # per product view: the detail event is sent again right away
    returning_shopper_share: float = 0.35  # sessions with a user_id
    n_returning_shoppers: int = 20000
    duplicate_rate: float = 0.01  # per event: delivered twice, same event_id
    late_rate: float = 0.005  # per event: arrives after the next UTC midnight
    late_max_hours: float = 3.0  # how far past that midnight a late event arrives

    def __post_init__(self) -> None:
        # Range checks only make sense once every value has the right type.
        problems = list(self._type_problems()) or list(self._range_problems())
        if problems:
            raise ValueError("invalid ShopConfig: " + "; ".join(problems))

    def _type_problems(self):
        if not isinstance(self.start, dt.date):
            yield f"start must be a datetime.date, got {self.start!r}"
        for field in fields(self):
            value = getattr(self, field.name)
            if field.type == "int" and (not isinstance(value, int) or isinstance(value, bool)):
                yield f"{field.name} must be an int, got {value!r}"
            if field.type == "str" and not isinstance(value, str):
                yield f"{field.name} must be a string, got {value!r}"
            if field.type == "float" and not (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
            ):
                yield f"{field.name} must be a finite number, got {value!r}"

    def _range_problems(self):
        if self.family not in FAMILY_NAMES:
            yield f"family must be one of {', '.join(FAMILY_NAMES)}, got {self.family!r}"
        positive_ints = (
            "days",
            "sessions_per_day",
            "n_styles",
            "n_price_levels",
            "n_neighbours",
            "n_related_categories",
            "max_session_length",
            "n_returning_shoppers",
        )
        for name in positive_ints:
            if getattr(self, name) < 1:
                yield f"{name} must be at least 1, got {getattr(self, name)}"
        if self.n_categories < 2:
            yield f"n_categories must be at least 2, got {self.n_categories}"
        if self.n_items < 2 * self.n_categories:
            yield (
                f"n_items ({self.n_items}) must be at least twice n_categories "
                f"({self.n_categories}) so every item has a neighbour"
            )
        # Open upper bounds keep every available item reachable from every item, so a session
        # can always continue while some available product is still unseen.
        for name in ("p_stay", "alpha", "related_category_weight"):
            value = getattr(self, name)
            low_ok = value > 0 if name == "p_stay" else value >= 0
            if not (low_ok and value < 1):
                bound = "(0, 1)" if name == "p_stay" else "[0, 1)"
                yield f"{name} must lie in {bound}, got {value}"
        rates = (
            "new_item_share",
            "add_to_cart_rate",
            "remove_rate",
            "purchase_rate",
            "reload_rate",
            "returning_shopper_share",
            "duplicate_rate",
            "late_rate",
        )
        for name in rates:
            if not 0 <= getattr(self, name) < 1:
                yield f"{name} must lie in [0, 1), got {getattr(self, name)}"
        non_negative = (
            "category_size_exponent",
            "popularity_exponent",
            "popularity_offset",
            "popularity_drift_sd",
            "neighbour_popularity_power",
            "neighbour_weight_sd",
            "beta_style",
            "beta_price",
            "gap_sigma",
            "pageviews_per_product_view",
        )
        for name in non_negative:
            if getattr(self, name) < 0:
                yield f"{name} must not be negative, got {getattr(self, name)}"
        for name in ("gap_median_seconds", "network_delay_median_ms", "late_max_hours"):
            if getattr(self, name) <= 0:
                yield f"{name} must be positive, got {getattr(self, name)}"
        if self.gap_median_seconds > 300:
            yield (
                f"gap_median_seconds must be at most 300 (sessions end after 30 min of "
                f"inactivity), got {self.gap_median_seconds}"
            )
        if not 1 < self.mean_session_length <= self.max_session_length:
            yield (
                f"mean_session_length must lie in (1, max_session_length="
                f"{self.max_session_length}], got {self.mean_session_length}"
            )
        if self.session_length_dispersion <= 0:
            yield f"session_length_dispersion must be > 0, got {self.session_length_dispersion}"
        if self.late_max_hours >= 24:
            yield f"late_max_hours must be under 24, got {self.late_max_hours}"
        for name, size in (("weekday_factors", 7), ("hour_profile", 24)):
            values = getattr(self, name)
            if (
                not isinstance(values, tuple)
                or len(values) != size
                or any(not isinstance(v, int | float) or v < 0 for v in values)
                or sum(values) <= 0
            ):
                yield f"{name} must be a tuple of {size} non-negative numbers with a positive sum"

    @classmethod
    def preset(cls, name: str, *, scale: float = 1.0, **changes) -> ShopConfig:
        """The named shop size of `PRESETS`, with `changes` to any field (family, days, seed...).

        `scale` multiplies the sessions per day and the returning shoppers, never the
        catalogue: `scale=0.001` is the same 50,000-product shop with a thousandth of the
        traffic, a smoke test of the full size's catalogue and families.
        """
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
        if not (isinstance(scale, int | float) and 0 < scale <= 1):
            raise ValueError(f"scale must lie in (0, 1], got {scale!r}")
        values = {**PRESETS[name]}
        for field in ("sessions_per_day", "n_returning_shoppers"):
            values[field] = max(1, round(values.get(field, getattr(cls, field)) * scale))
        return cls(**{**values, **changes})

    def to_json(self) -> str:
        values = asdict(self)
        values["start"] = self.start.isoformat()
        return json.dumps(values, indent=2)

    @classmethod
    def from_json(cls, text: str) -> ShopConfig:
        values = json.loads(text)
        unknown = set(values) - {field.name for field in fields(cls)}
        if unknown:
            raise ValueError(f"not ShopConfig fields: {sorted(unknown)}")
        values["start"] = dt.date.fromisoformat(values["start"])
        for name in ("weekday_factors", "hour_profile"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)

    @classmethod
    def read(cls, path: Path) -> ShopConfig:
        try:
            return cls.from_json(Path(path).read_text())
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path} is not a shop configuration: {error}") from error

    @property
    def n_intents(self) -> int:
        return self.n_styles * self.n_price_levels

    @property
    def end(self) -> dt.date:
        """The first day after the window."""
        return self.start + dt.timedelta(days=self.days)

    def date_of(self, day: int) -> dt.date:
        return self.start + dt.timedelta(days=day)

    def sessions_on(self, day: int) -> int:
        """Sessions starting on day index `day`: the average scaled by the weekday factor."""
        mean_factor = sum(self.weekday_factors) / 7
        factor = self.weekday_factors[self.date_of(day).weekday()] / mean_factor
        return round(self.sessions_per_day * factor)
