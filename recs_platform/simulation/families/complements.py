"""Asymmetric complements: accessories follow a main product far more often than the reverse.

Some categories are accessories (cases, cables, filters) of others (phones, laptops, coffee
machines). Each main category has a few accessory categories and each main product a handful
of accessories from them (a phone's own cases). A shopper who looked at a main product often
goes on to its accessories; one who looked at an accessory goes back to the main product
being shopped for, the anchor, which can lie several steps back in the session: the last main
product of the prefix. So main -> accessory is a common transition, accessory -> main goes
through the anchor, and history beyond the last product matters, asymmetrically.

With the anchor m = the last main product of the prefix (none before the first one) and the
last product i:

    first product:            0.85 MainPop_d(j) + 0.15 AccessoryPop_d(j)
    after a main product i:   0.55 Acc(j | i) + 0.35 Nbr(j | i) + 0.1 GlobalPop_d(j)
    after an accessory i:     0.5 Acc(j | m) + 0.3 Nbr(j | m) + 0.1 CatPop_d(j | cat(i))
                              + 0.1 GlobalPop_d(j)
    ... without an anchor:    0.45 CatPop_d(j | cat(i)) + 0.45 ServedPop_d(j | cat(i))
                              + 0.1 GlobalPop_d(j)

restricted to unseen products and renormalised (a component without available products drops
out). Acc(j | m) = a_mj [j available] / the same sum over m's accessories; MainPop_d and
AccessoryPop_d are popularity among the main and the accessory products; ServedPop_d(j | a) is
popularity among the main products of the categories that accessory category a serves (all
main products if it serves none).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recs_platform.simulation.catalogue import KEY_BLOCK_CELLS
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
    draw_slots,
    draw_unseen_mixture,
    normalised_cumulative,
)


@dataclass(frozen=True)
class ComplementsParameters:
    """Chosen a priori for plausibility, never fitted to a model's score.

    About two fifths of a general shop's categories are add-ons to others; a main product has a
    handful of compatible accessories (popular ones more often), and about half of the moves
    after a main product go to one of them. Sessions mostly start on a main product (what
    shoppers search for).
    """

    accessory_category_share: float = 0.4
    accessory_categories_per_main: int = 2
    accessories_per_item: int = 5
    accessory_weight_sd: float = 0.5  # lognormal factor of an accessory's weight
    first_main_share: float = 0.85
    jump_share: float = 0.1
    after_main_accessory: float = 0.55
    after_main_neighbour: float = 0.35
    after_accessory_anchor_accessory: float = 0.5
    after_accessory_anchor_neighbour: float = 0.3
    after_accessory_own_category: float = 0.1
    no_anchor_own_category: float = 0.45
    no_anchor_served_main: float = 0.45


@dataclass(frozen=True)
class ComplementsDay:
    popularity: DayPopularity
    main_share: np.ndarray  # [n_items] MainPop_d(j)
    accessory_share: np.ndarray  # [n_items] AccessoryPop_d(j)
    accessory_weight: np.ndarray  # [n_items, A] a_mj for available accessories, else 0
    # [C, C]: ServedPop_d(j | a) = served_category_share[a, cat(j)] CatPop_d(j | cat(j)), each
    # served main category's share of their popularity (rows of accessory categories)
    served_category_share: np.ndarray
    served_has_mass: np.ndarray  # [C]


def _share(weights: np.ndarray) -> np.ndarray:
    total = weights.sum(axis=-1, keepdims=True)
    return np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)


class ComplementsFamily(ShopFamily):
    name = "complements"
    parameters = ComplementsParameters()

    def __init__(self, config, catalogue):
        super().__init__(config, catalogue)
        parameters = self.parameters
        rng = family_rng(config, self.name)
        n_categories = catalogue.n_categories
        n_accessory = min(
            max(round(parameters.accessory_category_share * n_categories), 1), n_categories - 1
        )
        self.is_accessory_category = np.zeros(n_categories, dtype=bool)
        self.is_accessory_category[rng.choice(n_categories, n_accessory, replace=False)] = True
        accessory_categories = np.flatnonzero(self.is_accessory_category)
        # serves[c, a]: accessory category a holds accessories of main category c.
        self.serves = np.zeros((n_categories, n_categories), dtype=bool)
        per_main = min(parameters.accessory_categories_per_main, n_accessory)
        for main in np.flatnonzero(~self.is_accessory_category):
            self.serves[main, rng.choice(accessory_categories, per_main, replace=False)] = True
        self.is_main = ~self.is_accessory_category[catalogue.category]
        self.accessories, self.accessory_weight = self._accessories(rng)

    def _accessories(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Each main item's accessories from its category's accessory categories, drawn without
        replacement ~ popularity, weights popularity times a lognormal factor."""
        catalogue, parameters = self.catalogue, self.parameters
        size = parameters.accessories_per_item
        accessories = np.full((catalogue.n_items, size), -1, dtype=np.int64)
        weights = np.zeros((catalogue.n_items, size))
        log_popularity = np.log(catalogue.base_popularity)
        for main in np.flatnonzero(~self.is_accessory_category):
            members = np.flatnonzero(catalogue.category == main)
            pool = np.flatnonzero(self.serves[main][catalogue.category])
            count = min(size, len(pool))
            top = np.empty((len(members), count), dtype=np.int64)
            # Gumbel top-k: sampling without replacement with probability ~ popularity, a block
            # of rows at a time (the same numbers as all at once, bounded memory).
            block = max(1, KEY_BLOCK_CELLS // len(pool))
            for start in range(0, len(members), block):
                rows = slice(start, min(start + block, len(members)))
                keys = log_popularity[pool][None, :] + rng.gumbel(
                    size=(len(members[rows]), len(pool))
                )
                best = np.argpartition(-keys, count - 1, axis=1)[:, :count]
                best_keys = np.take_along_axis(keys, best, axis=1)
                order = np.argsort(-best_keys, axis=1, kind="stable")
                top[rows] = np.take_along_axis(best, order, axis=1)
            accessories[members, :count] = pool[top]
            factor = rng.lognormal(0.0, parameters.accessory_weight_sd, (len(members), count))
            weights[members, :count] = catalogue.base_popularity[pool[top]] * factor
        return accessories, weights

    def _build_day(self, day: int) -> ComplementsDay:
        catalogue = self.catalogue
        popularity = catalogue.popularity_on(day)
        main_share = _share(popularity * self.is_main)
        category_mass = np.bincount(
            catalogue.category, weights=popularity, minlength=catalogue.n_categories
        )
        main_mass = category_mass * ~self.is_accessory_category
        # served[a, c]: main category c's mass when accessory category a serves it; all main
        # categories where a serves none with an available product.
        served = self.serves.T * main_mass[None, :]
        served[served.sum(axis=1) == 0] = main_mass
        served_category_share = _share(served)
        available = popularity > 0
        return ComplementsDay(
            popularity=DayPopularity.of(catalogue, popularity),
            main_share=main_share,
            accessory_share=_share(popularity * ~self.is_main),
            accessory_weight=self.accessory_weight * available[np.maximum(self.accessories, 0)],
            served_category_share=served_category_share,
            served_has_mass=served_category_share.sum(axis=1) > 0,
        )

    def anchors(self, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the last main item of each row's prefix, whether there is one)."""
        main = self.is_main[history]
        has_anchor = main.any(axis=1)
        last_main = history.shape[1] - 1 - np.argmax(main[:, ::-1], axis=1)
        anchor = history[np.arange(len(history)), np.where(has_anchor, last_main, 0)]
        return np.where(has_anchor, anchor, 0), has_anchor

    def accessory_rows(self, day: ComplementsDay, items: np.ndarray):
        """(Acc(j | m) for each main item m of `items`: [B, n_items], whether m has an
        available accessory)."""
        weights = day.accessory_weight[items]
        total = weights.sum(axis=1)
        has_mass = total > 0
        slots = self.accessories[items]
        valid = (slots >= 0) & has_mass[:, None]
        rows = np.zeros((len(items), self.catalogue.n_items))
        row_index = np.broadcast_to(np.arange(len(items))[:, None], slots.shape)
        share = weights / np.where(has_mass, total, 1.0)[:, None]
        rows[row_index[valid], slots[valid]] = share[valid]
        return rows, has_mass

    def step_probabilities(self, day: int, history: np.ndarray, states: np.ndarray) -> np.ndarray:
        arrays = self._day(day)
        parameters = self.parameters
        count = len(history)
        if history.shape[1] == 0:
            return mix(
                [
                    shared_component(parameters.first_main_share, arrays.main_share, count),
                    shared_component(
                        1 - parameters.first_main_share, arrays.accessory_share, count
                    ),
                ]
            )
        catalogue = self.catalogue
        last = history[:, -1]
        last_category = catalogue.category[last]
        anchor, has_anchor = self.anchors(history)
        after_main = self.is_main[last]
        after_accessory = ~after_main & has_anchor
        no_anchor = ~has_anchor

        def weight(main: float, accessory: float, alone: float) -> np.ndarray:
            return np.select([after_main, after_accessory, no_anchor], [main, accessory, alone])

        accessories, has_accessories = self.accessory_rows(arrays, anchor)
        neighbours, has_neighbours = neighbour_rows(
            catalogue, arrays.popularity.neighbour_weight, anchor
        )
        own_category, has_own_category = category_rows(catalogue, arrays.popularity, last_category)
        rows = mix(
            [
                Component(
                    weight(
                        parameters.after_main_accessory,
                        parameters.after_accessory_anchor_accessory,
                        0.0,
                    ),
                    accessories,
                    has_accessories & has_anchor,
                ),
                Component(
                    weight(
                        parameters.after_main_neighbour,
                        parameters.after_accessory_anchor_neighbour,
                        0.0,
                    ),
                    neighbours,
                    has_neighbours & has_anchor,
                ),
                Component(
                    weight(
                        0.0,
                        parameters.after_accessory_own_category,
                        parameters.no_anchor_own_category,
                    ),
                    own_category,
                    has_own_category,
                ),
                Component(
                    weight(0.0, 0.0, parameters.no_anchor_served_main),
                    arrays.served_category_share[last_category][:, catalogue.category]
                    * arrays.popularity.category_share[None, :],
                    arrays.served_has_mass[last_category],
                ),
                shared_component(parameters.jump_share, arrays.popularity.global_share, count),
            ]
        )
        return restrict_to_unseen(rows, history)

    def sampler(self, day: int) -> ComplementsSampler:
        arrays = self._day(day)
        return ComplementsSampler(self, arrays, PopularityDraws(self.catalogue, arrays.popularity))


class ComplementsSampler(FamilySampler):
    """The complements rows drawn sparsely: MainPop_d, AccessoryPop_d and ServedPop_d are
    popularity over a set of categories (a category ~ its mass, then a product in it)."""

    def __init__(self, family: ComplementsFamily, arrays: ComplementsDay, draws: PopularityDraws):
        self.family = family
        self.arrays = arrays
        self.draws = draws
        accessory = family.is_accessory_category
        self.main_cumulative = draws.categories.category_cumulative(~accessory)
        self.accessory_cumulative = draws.categories.category_cumulative(accessory)
        self.served_cumulative = normalised_cumulative(arrays.served_category_share)

    def _pooled(self, cumulative: np.ndarray):
        """A component drawing ~ popularity over the categories of one pool."""
        categories = self.draws.categories
        return lambda rows, u, v: categories.draw_pooled(
            np.broadcast_to(cumulative, (len(rows), len(cumulative))), u, v
        )

    def first(self, rng, states):
        parameters = self.family.parameters
        weights = np.tile(
            [
                parameters.first_main_share * (self.main_cumulative[-1] > 0),
                (1 - parameters.first_main_share) * (self.accessory_cumulative[-1] > 0),
            ],
            (len(states), 1),
        )
        components = (self._pooled(self.main_cumulative), self._pooled(self.accessory_cumulative))
        no_history = np.empty((len(states), 0), dtype=np.int64)
        return draw_unseen_mixture(rng, no_history, weights, components)

    def next(self, rng, history, states):
        family, arrays, draws = self.family, self.arrays, self.draws
        parameters = family.parameters
        last = history[:, -1]
        category = family.catalogue.category[last]
        anchor, has_anchor = family.anchors(history)
        after_main = family.is_main[last]
        after_accessory = ~after_main & has_anchor
        no_anchor = ~has_anchor

        def weight(main: float, accessory: float, alone: float) -> np.ndarray:
            return np.select([after_main, after_accessory, no_anchor], [main, accessory, alone])

        has_accessories = arrays.accessory_weight[anchor].sum(axis=1) > 0
        weights = np.stack(
            [
                weight(
                    parameters.after_main_accessory,
                    parameters.after_accessory_anchor_accessory,
                    0.0,
                )
                * (has_accessories & has_anchor),
                weight(
                    parameters.after_main_neighbour,
                    parameters.after_accessory_anchor_neighbour,
                    0.0,
                )
                * (draws.has_neighbours[anchor] & has_anchor),
                weight(
                    0.0,
                    parameters.after_accessory_own_category,
                    parameters.no_anchor_own_category,
                )
                * draws.day.category_has_items[category],
                weight(0.0, 0.0, parameters.no_anchor_served_main)
                * arrays.served_has_mass[category],
                np.full(len(last), parameters.jump_share * draws.has_any),
            ],
            axis=1,
        )
        components = (
            lambda rows, u, _: draw_slots(
                family.accessories, arrays.accessory_weight, anchor[rows], u
            ),
            lambda rows, u, _: draws.neighbour(anchor[rows], u),
            lambda rows, u, _: draws.in_category(category[rows], u),
            lambda rows, u, v: draws.categories.draw_pooled(
                self.served_cumulative[category[rows]], u, v
            ),
            lambda rows, u, v: draws.anywhere(u, v),
        )
        return draw_unseen_mixture(rng, history, weights, components)
