"""The latent-intent shop: every session has a hidden (style, price level) that tilts its choices.

The process is the package docstring's (`recs_platform.simulation`), computed by `ShopDay`;
this family only puts it behind the family interface. Generating this family keeps its own
faster rejection sampler (`DaySampler`), which draws from the same mixture.
"""

from __future__ import annotations

import numpy as np

from recs_platform.simulation.dynamics import ShopDay
from recs_platform.simulation.families.base import FamilySampler, ShopFamily, restrict_to_unseen
from recs_platform.simulation.families.draws import MAX_REJECTION_ROUNDS, draw_unseen


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

    def draw_mixture(self, rng, previous: np.ndarray, intents: np.ndarray) -> np.ndarray:
        """One draw from the full mixture M_z(. | previous, d) per session (no exclusion); -1 on
        a floating-point miss."""
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
            drawn = self.draw_mixture(rng, previous[pending], intents[pending])
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


class IntentFamily(ShopFamily):
    """States: the intents z = style * n_price_levels + price level, uniform a priori."""

    name = "intent"

    @property
    def n_states(self) -> int:
        return self.config.n_intents

    def state_prior(self) -> np.ndarray:
        return np.full(self.n_states, 1.0 / self.n_states)

    def shop_day(self, day: int) -> ShopDay:
        return self._day(day)

    def _build_day(self, day: int) -> ShopDay:
        return ShopDay(self.config, self.catalogue, day)

    def step_probabilities(self, day: int, history: np.ndarray, states: np.ndarray) -> np.ndarray:
        shop_day = self.shop_day(day)
        if history.shape[1] == 0:
            return shop_day.first_probabilities()[states]
        return restrict_to_unseen(shop_day.mixture_rows_of(history[:, -1], states), history)

    def sampler(self, day: int) -> IntentSampler:
        return IntentSampler(self.shop_day(day))


class IntentSampler(FamilySampler):
    """The intent rows drawn by `DaySampler`'s mixture draws (as a member of a mixed shop;
    the intent shop itself is generated by `DaySampler` directly)."""

    def __init__(self, shop_day: ShopDay):
        self.sampler = DaySampler(shop_day)

    def first(self, rng, states):
        return self.sampler.first(rng, states)

    def next(self, rng, history, states):
        last = history[:, -1]
        return draw_unseen(
            rng, history, lambda rng, rows: self.sampler.draw_mixture(rng, last[rows], states[rows])
        )
