"""The next-product mixture M_z(j | i, d) of one day, shared by the generator and the oracle.

Both read the same arrays, so what the generator samples is what the oracle computes.
"""

from __future__ import annotations

import numpy as np

from recs_platform.simulation.catalogue import Catalogue
from recs_platform.simulation.config import ShopConfig


class ShopDay:
    """Everything about day `day` that the mixture needs, for all intents at once."""

    def __init__(self, config: ShopConfig, catalogue: Catalogue, day: int):
        self.config = config
        self.catalogue = catalogue
        self.day = day
        self.available = catalogue.launch_day <= day
        # pop_j(d) tilt_z(j) avail_d(j): the unnormalised popularity weight of j under intent z.
        self.item_weight = catalogue.intent_tilt * catalogue.popularity_on(day)[None, :]
        category = catalogue.category
        n_categories = catalogue.n_categories
        self.category_mass = np.stack(
            [np.bincount(category, weights=row, minlength=n_categories) for row in self.item_weight]
        )
        self.category_has_items = self.category_mass[0] > 0
        self.global_mass = self.item_weight.sum(axis=1)
        safe_mass = np.where(self.category_mass > 0, self.category_mass, 1.0)
        # CatPop_z(j | cat(j), d): j's share of its own category under intent z.
        self.share_in_category = self.item_weight / np.take(safe_mass, category, axis=1)

        switch = catalogue.category_switch * self.category_has_items[None, :]
        switch_mass = switch.sum(axis=1)
        self.switch_possible = switch_mass > 0
        self.category_switch = switch / np.where(self.switch_possible, switch_mass, 1.0)[:, None]

        # Neighbour weights w_ij avail_d(j), without the tilt (which depends on the intent).
        padded = np.maximum(catalogue.neighbours, 0)
        self.neighbour_weight = catalogue.neighbour_weight * self.available[padded]
        self.has_neighbours = self.neighbour_weight.sum(axis=1) > 0

    def source_weights(self, previous: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Weights of (neighbours, own category, another category) after the item `previous`.

        A component with no available product that day drops out and the others are
        renormalised. Its mass does not depend on the intent (tilts are positive), so neither
        do these weights.
        """
        config = self.config
        category = self.catalogue.category[previous]
        neighbour = config.p_stay * config.alpha * self.has_neighbours[previous]
        own = config.p_stay * (1 - config.alpha) * self.category_has_items[category]
        other = (1 - config.p_stay) * self.switch_possible[category]
        total = neighbour + own + other
        return neighbour / total, own / total, other / total

    def neighbour_tilted_weights(self, previous: np.ndarray, intents: np.ndarray) -> np.ndarray:
        """w_ij tilt_z(j) avail_d(j) over i's neighbour slots: [len(previous), K]."""
        neighbours = np.maximum(self.catalogue.neighbours[previous], 0)
        tilt = self.catalogue.intent_tilt[intents[:, None], neighbours]
        return self.neighbour_weight[previous] * tilt

    def first_probabilities(self) -> np.ndarray:
        """GlobalPop_z(j, d) for all intents: [n_intents, n_items]."""
        return self.item_weight / self.global_mass[:, None]

    def mixture_rows(self, previous: int) -> np.ndarray:
        """M_z(j | previous, d) for all intents z and items j: [n_intents, n_items], rows sum to 1.

        Before the exclusion of already-seen products.
        """
        catalogue = self.catalogue
        neighbour, own, other = (
            weight.item() for weight in self.source_weights(np.array([previous]))
        )
        category = catalogue.category[previous]
        category_factor = other * self.category_switch[category]
        category_factor[category] = own
        rows = self.share_in_category * category_factor[catalogue.category][None, :]
        if neighbour > 0:
            count = int((catalogue.neighbours[previous] >= 0).sum())
            slots = catalogue.neighbours[previous, :count]
            weights = self.neighbour_weight[previous, :count] * catalogue.intent_tilt[:, slots]
            rows[:, slots] += neighbour * weights / weights.sum(axis=1, keepdims=True)
        return rows

    def mixture_rows_of(self, previous: np.ndarray, intents: np.ndarray) -> np.ndarray:
        """M_z(j | i, d) for each pair (i, z) of `previous` and `intents`: [B, n_items].

        The rows of `mixture_rows`, one (previous item, intent) pair per row, before the
        exclusion of seen products.
        """
        catalogue = self.catalogue
        rows_index = np.arange(len(previous))
        neighbour, own, other = self.source_weights(previous)
        category = catalogue.category[previous]
        category_factor = other[:, None] * self.category_switch[category]
        category_factor[rows_index, category] = own
        rows = self.share_in_category[intents] * category_factor[:, catalogue.category]
        weights = self.neighbour_tilted_weights(previous, intents)
        total = weights.sum(axis=1)
        slots = catalogue.neighbours[previous]
        valid = (slots >= 0) & (neighbour > 0)[:, None]
        share = neighbour[:, None] * weights / np.where(total > 0, total, 1.0)[:, None]
        rows[np.broadcast_to(rows_index[:, None], slots.shape)[valid], slots[valid]] += share[valid]
        return rows
