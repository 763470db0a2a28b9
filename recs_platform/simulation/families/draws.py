"""Drawing a family's next product without its dense [B, n_items] rows.

Every family's next-product law is a mixture of a few parts, each sparse (a product's K
neighbours, its accessories, a return to a product seen) or popularity inside some categories
(the product's own category, a related one, the whole shop). So a draw picks the component
(its weight renormalised over the components with an available product, as `mix` does), then
the category, then the product, each by inverse CDF over a short array. Seen products are
excluded by rejection, which samples the mixture restricted to unseen products exactly:
redrawing until an unseen product comes up gives M(j) [j unseen] / (1 - M(seen)).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from recs_platform.simulation.catalogue import Catalogue

# Rounds of rejection before the rare leftovers (sessions that have seen most of the products
# they are likely to see, or have nothing left) are drawn from the exact rows instead.
MAX_REJECTION_ROUNDS = 64

# draw(rows, u1, u2): one product per row of `rows` (indices into the sessions being drawn)
# from one component, with two uniforms per row; -1 on a floating-point miss.
ComponentDraw = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def choose(weights: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """A column per row ~ the row's non-negative weights [B, k], by inverse CDF; -1 for a row
    without weight (or when uniform * total rounds up to the total). A column with zero
    weight is never chosen."""
    cumulative = np.cumsum(weights, axis=1)
    total = cumulative[:, -1]
    chosen = (cumulative <= (uniform * total)[:, None]).sum(axis=1)
    return np.where((total > 0) & (chosen < weights.shape[1]), chosen, -1)


def normalised_cumulative(weights: np.ndarray) -> np.ndarray:
    """Rows of cumulative shares (each ending at 1), zero rows where a row has no weight."""
    cumulative = np.cumsum(weights, axis=-1)
    total = cumulative[..., -1:]
    return np.divide(cumulative, total, out=np.zeros_like(cumulative), where=total > 0)


def choose_cumulative(cumulative: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """A column per row of precomputed `normalised_cumulative` rows [B, k]; -1 for a zero row."""
    chosen = (cumulative <= uniform[:, None]).sum(axis=1)
    return np.where(chosen < cumulative.shape[1], chosen, -1)


def draw_mixture(
    rng: np.random.Generator,
    weights: np.ndarray,
    components: Sequence[ComponentDraw],
    rows: np.ndarray,
) -> np.ndarray:
    """One product for each of `rows` (indices into `weights` [B, k]): component k ~ the row's
    weights, then `components[k]`'s draw for those rows; -1 for a row without weight or a
    floating-point miss."""
    uniform = rng.random((len(rows), 3))
    component = choose(weights[rows], uniform[:, 0])
    drawn = np.full(len(rows), -1, dtype=np.int64)
    for index, draw in enumerate(components):
        chosen = np.flatnonzero(component == index)
        if chosen.size:
            drawn[chosen] = draw(rows[chosen], uniform[chosen, 1], uniform[chosen, 2])
    return drawn


def draw_unseen_mixture(
    rng: np.random.Generator,
    history: np.ndarray,
    weights: np.ndarray,
    components: Sequence[ComponentDraw],
) -> np.ndarray:
    """`draw_unseen` of `draw_mixture`: the mixture restricted to each row's unseen products."""
    return draw_unseen(rng, history, lambda rng, rows: draw_mixture(rng, weights, components, rows))


