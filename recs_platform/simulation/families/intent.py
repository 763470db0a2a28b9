"""The latent-intent shop: every session has a hidden (style, price level) that tilts its choices.

The process is the package docstring's (`recs_platform.simulation`), computed by `ShopDay`;
this family only puts it behind the family interface. Generating this family keeps its own
faster rejection sampler (`DaySampler`), which draws from the same mixture.
"""

from __future__ import annotations

import numpy as np

from recs_platform.simulation.dynamics import ShopDay
from recs_platform.simulation.families.base import ShopFamily, restrict_to_unseen


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
