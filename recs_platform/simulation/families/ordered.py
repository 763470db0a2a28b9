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
    FamilySampler,
    ShopFamily,
    family_rng,
    mix,
    restrict_to_unseen,
    shared_component,
    switch_rows,
)
from recs_platform.simulation.families.draws import (
    OneWayWalk,
    PopularityDraws,
    draw_unseen,
    draw_unseen_mixture,
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

    def sampler(self, day: int) -> OrderedSampler:
        return OrderedSampler(self, PopularityDraws(self.catalogue, self._day(day)))


class OrderedSampler(FamilySampler):
    """The ordered rows drawn sparsely. The walk goes up or down the order (each side's
    weight its direction factor times its mass), then to a slot of that side (`OneWayWalk`:
    the walk downwards is the walk upwards along the reversed order)."""

    def __init__(self, family: OrderedFamily, draws: PopularityDraws):
        self.family = family
        self.draws = draws
        parameters = family.parameters
        categories = draws.categories
        category, start = family.catalogue.category, categories.start
        size = np.diff(start)[category]
        # Slot of each product along its category's order, upwards and downwards.
        self.up_slot = start[category] + family.position
        self.down_slot = start[category] + size - 1 - family.position
        self.item_up = np.empty_like(self.up_slot)
        self.item_up[self.up_slot] = np.arange(len(category))
        self.item_down = np.empty_like(self.down_slot)
        self.item_down[self.down_slot] = np.arange(len(category))
        popularity = draws.day.popularity
        appeal = np.where(popularity > 0, popularity**parameters.popularity_power, 0.0)
        self.up = OneWayWalk(start, appeal[self.item_up], parameters.step_decay)
        self.down = OneWayWalk(start, appeal[self.item_down], parameters.step_decay)

    def first(self, rng, states):
        no_history = np.empty((len(states), 0), dtype=np.int64)
        draws = self.draws
        return draw_unseen(
            rng, no_history, lambda rng, rows: draws.anywhere(*rng.random((2, len(rows))))
        )

    def next(self, rng, history, states):
        draws, family = self.draws, self.family
        parameters = family.parameters
        last = history[:, -1]
        category = family.catalogue.category[last]
        direction = family.direction(history)
        keep, turn = parameters.keep_direction, 1 - parameters.keep_direction
        up_weight = np.select([direction > 0, direction < 0], [keep, turn], 0.5)
        up_mass = up_weight * self.up.mass(self.up_slot[last])
        down_mass = (1 - up_weight) * self.down.mass(self.down_slot[last])
        walk_mass = up_mass + down_mass
        stay = 1 - parameters.jump_share
        weights = np.stack(
            [
                stay * parameters.walk_share * (walk_mass > 0),
                stay * (1 - parameters.walk_share) * draws.has_switch[category],
                np.full(len(last), parameters.jump_share * draws.has_any),
            ],
            axis=1,
        )

        def walk(rows, side, along):
            items = last[rows]
            up = side * walk_mass[rows] < up_mass[rows]
            drawn = np.full(len(rows), -1, dtype=np.int64)
            for going_up, walker, slot, item_at in (
                (True, self.up, self.up_slot, self.item_up),
                (False, self.down, self.down_slot, self.item_down),
            ):
                chosen = np.flatnonzero(up == going_up)
                stepped = walker.draw(slot[items[chosen]], along[chosen])
                drawn[chosen] = np.where(stepped >= 0, item_at[np.maximum(stepped, 0)], -1)
            return drawn

        components = (
            walk,
            lambda rows, u, v: draws.switch(category[rows], u, v),
            lambda rows, u, v: draws.anywhere(u, v),
        )
        return draw_unseen_mixture(rng, history, weights, components)