def draw_unseen(
    rng: np.random.Generator,
    history: np.ndarray,
    draw_once: Callable[[np.random.Generator, np.ndarray], np.ndarray],
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """The first draw of `draw_once(rng, rows)` that is not in the row's `history` [B, t].

    `draw_once` draws from the mixture before the exclusion for the given rows (indices into
    `history`); a draw of -1 counts as a miss and is drawn again. Rows still without a product
    after `MAX_REJECTION_ROUNDS` rounds get -1: the caller draws them from the exact rows.
    """
    count = len(history)
    rows = np.arange(count) if rows is None else rows
    result = np.full(count, -1, dtype=np.int64)
    pending = rows
    for _ in range(MAX_REJECTION_ROUNDS):
        drawn = draw_once(rng, pending)
        rejected = (history[pending] == drawn[:, None]).any(axis=1) | (drawn < 0)
        result[pending[~rejected]] = drawn[~rejected]
        pending = pending[rejected]
        if not pending.size:
            break
    return result


class CategoryDraws:
    """Products ~ a day's weights inside a category, by inverse CDF over one sorted array.

    `keys` holds, in category order, c + the share of category c's weight up to and including
    each product: a draw in category c with uniform u is the first key above c + u, so a
    product with zero weight is never drawn, and each category's shares are computed on their
    own (no cancellation against the other categories' mass).
    """

    def __init__(self, catalogue: Catalogue, weights: np.ndarray):
        n_categories = catalogue.n_categories
        self.order = np.argsort(catalogue.category, kind="stable")
        sizes = np.bincount(catalogue.category, minlength=n_categories)
        self.start = np.concatenate([[0], np.cumsum(sizes)])
        sorted_weights = weights[self.order]
        self.keys = np.empty(len(self.order))
        self.mass = np.zeros(n_categories)
        for category in range(n_categories):
            segment = slice(self.start[category], self.start[category + 1])
            cumulative = np.cumsum(sorted_weights[segment])
            self.mass[category] = cumulative[-1] if len(cumulative) else 0.0
            shares = cumulative / self.mass[category] if self.mass[category] > 0 else 0.0
            self.keys[segment] = category + shares

    def draw(self, categories: np.ndarray, uniform: np.ndarray) -> np.ndarray:
        """A product of each category ~ weight; -1 for a category without weight."""
        position = np.searchsorted(self.keys, categories + uniform, side="right")
        inside = (position >= self.start[categories]) & (position < self.start[categories + 1])
        return np.where(inside, self.order[np.minimum(position, len(self.order) - 1)], -1)

    def category_cumulative(self, category_weights: np.ndarray) -> np.ndarray:
        """`normalised_cumulative` of category weights times each category's mass."""
        return normalised_cumulative(category_weights * self.mass)

    def draw_pooled(
        self, cumulative: np.ndarray, first_uniform: np.ndarray, second_uniform: np.ndarray
    ) -> np.ndarray:
        """A product ~ weight among the categories of a pool, given the pool's
        `category_cumulative` rows [B, C]: the category ~ its mass, then the product in it."""
        category = choose_cumulative(cumulative, first_uniform)
        drawn = self.draw(np.maximum(category, 0), second_uniform)
        return np.where(category >= 0, drawn, -1)


def draw_slots(
    slots: np.ndarray, weights: np.ndarray, rows: np.ndarray, uniform: np.ndarray
) -> np.ndarray:
    """A product per row ~ `weights[rows]` over the row's `slots[rows]` (neighbours,
    accessories; [n, K] each, slot -1 with weight 0); -1 for a row without weight."""
    slot = choose(weights[rows], uniform)
    return np.where(slot >= 0, slots[rows, np.maximum(slot, 0)], -1)


class OneWayWalk:
    """Steps one way along a hidden order: from slot q, the product at slot k > q of the same
    category with probability ~ kappa^(k - q - 1) p_k (p: a day's appeal, 0 if unavailable).

    With the discounted suffix D_k = p_k + kappa D_{k+1} (0 past the category), the walk
    has mass D_{q+1} and P(K >= k) = kappa^(k - q - 1) D_k / D_{q+1}, which falls with k: a
    draw is the last k with P(K >= k) > u, found by bisection. Exact, and nothing of size
    category^2.
    """

    def __init__(self, start: np.ndarray, appeal: np.ndarray, kappa: float):
        """`start` [C + 1]: where each category's slots begin; `appeal` [n_slots]."""
        sizes = np.diff(start)
        n_categories, longest = len(sizes), int(sizes.max())
        self.log_kappa = np.log(kappa)
        self.end = np.repeat(start[1:], sizes)  # one past each slot's category
        padded = np.zeros((n_categories, longest + 1))
        local = np.arange(len(appeal)) - np.repeat(start[:-1], sizes)
        category = np.repeat(np.arange(n_categories), sizes)
        padded[category, local] = appeal
        suffix = np.zeros_like(padded)
        for column in range(longest - 1, -1, -1):
            suffix[:, column] = padded[:, column] + kappa * suffix[:, column + 1]
        self.appeal = appeal
        self.suffix = suffix[category, local]  # D_k for every slot
        with np.errstate(divide="ignore"):
            self.log_suffix = np.log(self.suffix)

    def mass(self, slots: np.ndarray) -> np.ndarray:
        """D_{q+1}: the walk's total weight from each slot q (0 at the category's end)."""
        after = slots + 1
        return np.where(
            after < self.end[slots], self.suffix[np.minimum(after, len(self.suffix) - 1)], 0.0
        )

    def draw(self, slots: np.ndarray, uniform: np.ndarray) -> np.ndarray:
        """The slot stepped to from each slot q (whose `mass` must be positive); -1 on a
        floating-point miss (a slot without appeal)."""
        end = self.end[slots]
        log_uniform = np.log(np.maximum(uniform, np.finfo(float).tiny))
        base = self.log_suffix[slots + 1]
        low, high = slots + 2, end.copy()  # the first k in [low, high] with P(K >= k) <= u
        while (low < high).any():
            middle = (low + high) // 2
            searching = low < high
            at = np.minimum(middle, len(self.suffix) - 1)
            below = (middle - slots - 1) * self.log_kappa + self.log_suffix[
                at
            ] - base <= log_uniform
            below |= middle >= end
            high = np.where(searching & below, middle, high)
            low = np.where(searching & ~below, middle + 1, low)
        drawn = low - 1
        return np.where(self.appeal[drawn] > 0, drawn, -1)


class PopularityDraws:
    """The popularity-driven parts of one day (`DayPopularity`): Nbr_d(j | i), CatPop_d(j | c),
    GlobalPop_d(j) and a switch sum_{c' != c} Q(c' | c) CatPop_d(j | c'), each drawn sparsely;
    `has_*` say which have an available product (a component without one drops out)."""

    def __init__(self, catalogue: Catalogue, day):
        self.catalogue = catalogue
        self.day = day
        self.categories = CategoryDraws(catalogue, day.popularity)
        self.global_cumulative = normalised_cumulative(self.categories.mass)
        self.has_any = bool(self.categories.mass.sum() > 0)
        self.has_neighbours = day.neighbour_weight.sum(axis=1) > 0
        switch = catalogue.category_switch * day.category_has_items[None, :]
        self.switch_cumulative = normalised_cumulative(switch)
        self.has_switch = switch.sum(axis=1) > 0

    def neighbour(self, items: np.ndarray, uniform: np.ndarray) -> np.ndarray:
        return draw_slots(self.catalogue.neighbours, self.day.neighbour_weight, items, uniform)

    def in_category(self, categories: np.ndarray, uniform: np.ndarray) -> np.ndarray:
        return self.categories.draw(categories, uniform)

    def anywhere(self, first_uniform: np.ndarray, second_uniform: np.ndarray) -> np.ndarray:
        cumulative = np.broadcast_to(
            self.global_cumulative, (len(first_uniform), len(self.global_cumulative))
        )
        return self.categories.draw_pooled(cumulative, first_uniform, second_uniform)

    def switch(
        self, categories: np.ndarray, first_uniform: np.ndarray, second_uniform: np.ndarray
    ) -> np.ndarray:
        return self.categories.draw_pooled(
            self.switch_cumulative[categories], first_uniform, second_uniform
        )
