"""First-order Markov chain: what followed the session's last item in training."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recs_platform.models.base import SessionRecommender, check_fitted, load_arrays, save_arrays
from recs_platform.models.popularity import item_counts


class MarkovRecommender(SessionRecommender):
    """Scores = how often each item followed the last item, plus popularity share < 1.

    Transition counts are whole numbers and the popularity term stays below 1, so popularity
    only breaks ties between equally frequent successors and ranks everything when the last
    item was never followed by anything in training.
    """

    def __init__(self, name: str = "markov"):
        self.name = name
        self.item_ids: list[str] = []
        self.popularity_share = np.zeros(0)
        self.successor_start = np.zeros(1, dtype=np.int64)
        self.successors = np.zeros(0, dtype=np.int64)
        self.successor_counts = np.zeros(0)

    def fit(self, sessions: Sequence[Sequence[str]]) -> MarkovRecommender:
        self.item_ids, counts = item_counts(sessions)
        self.popularity_share = counts / (counts.sum() + 1)
        index = self.item_index()
        n_items = len(self.item_ids)
        pair_codes = [
            index[current] * n_items + index[following]
            for session in sessions
            for current, following in zip(session, session[1:], strict=False)
        ]
        codes, pair_counts = np.unique(np.asarray(pair_codes, dtype=np.int64), return_counts=True)
        sources = codes // n_items
        # Row-compressed transitions: item i's successors are at successor_start[i]:[i + 1].
        self.successor_start = np.concatenate(
            [[0], np.cumsum(np.bincount(sources, minlength=n_items))]
        )
        self.successors = codes % n_items
        self.successor_counts = pair_counts.astype(np.float64)
        return self

    def score(self, prefixes: Sequence[Sequence[str]]) -> np.ndarray:
        check_fitted(self)
        index = self.item_index()
        scores = np.tile(self.popularity_share, (len(prefixes), 1))
        for row, prefix in enumerate(prefixes):
            last = index.get(prefix[-1]) if prefix else None
            if last is not None:
                start, stop = self.successor_start[last], self.successor_start[last + 1]
                scores[row, self.successors[start:stop]] += self.successor_counts[start:stop]
        return scores

    def _save_state(self, folder: Path) -> None:
        save_arrays(
            folder,
            self.item_ids,
            popularity_share=self.popularity_share,
            successor_start=self.successor_start,
            successors=self.successors,
            successor_counts=self.successor_counts,
        )

    @classmethod
    def _load_state(cls, folder: Path) -> MarkovRecommender:
        model = cls()
        model.item_ids, arrays = load_arrays(folder)
        for key, value in arrays.items():
            setattr(model, key, value)
        return model
