"""Sampling product sequences for all sessions of a day at once (session-parallel steps).

`DaySampler` draws the intent family by rejection from its mixture (fast, and today's draws);
`sample_views` draws any family from its `step_probabilities` rows by inverse CDF.
"""

from __future__ import annotations

import numpy as np

from recs_platform.simulation.dynamics import ShopDay
from recs_platform.simulation.families.base import ShopFamily

# Rounds of rejection before the rare leftovers (sessions that have seen most of the products
# they are likely to see) are drawn from the exact renormalised distribution instead.
MAX_REJECTION_ROUNDS = 64


class DaySampler:
    """Draws first and next products from the day's mixture, vectorised over sessions."""

    def __init__(self, shop_day: ShopDay):
        self.shop_day = shop_day
        catalogue = shop_day.catalogue
        self.n_items = catalogue.n_items
        self.items_by_category = np.argsort(catalogue.category, kind="stable")
        category_sizes = np.bincount(catalogue.category, minlength=catalogue.n_categories)
        self.category_start = np.concatenate([[0], np.cumsum(category_sizes)])
        # One cumulative array over (intent, item in category order), with a leading zero: the
        # items of category c under intent z form one contiguous segment of it.
        sorted_weight = shop_day.item_weight[:, self.items_by_category]
        self.cumulative = np.concatenate([[0.0], np.cumsum(sorted_weight.ravel())])
        self.switch_cumulative = np.cumsum(shop_day.category_switch, axis=1)

    def _draw_in_segments(self, start: np.ndarray, end: np.ndarray, uniform: np.ndarray):
        """Item drawn ~ weight inside flat segments [start, end); -1 on a floating-point miss."""
        base = self.cumulative[start]
        target = base + uniform * (self.cumulative[end] - base)
        position = np.searchsorted(self.cumulative, target, side="right") - 1
        inside = (position >= start) & (position < end)
        items = self.items_by_category[np.where(inside, position, 0) % self.n_items]
        return np.where(inside, items, -1)

    def first(self, rng: np.random.Generator, intents: np.ndarray) -> np.ndarray:
        """First products ~ GlobalPop_z(j, d)."""
        result = np.full(len(intents), -1, dtype=np.int64)
        pending = np.arange(len(intents))
        while pending.size:
            uniform = rng.random(pending.size)
            start = intents[pending] * self.n_items
            drawn = self._draw_in_segments(start, start + self.n_items, uniform)
            result[pending] = drawn
            pending = pending[drawn < 0]
        return result

    def _draw_mixture(self, rng, previous: np.ndarray, intents: np.ndarray) -> np.ndarray:
        """One draw from the full mixture M_z(. | previous, d) per session (no exclusion)."""
        shop_day = self.shop_day
        uniform = rng.random((len(previous), 3))
        neighbour, own, _ = shop_day.source_weights(previous)
        from_neighbours = uniform[:, 0] < neighbour
        from_own = ~from_neighbours & (uniform[:, 0] < neighbour + own)
        drawn = np.full(len(previous), -1, dtype=np.int64)

        rows = np.flatnonzero(from_neighbours)
        if rows.size:
            weights = shop_day.neighbour_tilted_weights(previous[rows], intents[rows])
            cumulative = np.cumsum(weights, axis=1)
            target = uniform[rows, 2:3] * cumulative[:, -1:]
            slot = (cumulative <= target).sum(axis=1)
            valid = slot < weights.shape[1]
            slot = np.minimum(slot, weights.shape[1] - 1)
            picked = shop_day.catalogue.neighbours[previous[rows], slot]
            drawn[rows] = np.where(valid, picked, -1)

        rows = np.flatnonzero(~from_neighbours)
        if rows.size:
            category = shop_day.catalogue.category[previous[rows]]
            switch = self.switch_cumulative[category]
            other = (switch <= uniform[rows, 1:2]).sum(axis=1)
            missed = ~from_own[rows] & (other >= switch.shape[1])
            category = np.where(from_own[rows], category, np.minimum(other, switch.shape[1] - 1))
            start = intents[rows] * self.n_items + self.category_start[category]
            end = intents[rows] * self.n_items + self.category_start[category + 1]
            in_category = self._draw_in_segments(start, end, uniform[rows, 2])
            drawn[rows] = np.where(missed, -1, in_category)
        return drawn

    def next(
        self,
        rng: np.random.Generator,
        previous: np.ndarray,
        intents: np.ndarray,
        history: np.ndarray,
    ) -> np.ndarray:
        """Next products, excluding each session's `history` row, by rejection from the mixture.

        Redrawing the whole mixture until an unseen product comes up samples exactly
        M(j) [j unseen] / (1 - sum over seen k of M(k)).
        """
        result = np.full(len(previous), -1, dtype=np.int64)
        pending = np.arange(len(previous))
        for _ in range(MAX_REJECTION_ROUNDS):
            drawn = self._draw_mixture(rng, previous[pending], intents[pending])
            seen = (history[pending] == drawn[:, None]).any(axis=1) | (drawn < 0)
            result[pending[~seen]] = drawn[~seen]
            pending = pending[seen]
            if not pending.size:
                return result
        for row in pending:
            probabilities = self.shop_day.mixture_rows(int(previous[row]))[intents[row]]
            probabilities[history[row][history[row] >= 0]] = 0.0
            result[row] = rng.choice(self.n_items, p=probabilities / probabilities.sum())
        return result


# Probabilities the generic sampler holds at once ([rows, n_items] float64): 8 MB a block.
BLOCK_CELLS = 1_000_000


def draw_from_rows(rows: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """One index per row ~ the row's weights, by inverse CDF with `uniform` in [0, 1); -1 for a
    row without mass. An index with zero weight is never drawn."""
    cumulative = np.cumsum(rows, axis=1)
    total = cumulative[:, -1]
    drawn = (cumulative <= (uniform * total)[:, None]).sum(axis=1)
    # u * total can round up to total itself: take the last index with weight.
    last_with_weight = rows.shape[1] - 1 - np.argmax(rows[:, ::-1] > 0, axis=1)
    drawn = np.minimum(drawn, last_with_weight)
    return np.where(total > 0, drawn, -1)


def sample_views(
    family: ShopFamily,
    day: int,
    rng: np.random.Generator,
    states: np.ndarray,
    lengths: np.ndarray,
) -> np.ndarray:
    """Every session's product views, drawn position by position from the family's rows.

    [sessions, max(lengths)], -1 after a session's last view: a session ends at its length or
    earlier, when its row has no mass (nothing left it may view). Rows are computed for blocks
    of sessions (`BLOCK_CELLS`), so memory does not grow with the day's sessions; the draws do
    not depend on the block size.
    """
    count = len(states)
    longest = int(lengths.max()) if count else 0
    views = np.full((count, longest), -1, dtype=np.int64)
    alive = np.ones(count, dtype=bool)
    block = max(1, BLOCK_CELLS // family.catalogue.n_items)
    for position in range(longest):
        active = np.flatnonzero(alive & (lengths > position))
        uniform = rng.random(len(active))
        for start in range(0, len(active), block):
            sessions = active[start : start + block]
            rows = family.step_probabilities(day, views[sessions, :position], states[sessions])
            views[sessions, position] = draw_from_rows(rows, uniform[start : start + block])
        alive[active] = views[active, position] >= 0
    return views
