"""Most viewed items first, whatever the session: the floor every model must clear."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recs_platform.models.base import SessionRecommender, check_fitted, load_arrays, save_arrays


def item_counts(sessions: Sequence[Sequence[str]]) -> tuple[list[str], np.ndarray]:
    """The sorted SKUs occurring in `sessions` and how often each occurs."""
    item_ids = sorted({sku for session in sessions for sku in session})
    if not item_ids:
        raise ValueError("no items to fit on: every session is empty")
    index = {sku: position for position, sku in enumerate(item_ids)}
    occurrences = [index[sku] for session in sessions for sku in session]
    return item_ids, np.bincount(occurrences, minlength=len(item_ids)).astype(np.float64)


class PopularityRecommender(SessionRecommender):
    def __init__(self, name: str = "popularity"):
        self.name = name
        self.item_ids: list[str] = []
        self.counts = np.zeros(0)

    def fit(self, sessions: Sequence[Sequence[str]]) -> PopularityRecommender:
        self.item_ids, self.counts = item_counts(sessions)
        return self

    def score(self, prefixes: Sequence[Sequence[str]]) -> np.ndarray:
        check_fitted(self)
        return np.tile(self.counts, (len(prefixes), 1))

    def _save_state(self, folder: Path) -> None:
        save_arrays(folder, self.item_ids, counts=self.counts)

    @classmethod
    def _load_state(cls, folder: Path) -> PopularityRecommender:
        model = cls()
        model.item_ids, arrays = load_arrays(folder)
        model.counts = arrays["counts"]
        return model
