"""The shop's catalogue: categories, popularity, style and price, launches, neighbours."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recs_platform.simulation.config import ShopConfig

# Independent random streams derived from the seed: the catalogue, then per day the product
# sequences and the events around them (so sequences never depend on how events are rendered).
# A family's own structures (hidden orders, accessory lists, surges) come from a stream of its
# own, so adding a family changes neither the catalogue nor another family's shop.
CATALOGUE_STREAM = 0
SEQUENCE_STREAM = 1
EVENT_STREAM = 2
FAMILY_STREAM = 3
# Random keys drawn at once when choosing neighbours (8 bytes each): 32 MB.
KEY_BLOCK_CELLS = 4_000_000


def stream_rng(config: ShopConfig, stream: int, day: int = 0) -> np.random.Generator:
    return np.random.default_rng([config.seed, stream, day])


@dataclass(frozen=True)
class Catalogue:
    """Item arrays are indexed by item index; `skus[i]` is item i's SKU (sortable, zero-padded)."""

    skus: list[str]
    category_names: list[str]
    category: np.ndarray  # [n_items] category index
    style: np.ndarray  # [n_items] style in 0..n_styles-1
    price_level: np.ndarray  # [n_items] price level in 0..n_price_levels-1
    base_popularity: np.ndarray  # [n_items] sums to 1
    drift: np.ndarray  # [n_items] per-day change of log popularity
    launch_day: np.ndarray  # [n_items] first day index the item can be viewed
    neighbours: np.ndarray  # [n_items, K] in-category neighbours, -1 where a category is small
    neighbour_weight: np.ndarray  # [n_items, K] w_ij > 0, 0 where there is no neighbour
    category_switch: np.ndarray  # [C, C] Q(c' | c), zero diagonal, rows sum to 1
    intent_tilt: np.ndarray  # [n_intents, n_items] tilt_z(j); intent z = style * P + price

    @property
    def n_items(self) -> int:
        return len(self.skus)

    @property
    def n_categories(self) -> int:
        return len(self.category_names)

    def popularity_on(self, day: int) -> np.ndarray:
        """pop_j(d) for every item, zero before its launch."""
        popularity = self.base_popularity * np.exp(self.drift * day)
        return np.where(self.launch_day <= day, popularity, 0.0)


def zipf_weights(count: int, exponent: float, offset: float = 0.0) -> np.ndarray:
    """(rank + offset)^-exponent for ranks 1..count, summing to 1 (Zipf-Mandelbrot)."""
    weights = (np.arange(1, count + 1, dtype=np.float64) + offset) ** -exponent
    return weights / weights.sum()


