"""Comparison shopping with return visits: shoppers go back to products they looked at before.

A shopper comparing a few products returns to one seen a few steps earlier, and chooses new
products around the last few they looked at, not only the very last one. Let r_1 (the last),
r_2 and r_3 be the last three distinct products of the prefix, in the order of their last
view. The next view is

    with probability rho (when r_2 exists): a return, to r_2 (0.6) or r_3 (0.4), renormalised
        over those that exist;
    otherwise a new product:
        New(j) ~ (1 - eps) sum_l w_l [0.7 Nbr_d(j | r_l) + 0.3 CatPop_d(j | cat(r_l))]
                 + eps GlobalPop_d(j),   w = (0.5, 0.3, 0.2) over the r_l that exist,
        restricted to unseen products and renormalised.

The last product is never viewed again at once (a reload is an event, not a view). Without an
unseen product left, a session only returns. The first product ~ GlobalPop_d. The evaluation
skips a return as a target (no recommender may show a seen product), but the earlier products
still carry signal about the next new one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recs_platform.simulation.families.base import (
    Component,
    FamilySampler,
    ShopFamily,
    category_rows,
    mix,
    neighbour_rows,
    one_hot_rows,
    restrict_to_unseen,
    shared_component,
)
from recs_platform.simulation.families.draws import (
    PopularityDraws,
    choose,
    draw_unseen,
    draw_unseen_mixture,
)

RECENT = 3  # r_1, r_2, r_3


@dataclass(frozen=True)
class RevisitsParameters:
    """Chosen a priori for plausibility, never fitted to a model's score.

    Shop click logs have many returns to a product already seen in the session (RepeatNet,
    Ren et al. 2019, is built around them on YOOCHOOSE and DIGINETICA). rho = 0.25 from the
    third view on puts about one view in six on a return (16 % on the default shop): a
    comparison shopper's rate, taken as plausible, not measured from a log. The nearer of two
    earlier products is the likelier return, and the latest products weigh most in what is
    looked at next.
    """

    return_probability: float = 0.25  # rho
    return_weights: tuple[float, float] = (0.6, 0.4)  # to r_2, r_3
    recency_weights: tuple[float, float, float] = (0.5, 0.3, 0.2)  # w_1, w_2, w_3
    neighbour_share: float = 0.7  # within one r_l's term; the rest its category
    jump_share: float = 0.05  # eps


def recent_distinct(history: np.ndarray) -> np.ndarray:
    """[B, 3]: the last three distinct items of each row in the order of their last view
    (r_1 = the last item), -1 where a row has fewer."""
    count = len(history)
    recent = np.full((count, RECENT), -1, dtype=np.int64)
    found = np.zeros(count, dtype=np.int64)
    rows = np.arange(count)
    for column in range(history.shape[1] - 1, -1, -1):
        item = history[:, column]
        new = (found < RECENT) & ~(recent == item[:, None]).any(axis=1)
        recent[rows[new], found[new]] = item[new]
        found += new
        if (found == RECENT).all():
            break
    return recent


class RevisitsFamily(ShopFamily):
    name = "revisits"
    revisits = True
    parameters = RevisitsParameters()

    def step_probabilities(self, day: int, history: np.ndarray, states: np.ndarray) -> np.ndarray:
        popularity = self._day(day)
        catalogue, parameters = self.catalogue, self.parameters
        count = len(history)
        if history.shape[1] == 0:
            return np.tile(popularity.global_share, (count, 1))
        recent = recent_distinct(history)
        exists = recent >= 0
        items = np.maximum(recent, 0)
        keep = 1 - parameters.jump_share
        components = [shared_component(parameters.jump_share, popularity.global_share, count)]
        for place, recency in enumerate(parameters.recency_weights):
            neighbours, has_neighbours = neighbour_rows(
                catalogue, popularity.neighbour_weight, items[:, place]
            )
            own_category, has_own_category = category_rows(
                catalogue, popularity, catalogue.category[items[:, place]]
            )
            components += [
                Component(
                    keep * recency * parameters.neighbour_share,
                    neighbours,
                    has_neighbours & exists[:, place],
                ),
                Component(
                    keep * recency * (1 - parameters.neighbour_share),
                    own_category,
                    has_own_category & exists[:, place],
                ),
            ]
        new = restrict_to_unseen(mix(components), history)
        to_second, to_third = parameters.return_weights
        returns = mix(
            [
                Component(to_second, one_hot_rows(recent[:, 1], catalogue.n_items), exists[:, 1]),
                Component(to_third, one_hot_rows(recent[:, 2], catalogue.n_items), exists[:, 2]),
            ]
        )
        return mix(
            [
                Component(parameters.return_probability, returns, exists[:, 1]),
                Component(1 - parameters.return_probability, new, new.sum(axis=1) > 0),
            ]
        )

    def sampler(self, day: int) -> RevisitsSampler:
        return RevisitsSampler(self, PopularityDraws(self.catalogue, self._day(day)))


class RevisitsSampler(FamilySampler):
    """The revisits rows drawn sparsely. A return or a new product is decided once per view
    (a return only when r_2 exists); a new product is then drawn from its mixture until an
    unseen one comes up. A session whose draws keep missing is left to the exact rows
    restricted to unseen products, or, where nothing unseen has mass (so the row is all
    returns), to the whole row (`exact_draws`)."""

    def __init__(self, family: RevisitsFamily, draws: PopularityDraws):
        self.family = family
        self.draws = draws

    def first(self, rng, states):
        no_history = np.empty((len(states), 0), dtype=np.int64)
        draws = self.draws
        return draw_unseen(
            rng, no_history, lambda rng, rows: draws.anywhere(*rng.random((2, len(rows))))
        )

    def next(self, rng, history, states):
        parameters = self.family.parameters
        recent = recent_distinct(history)
        exists = recent >= 0
        uniform = rng.random((len(history), 2))
        returning = exists[:, 1] & (uniform[:, 0] < parameters.return_probability)
        drawn = np.full(len(history), -1, dtype=np.int64)
        if returning.any():
            to = choose(
                np.asarray(parameters.return_weights) * exists[returning][:, 1:],
                uniform[returning, 1],
            )
            # A miss (u * total rounding up to the total) only happens without r_3: to r_2.
            drawn[returning] = recent[returning, 1 + np.maximum(to, 0)]
        new = np.flatnonzero(~returning)
        if new.size:
            drawn[new] = self._new(rng, history[new], recent[new], exists[new])
        return drawn

    def _new(self, rng, history, recent, exists):
        draws, parameters = self.draws, self.family.parameters
        items = np.maximum(recent, 0)
        category = self.family.catalogue.category[items]
        keep = 1 - parameters.jump_share
        columns = [np.full(len(history), parameters.jump_share * draws.has_any)]
        components = [lambda rows, u, v: draws.anywhere(u, v)]
        for place, recency in enumerate(parameters.recency_weights):
            columns += [
                keep
                * recency
                * parameters.neighbour_share
                * (draws.has_neighbours[items[:, place]] & exists[:, place]),
                keep
                * recency
                * (1 - parameters.neighbour_share)
                * (draws.day.category_has_items[category[:, place]] & exists[:, place]),
            ]
            components += [
                lambda rows, u, _, place=place: draws.neighbour(items[rows, place], u),
                lambda rows, u, _, place=place: draws.in_category(category[rows, place], u),
            ]
        weights = np.stack(columns, axis=1)
        return draw_unseen_mixture(rng, history, weights, components)
