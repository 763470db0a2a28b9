"""Ordered browsing: shoppers walk along an attribute of the category (price, size), in a direction.

Each category's products have a hidden order (a random permutation, a price or size the logs do
not show). A shopper looks at a product, then at one a step or two further along the order,
usually keeping the direction of the last step: someone paging up through the prices goes on
up. The direction of the last step inside the category, which the last product alone does not
reveal, predicts the next one.

After the last product i (category c, position q), with delta the sign of the previous step if
it moved inside c (no direction otherwise):

    P(j) ~ (1 - eps) [p_walk Walk(j | i, delta)
                      + (1 - p_walk) sum_{c' != c} Q(c' | c) CatPop_d(j | c')] + eps GlobalPop_d(j)

    Walk(j | i, delta) ~ kappa^(|s| - 1) (p_keep if sign(s) = delta else 1 - p_keep) pop_j(d)^g

over the available products j of c at position q + s, s != 0 (1/2 each way without a
direction), restricted to unseen products and renormalised. The first product ~ GlobalPop_d.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recs_platform.simulation.families.base import (
    Component,
    DayPopularity,
    ShopFamily,
    family_rng,
    mix,
    restrict_to_unseen,
    shared_component,
    switch_rows,
)


@dataclass(frozen=True)
class OrderedParameters:
    """Chosen a priori for plausibility, never fitted to a model's score.

    Most moves stay in the category and go one or two steps along the order (a shopper paging
    through a sorted list); a fifth switch to a related category; one in twenty is a jump
    anywhere (home page, search). Keeping the direction 85 % of the time: a sorted list is
    mostly read one way, with the odd look back. Along the list, popular products (better
    pictures, more reviews) still catch clicks in proportion to their popularity, as
    everywhere else in the shop (g = 1). Without that factor the product views were
    implausibly even for a shop (Gini 0.55 on the default shop, 0.74 with it, 0.82 in the
    intent shop); set before any model was scored on this family.
    """

    jump_share: float = 0.05  # eps
    walk_share: float = 0.8  # p_walk
    step_decay: float = 0.5  # kappa: each further step half as likely
    keep_direction: float = 0.85  # p_keep
    popularity_power: float = 1.0  # g


class OrderedFamily(ShopFamily):
    name = "ordered"
    parameters = OrderedParameters()

    def __init__(self, config, catalogue):
        super().__init__(config, catalogue)
        rng = family_rng(config, self.name)
        # position[j]: j's place in its category's hidden order, 0..size-1.
        self.position = np.zeros(catalogue.n_items, dtype=np.int64)
        for category in range(catalogue.n_categories):
            members = np.flatnonzero(catalogue.category == category)
            self.position[members] = rng.permutation(len(members))

    def direction(self, history: np.ndarray) -> np.ndarray:
        """delta per row: the sign of the last step if it moved inside a category, else 0."""
        if history.shape[1] < 2:
            return np.zeros(len(history), dtype=np.int64)
        previous, last = history[:, -2], history[:, -1]
        inside = self.catalogue.category[previous] == self.catalogue.category[last]
        return np.sign(self.position[last] - self.position[previous]) * inside

    def walk_rows(self, day: DayPopularity, items: np.ndarray, direction: np.ndarray):
        """(Walk(j | i, delta) per row: [B, n_items], whether i's category has another
        available product)."""
        parameters = self.parameters
        category = self.catalogue.category
        step = self.position[None, :] - self.position[items][:, None]
        reachable = (category[None, :] == category[items][:, None]) & (step != 0)
        reachable &= day.popularity[None, :] > 0
        along = np.where(
            direction[:, None] == 0,
            0.5,
            np.where(
                np.sign(step) == direction[:, None],
                parameters.keep_direction,
                1 - parameters.keep_direction,
            ),
        )
        distance = np.maximum(np.abs(step) - 1, 0)
        appeal = day.popularity**parameters.popularity_power
        weights = np.where(
            reachable, along * parameters.step_decay**distance * appeal[None, :], 0.0
        )
        total = weights.sum(axis=1)
        has_mass = total > 0
        return weights / np.where(has_mass, total, 1.0)[:, None], has_mass

    def step_probabilities(self, day: int, history: np.ndarray, states: np.ndarray) -> np.ndarray:
        popularity = self._day(day)
        count = len(history)
        if history.shape[1] == 0:
            return np.tile(popularity.global_share, (count, 1))
        parameters = self.parameters
        last = history[:, -1]
        stay = 1 - parameters.jump_share
        walk, has_walk = self.walk_rows(popularity, last, self.direction(history))
        switch, has_switch = switch_rows(self.catalogue, popularity, self.catalogue.category[last])
        rows = mix(
            [
                Component(stay * parameters.walk_share, walk, has_walk),
                Component(stay * (1 - parameters.walk_share), switch, has_switch),
                shared_component(parameters.jump_share, popularity.global_share, count),
            ]
        )
        return restrict_to_unseen(rows, history)
