"""The one interface every session recommender implements: fit on sessions, score, rank."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np


class SessionRecommender(ABC):
    """Ranks a fixed catalogue (`item_ids`, set by `fit`) for session prefixes of SKUs."""

    name: str = "recommender"
    item_ids: list[str]

    @abstractmethod
    def fit(self, sessions: Sequence[Sequence[str]]) -> SessionRecommender:
        """Learn from sessions (each a sequence of SKUs in order); returns self."""

    @abstractmethod
    def score(self, prefixes: Sequence[Sequence[str]]) -> np.ndarray:
        """Scores [len(prefixes), len(item_ids)]; higher means more likely next."""

    def item_index(self) -> dict[str, int]:
        """Position of each SKU in `item_ids`."""
        cached = getattr(self, "_item_index", None)
        if cached is None or cached[0] is not self.item_ids:
            cached = (self.item_ids, {sku: index for index, sku in enumerate(self.item_ids)})
            self._item_index = cached
        return cached[1]

    def rank(
        self, prefixes: Sequence[Sequence[str]], k: int, exclude_seen: bool = True
    ) -> list[list[str]]:
        """The k best items per prefix, best first; ties go to the lower item index."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        scores = np.asarray(self.score(prefixes), dtype=np.float64)
        index = self.item_index()
        rankings = []
        for row, prefix in enumerate(prefixes):
            seen = {index[sku] for sku in prefix if sku in index} if exclude_seen else set()
            row_scores = scores[row]
            wanted = min(k + len(seen), len(row_scores))
            if wanted == 0:
                rankings.append([])
                continue
            # Everything scoring at least the wanted-th best value, ties included, then an
            # exact sort by (score descending, index ascending).
            threshold = np.partition(row_scores, len(row_scores) - wanted)[len(row_scores) - wanted]
            candidates = np.flatnonzero(row_scores >= threshold)
            ordered = candidates[np.lexsort((candidates, -row_scores[candidates]))]
            best = [item for item in ordered.tolist() if item not in seen][:k]
            rankings.append([self.item_ids[item] for item in best])
        return rankings


def check_fitted(recommender: SessionRecommender) -> None:
    if not getattr(recommender, "item_ids", None):
        raise RuntimeError(f"{recommender.name}: call fit() before score() or rank()")
