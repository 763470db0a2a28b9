"""Trends: products surge during the window (a launch, a promotion, a mention), then fade.

About 15 % of the products surge once: on day t_j their popularity jumps by a factor 1 + A_j
and the boost decays with a time constant of tau days,

    pop'_j(d) = pop_j(d) (1 + A_j exp(-(d - t_j) / tau) [d >= t_j]),

A_j ~ LogNormal(log 8, 0.5). A product launched inside the window surges on its launch day;
the others on a day uniform over [-3, days) (some surges are fading as the window opens).
Shoppers follow today's popularity:

    first product:          GlobalPop'_d(j)
    after product i:        0.5 Nbr'_d(j | i) + 0.3 CatPop'_d(j | cat(i)) + 0.2 GlobalPop'_d(j)

restricted to unseen products and renormalised, with Nbr' the neighbour weights times the
surge factor of day d. The process is first order within a day, but it changes from day to
day: what the last days say about a product matters more than the whole history.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from recs_platform.simulation.families.base import (
    Component,
    DayPopularity,
    FamilySampler,
    ShopFamily,
    category_rows,
    family_rng,
    mix,
    neighbour_rows,
    restrict_to_unseen,
    shared_component,
)
from recs_platform.simulation.families.draws import (
    PopularityDraws,
    draw_unseen,
    draw_unseen_mixture,
)


@dataclass(frozen=True)
class TrendsParameters:
    """Chosen a priori for plausibility, never fitted to a model's score.

    A surge multiplies views about ninefold on its day (a promotion on the home page, a viral
    mention) and has mostly faded within a week (e^-3 after 6 days). Shoppers follow the
    neighbours of what they look at half of the time and the day's bestsellers otherwise.
    """

    surging_share: float = 0.15
    amplitude_median: float = 8.0
    amplitude_sigma: float = 0.5
    decay_days: float = 2.0  # tau
    earliest_surge_day: int = -3
    neighbour_share: float = 0.5
    category_share: float = 0.3
    global_share: float = 0.2


class TrendsFamily(ShopFamily):
    name = "trends"
    parameters = TrendsParameters()

    def __init__(self, config, catalogue):
        super().__init__(config, catalogue)
        parameters = self.parameters
        rng = family_rng(config, self.name)
        n_items = catalogue.n_items
        count = min(round(parameters.surging_share * n_items), n_items)
        self.surging = np.sort(rng.choice(n_items, size=count, replace=False))
        random_day = rng.integers(parameters.earliest_surge_day, config.days, size=count)
        launched = catalogue.launch_day[self.surging] > 0
        self.surge_day = np.where(launched, catalogue.launch_day[self.surging], random_day)
        self.amplitude = rng.lognormal(
            math.log(parameters.amplitude_median), parameters.amplitude_sigma, size=count
        )

    def surge_factor(self, day: int) -> np.ndarray:
        """1 + A_j exp(-(d - t_j) / tau) [d >= t_j] for every item (1 where none surges)."""
        factor = np.ones(self.catalogue.n_items)
        since = day - self.surge_day
        boost = self.amplitude * np.exp(-np.maximum(since, 0) / self.parameters.decay_days)
        factor[self.surging] += np.where(since >= 0, boost, 0.0)
        return factor

    def _build_day(self, day: int) -> DayPopularity:
        factor = self.surge_factor(day)
        return DayPopularity.of(
            self.catalogue, self.catalogue.popularity_on(day) * factor, neighbour_factor=factor
        )

    def step_probabilities(self, day: int, history: np.ndarray, states: np.ndarray) -> np.ndarray:
        popularity = self._day(day)
        count = len(history)
        if history.shape[1] == 0:
            return np.tile(popularity.global_share, (count, 1))
        parameters = self.parameters
        last = history[:, -1]
        neighbours, has_neighbours = neighbour_rows(
            self.catalogue, popularity.neighbour_weight, last
        )
        own_category, has_own_category = category_rows(
            self.catalogue, popularity, self.catalogue.category[last]
        )
        rows = mix(
            [
                Component(parameters.neighbour_share, neighbours, has_neighbours),
                Component(parameters.category_share, own_category, has_own_category),
                shared_component(parameters.global_share, popularity.global_share, count),
            ]
        )
        return restrict_to_unseen(rows, history)

    def sampler(self, day: int) -> TrendsSampler:
        return TrendsSampler(self, PopularityDraws(self.catalogue, self._day(day)))


class TrendsSampler(FamilySampler):
    """The trends rows drawn sparsely: GlobalPop'_d first, then neighbours, own category or
    anywhere, each over the day's surged popularity."""

    def __init__(self, family: TrendsFamily, draws: PopularityDraws):
        self.family = family
        self.draws = draws

    def first(self, rng, states):
        no_history = np.empty((len(states), 0), dtype=np.int64)
        draws = self.draws
        return draw_unseen(
            rng, no_history, lambda rng, rows: draws.anywhere(*rng.random((2, len(rows))))
        )

    def next(self, rng, history, states):
        draws, parameters = self.draws, self.family.parameters
        last = history[:, -1]
        category = self.family.catalogue.category[last]
        weights = np.stack(
            [
                parameters.neighbour_share * draws.has_neighbours[last],
                parameters.category_share * draws.day.category_has_items[category],
                np.full(len(last), parameters.global_share * draws.has_any),
            ],
            axis=1,
        )
        components = (
            lambda rows, u, _: draws.neighbour(last[rows], u),
            lambda rows, u, _: draws.in_category(category[rows], u),
            lambda rows, u, v: draws.anywhere(u, v),
        )
        return draw_unseen_mixture(rng, history, weights, components)
