"""The exact next-product distribution of the synthetic shop: the best any recommender can do."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np

from recs_platform.models.base import SessionRecommender
from recs_platform.simulation.catalogue import build_catalogue
from recs_platform.simulation.config import ShopConfig
from recs_platform.simulation.families import build_family

_CACHE_LIMIT = 50_000
# Step rows kept for reuse: scoring a prefix and then its extension by one product (how the
# evaluation walks a session) needs the prefix's rows twice.
_STEP_ROWS_LIMIT = 4


class Oracle:
    """Knows the generator's parameters; computes P(next product | prefix, day) in closed form.

    The session's latent state (the intent, the family of a mixed shop's session) is unknown:
    the posterior over the states given the prefix weighs each state's prior by its likelihood
    of the whole prefix, every step the very probability the generator drew it with. The
    next-product distribution mixes the states' next-step rows over that posterior.
    """

    def __init__(self, config: ShopConfig):
        self.config = config
        self.catalogue = build_catalogue(config)
        self.family = build_family(config, self.catalogue)
        self._log_prior = np.log(self.family.state_prior())
        self._log_likelihoods: dict[tuple[int, tuple[int, ...]], np.ndarray] = {}
        self._step_rows: dict[tuple[int, tuple[int, ...]], np.ndarray] = {}

    def day_index(self, day: int | dt.date) -> int:
        if isinstance(day, dt.date):
            return (day - self.config.start).days
        return int(day)

    def step_rows(self, prefix_item_indices: Sequence[int], day: int | dt.date) -> np.ndarray:
        """P(next view = j | prefix, state, day) for every latent state: [n_states, n_items].

        A row is zero where that state cannot continue. Returns to seen products included (in
        families with revisits); the array is shared, do not change it.
        """
        day = self.day_index(day)
        prefix = tuple(int(item) for item in prefix_item_indices)
        key = (day, prefix)
        rows = self._step_rows.get(key)
        if rows is None:
            n_states = self.family.n_states
            history = np.tile(np.array(prefix, dtype=np.int64), (n_states, 1))
            rows = self.family.step_probabilities(day, history, np.arange(n_states))
            if len(self._step_rows) >= _STEP_ROWS_LIMIT:
                del self._step_rows[next(iter(self._step_rows))]
            self._step_rows[key] = rows
        return rows

    def next_item_probabilities_by_intent(
        self, prefix_item_indices: Sequence[int], day: int | dt.date
    ) -> np.ndarray:
        """P_z(next = j | prefix, day) for every intent z: [n_intents, n_items], rows sum to 1.

        The intent family only.
        """
        self._require_intent_family()
        rows = self.step_rows(self._checked_prefix(prefix_item_indices), day)
        if not (rows.sum(axis=1) > 0).all():
            raise ValueError(
                f"no product is left to view after {len(prefix_item_indices)} products"
            )
        return rows.copy()

    def _require_intent_family(self) -> None:
        if self.config.family != "intent":
            raise ValueError(
                f"the {self.config.family} shop has no intents; use state_posterior and "
                "next_item_probabilities"
            )

    def _log_likelihood(self, prefix: tuple[int, ...], day: int) -> np.ndarray:
        """log P(prefix | state, day) for every latent state."""
        if not prefix:
            return np.zeros(self.family.n_states)
        key = (day, prefix)
        cached = self._log_likelihoods.get(key)
        if cached is not None:
            return cached
        earlier = self._log_likelihood(prefix[:-1], day)
        with np.errstate(divide="ignore"):
            step = np.log(self.step_rows(prefix[:-1], day)[:, prefix[-1]])
        log_likelihood = earlier + step
        if len(self._log_likelihoods) >= _CACHE_LIMIT:
            self._log_likelihoods.clear()
        self._log_likelihoods[key] = log_likelihood
        return log_likelihood

    def _checked_prefix(self, prefix: Sequence[int]) -> tuple[int, ...]:
        items = tuple(int(item) for item in prefix)
        if any(not 0 <= item < self.catalogue.n_items for item in items):
            raise ValueError(f"prefix {items} has an item outside the catalogue")
        if not self.family.revisits and len(set(items)) != len(items):
            raise ValueError(f"prefix {items} views a product twice; the shop never does")
        return items

    def state_posterior(self, prefix_item_indices: Sequence[int], day: int | dt.date) -> np.ndarray:
        """P(state | prefix, day) over the family's latent states."""
        day = self.day_index(day)
        prefix = self._checked_prefix(prefix_item_indices)
        log_posterior = self._log_prior + self._log_likelihood(prefix, day)
        if not np.isfinite(log_posterior).any():
            raise ValueError(
                f"prefix {prefix} is impossible on day {day} in the {self.config.family} shop "
                "(a product not yet launched? a product viewed twice in a row?)"
            )
        weights = np.exp(log_posterior - log_posterior.max())
        return weights / weights.sum()

    def intent_posterior(
        self, prefix_item_indices: Sequence[int], day: int | dt.date
    ) -> np.ndarray:
        """P(z | prefix, day), intents indexed style * n_price_levels + price level.

        The intent family only; `state_posterior` in every family.
        """
        self._require_intent_family()
        return self.state_posterior(prefix_item_indices, day)

    def next_view_probabilities(
        self, prefix_item_indices: Sequence[int], day: int | dt.date
    ) -> np.ndarray:
        """P(next product view = j | prefix, day), returns to seen products included."""
        day = self.day_index(day)
        prefix = self._checked_prefix(prefix_item_indices)
        probabilities = self.state_posterior(prefix, day) @ self.step_rows(prefix, day)
        if not probabilities.sum() > 0:
            raise ValueError(
                f"no product is left to view after {len(prefix)} products on day {day}"
            )
        return probabilities / probabilities.sum()

    def next_item_probabilities(
        self, prefix_item_indices: Sequence[int], day: int | dt.date
    ) -> np.ndarray:
        """P(next new product = j | prefix, day) over the catalogue; zero on seen and unavailable
        products. What a recommender ranks: no one may show a product the session has seen."""
        prefix = self._checked_prefix(prefix_item_indices)
        probabilities = self.next_view_probabilities(prefix, day).copy()
        probabilities[list(prefix)] = 0.0
        total = probabilities.sum()
        if not total > 0:
            raise ValueError(f"no new product is left to view after {len(prefix)} products")
        return probabilities / total

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