def category_sizes(config: ShopConfig) -> np.ndarray:
    """Zipf-like sizes, largest first, each at least K + 1 where the catalogue allows it."""
    minimum = max(2, min(config.n_neighbours + 1, config.n_items // config.n_categories))
    spare = config.n_items - minimum * config.n_categories
    shares = spare * zipf_weights(config.n_categories, config.category_size_exponent)
    sizes = np.floor(shares).astype(np.int64)
    # Largest remainder, ties to the larger category: sizes add up to n_items exactly.
    leftover = spare - int(sizes.sum())
    sizes[np.argsort(-(shares - sizes), kind="stable")[:leftover]] += 1
    return sizes + minimum


def intent_tilt(config: ShopConfig, style: np.ndarray, price_level: np.ndarray) -> np.ndarray:
    """tilt_z(j) = exp(beta_style [s_j = z.style] - beta_price |p_j - z.price|), all z at once."""
    intent_style = np.repeat(np.arange(config.n_styles), config.n_price_levels)[:, None]
    intent_price = np.tile(np.arange(config.n_price_levels), config.n_styles)[:, None]
    log_tilt = config.beta_style * (style[None, :] == intent_style) - config.beta_price * np.abs(
        price_level[None, :] - intent_price
    )
    return np.exp(log_tilt)


def build_catalogue(config: ShopConfig) -> Catalogue:
    rng = stream_rng(config, CATALOGUE_STREAM)
    n_items, n_categories = config.n_items, config.n_categories

    sizes = category_sizes(config)
    category = rng.permutation(np.repeat(np.arange(n_categories), sizes))
    popularity_rank = rng.permutation(n_items)
    offset = config.popularity_offset * n_items
    base_popularity = zipf_weights(n_items, config.popularity_exponent, offset)[popularity_rank]
    style = rng.integers(config.n_styles, size=n_items)
    price_level = rng.integers(config.n_price_levels, size=n_items)

    launch_day = np.zeros(n_items, dtype=np.int64)
    drift = rng.normal(0.0, config.popularity_drift_sd, size=n_items)
    n_new = min(round(config.new_item_share * n_items), n_items - 1) if config.days > 1 else 0
    new_items = rng.choice(n_items, size=n_new, replace=False)
    launch_day[new_items] = rng.integers(1, config.days, size=n_new) if n_new else 0
    drift[new_items] += config.new_item_drift_mean

    neighbours, neighbour_weight = _neighbours(config, rng, category, base_popularity)
    category_switch = _category_switch(config, rng, category, base_popularity)

    sku_width = max(6, len(str(n_items - 1)))
    category_width = max(2, len(str(n_categories - 1)))
    return Catalogue(
        skus=[f"sku-{index:0{sku_width}d}" for index in range(n_items)],
        category_names=[f"category-{index:0{category_width}d}" for index in range(n_categories)],
        category=category,
        style=style,
        price_level=price_level,
        base_popularity=base_popularity,
        drift=drift,
        launch_day=launch_day,
        neighbours=neighbours,
        neighbour_weight=neighbour_weight,
        category_switch=category_switch,
        intent_tilt=intent_tilt(config, style, price_level),
    )


def _neighbours(
    config: ShopConfig, rng: np.random.Generator, category: np.ndarray, popularity: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """K neighbours per item inside its category, drawn without replacement ~ popularity^gamma.

    Weights w_ij = popularity_j^gamma times a lognormal factor, so popular items are both more
    often someone's neighbour and more likely to be picked among the neighbours.
    """
    k = config.n_neighbours
    neighbours = np.full((len(category), k), -1, dtype=np.int64)
    weights = np.zeros((len(category), k))
    log_affinity = config.neighbour_popularity_power * np.log(popularity)
    for c in range(config.n_categories):
        members = np.flatnonzero(category == c)
        size = len(members)
        count = min(k, size - 1)
        chosen = np.empty((size, count), dtype=np.int64)
        # Gumbel top-k: sampling without replacement with probability ~ exp(log_affinity). The
        # keys of a large category are drawn a block of rows at a time (the same numbers as
        # all at once), so memory does not grow with the square of its size.
        for start in range(0, size, max(1, KEY_BLOCK_CELLS // size)):
            rows = np.arange(start, min(start + max(1, KEY_BLOCK_CELLS // size), size))
            keys = log_affinity[members][None, :] + rng.gumbel(size=(len(rows), size))
            keys[np.arange(len(rows)), rows] = -np.inf
            top = np.argpartition(-keys, count - 1, axis=1)[:, :count]
            top_keys = np.take_along_axis(keys, top, axis=1)
            order = np.argsort(-top_keys, axis=1, kind="stable")
            chosen[rows] = np.take_along_axis(top, order, axis=1)
        neighbours[members, :count] = members[chosen]
        factor = rng.lognormal(0.0, config.neighbour_weight_sd, size=(size, count))
        weights[members, :count] = np.exp(log_affinity[members[chosen]]) * factor
    return neighbours, weights


def _category_switch(
    config: ShopConfig, rng: np.random.Generator, category: np.ndarray, popularity: np.ndarray
) -> np.ndarray:
    """Q(c'|c) = rho * Uniform(related(c)) + (1 - rho) * CategoryPopularity(c' | c' != c)."""
    n_categories = config.n_categories
    category_popularity = np.bincount(category, weights=popularity, minlength=n_categories)
    n_related = min(config.n_related_categories, n_categories - 1)
    switch = np.zeros((n_categories, n_categories))
    for c in range(n_categories):
        others = np.delete(np.arange(n_categories), c)
        related = rng.choice(others, size=n_related, replace=False)
        switch[c, related] += config.related_category_weight / n_related
        switch[c, others] += (1 - config.related_category_weight) * (
            category_popularity[others] / category_popularity[others].sum()
        )
    return switch
