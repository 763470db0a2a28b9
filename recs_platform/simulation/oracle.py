"""The exact next-product distribution of the synthetic shop: the best any recommender can do."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np

from recs_platform.models.base import SessionRecommender
from recs_platform.simulation.catalogue import build_catalogue
from recs_platform.simulation.config import ShopConfig
from recs_platform.simulation.dynamics import ShopDay

_CACHE_LIMIT = 50_000


class Oracle:
    """Knows the generator's parameters; computes P(next product | prefix, day) in closed form.

    The intent z is unknown: the posterior over z given the prefix weighs each intent's
    likelihood of the whole prefix, every step with the same exclusion the generator applies.
    """

    def __init__(self, config: ShopConfig):
        self.config = config
        self.catalogue = build_catalogue(config)
        self._days: dict[int, ShopDay] = {}
        self._log_likelihoods: dict[tuple[int, tuple[int, ...]], np.ndarray] = {}

    def day_index(self, day: int | dt.date) -> int:
        if isinstance(day, dt.date):
            return (day - self.config.start).days
        return int(day)

    def shop_day(self, day: int | dt.date) -> ShopDay:
        index = self.day_index(day)
        if index not in self._days:
            self._days[index] = ShopDay(self.config, self.catalogue, index)
        return self._days[index]

    def next_item_probabilities_by_intent(
        self, prefix_item_indices: Sequence[int], day: int | dt.date
    ) -> np.ndarray:
        """P_z(next = j | prefix, day) for every intent z: [n_intents, n_items], rows sum to 1."""
        prefix = tuple(prefix_item_indices)
        shop_day = self.shop_day(day)
        if not prefix:
            return shop_day.first_probabilities()
        rows = shop_day.mixture_rows(prefix[-1])
        rows[:, list(prefix)] = 0.0
        unseen_mass = rows.sum(axis=1, keepdims=True)
        if not (unseen_mass > 0).all():
            raise ValueError(
                f"no product is left to view after {len(prefix)} products on day {shop_day.day}"
            )
        return rows / unseen_mass

    def _log_likelihood(self, prefix: tuple[int, ...], day: int) -> np.ndarray:
        """log P(prefix | z, day) for every intent z."""
        if not prefix:
            return np.zeros(self.config.n_intents)
        key = (day, prefix)
        cached = self._log_likelihoods.get(key)
        if cached is not None:
            return cached
        earlier = self._log_likelihood(prefix[:-1], day)
        with np.errstate(divide="ignore"):
            step = np.log(self.next_item_probabilities_by_intent(prefix[:-1], day)[:, prefix[-1]])
        log_likelihood = earlier + step
        if len(self._log_likelihoods) >= _CACHE_LIMIT:
            self._log_likelihoods.clear()
        self._log_likelihoods[key] = log_likelihood
        return log_likelihood

    def _checked_prefix(self, prefix: Sequence[int]) -> tuple[int, ...]:
        items = tuple(int(item) for item in prefix)
        if any(not 0 <= item < self.catalogue.n_items for item in items):
            raise ValueError(f"prefix {items} has an item outside the catalogue")
        if len(set(items)) != len(items):
            raise ValueError(f"prefix {items} views a product twice; the shop never does")
        return items

    def intent_posterior(
        self, prefix_item_indices: Sequence[int], day: int | dt.date
    ) -> np.ndarray:
        """P(z | prefix, day), intents indexed style * n_price_levels + price level."""
        day = self.day_index(day)
        log_likelihood = self._log_likelihood(self._checked_prefix(prefix_item_indices), day)
        if not np.isfinite(log_likelihood).any():
            raise ValueError(
                f"prefix {tuple(prefix_item_indices)} is impossible on day {day} "
                "(a product not yet launched?)"
            )
        # Uniform prior over intents.
        weights = np.exp(log_likelihood - log_likelihood.max())
        return weights / weights.sum()

    def next_item_probabilities(
        self, prefix_item_indices: Sequence[int], day: int | dt.date
    ) -> np.ndarray:
        """P(next product = j | prefix, day) over the catalogue; zero on seen and unavailable."""
        day = self.day_index(day)
        prefix = self._checked_prefix(prefix_item_indices)
        posterior = self.intent_posterior(prefix, day)
        return posterior @ self.next_item_probabilities_by_intent(prefix, day)

    def ranker(self, day: int | dt.date) -> OracleRanker:
        return OracleRanker(self, self.day_index(day))


class OracleRanker(SessionRecommender):
    """The oracle for one day behind the recommender interface; scores are probabilities."""

    def __init__(self, oracle: Oracle, day: int):
        self.oracle = oracle
        self.day = day
        self.name = "oracle"
        self.item_ids = list(oracle.catalogue.skus)

    def fit(self, sessions: Sequence[Sequence[str]]) -> OracleRanker:
        """Nothing to learn: the oracle knows the shop."""
        return self

    def score(self, prefixes: Sequence[Sequence[str]]) -> np.ndarray:
        index = self.item_index()
        scores = np.empty((len(prefixes), len(self.item_ids)))
        for row, prefix in enumerate(prefixes):
            unknown = [sku for sku in prefix if sku not in index]
            if unknown:
                raise ValueError(f"oracle: SKUs not in the shop's catalogue: {unknown[:5]}")
            scores[row] = self.oracle.next_item_probabilities([index[s] for s in prefix], self.day)
        return scores
