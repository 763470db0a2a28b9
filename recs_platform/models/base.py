"""The one interface every session recommender implements: fit on sessions, score, rank."""

from __future__ import annotations

import importlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np

MANIFEST = "recommender.json"


def over_unseen(rows: np.ndarray, seen: Sequence[Sequence[int]]) -> np.ndarray:
    """`rows` of next-item probabilities renormalised over the items each prefix has not seen
    (its `seen` columns set to 0; a row with no mass left stays 0), in place."""
    for row, columns in enumerate(seen):
        rows[row, list(columns)] = 0.0
    unseen_mass = rows.sum(axis=1, keepdims=True)
    np.divide(rows, unseen_mass, out=rows, where=unseen_mass > 0)
    return rows


class SessionRecommender(ABC):
    """Ranks a fixed catalogue (`item_ids`, set by `fit`) for session prefixes of SKUs."""

    name: str = "recommender"
    item_ids: list[str]
    # Whether `fit(sessions, deadline=...)` stops at a `time.perf_counter()` deadline, keeping
    # what it learnt and saying so in `stopped_at_deadline` (a retrain's time budget).
    fits_within_deadline: bool = False

    @abstractmethod
    def fit(self, sessions: Sequence[Sequence[str]]) -> SessionRecommender:
        """Learn from sessions (each a sequence of SKUs in order); returns self."""

    @abstractmethod
    def score(self, prefixes: Sequence[Sequence[str]]) -> np.ndarray:
        """Scores [len(prefixes), len(item_ids)]; higher means more likely next."""

    def probabilities(self, prefixes: Sequence[Sequence[str]]) -> np.ndarray:
        """P(next = j | prefix) over `item_ids`, rows summing to 1 (the prefix's items included)."""
        return self.probabilities_of_scores(prefixes, np.asarray(self.score(prefixes)))

    def probabilities_of_scores(
        self, prefixes: Sequence[Sequence[str]], scores: np.ndarray
    ) -> np.ndarray:
        """`probabilities` of `prefixes` from their `score` (what the evaluation, which has
        scored them, turns into its targets' likelihoods without scoring them again).

        By default the scores read as unnormalised weights (counts, similarities), which must
        not be negative; a model whose scores are logits overrides this with their softmax.
        A row of zeros becomes uniform.
        """
        scores = np.asarray(scores, dtype=np.float64)
        if (scores < 0).any():
            raise ValueError(
                f"{self.name}: negative scores are no weights; override probabilities()"
            )
        totals = scores.sum(axis=1, keepdims=True)
        uniform = np.full_like(scores, 1.0 / max(scores.shape[1], 1))
        return np.where(totals > 0, scores / np.where(totals > 0, totals, 1.0), uniform)

    def save(self, folder: Path) -> Path:
        """Write the fitted model to `folder` (created): a manifest plus the model's own files."""
        check_fitted(self)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._save_state(folder)
        manifest = {
            "class": f"{type(self).__module__}:{type(self).__qualname__}",
            "name": self.name,
            "items": len(self.item_ids),
        }
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))
        return folder

    def _save_state(self, folder: Path) -> None:
        """Write everything `_load_state` needs (the item ids included)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be saved")

    @classmethod
    def _load_state(cls, folder: Path) -> SessionRecommender:
        raise NotImplementedError(f"{cls.__name__} cannot be loaded")

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
        return [items for items, _ in self.top_k(prefixes, k, exclude_seen)]

    def top_k(
        self,
        prefixes: Sequence[Sequence[str]],
        k: int,
        exclude_seen: bool = True,
        excluded: Sequence[Sequence[str]] | None = None,
    ) -> list[tuple[list[str], list[float]]]:
        """(items, scores) of the k best items per prefix, best first, ties to the lower index.

        With `exclude_seen`, the items of the prefix are left out, and those of `excluded[row]`
        too where given (a caller that scores only the end of a long session).
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        scores = np.asarray(self.score(prefixes), dtype=np.float64)
        index = self.item_index()
        results = []
        for row, prefix in enumerate(prefixes):
            seen: set[int] = set()
            if exclude_seen:
                skus = prefix if excluded is None else (*prefix, *excluded[row])
                seen = {index[sku] for sku in skus if sku in index}
            best = top_k_indices(scores[row], k, seen)
            results.append(([self.item_ids[item] for item in best], scores[row, best].tolist()))
        return results


def top_k_indices(row_scores: np.ndarray, k: int, excluded: set[int]) -> list[int]:
    """Indices of the k best scores outside `excluded`, best first, ties to the lower index."""
    wanted = min(k + len(excluded), len(row_scores))
    if wanted == 0:
        return []
    # Everything scoring at least the wanted-th best value, ties included, then an exact sort
    # by (score descending, index ascending).
    threshold = np.partition(row_scores, len(row_scores) - wanted)[len(row_scores) - wanted]
    candidates = np.flatnonzero(row_scores >= threshold)
    ordered = candidates[np.lexsort((candidates, -row_scores[candidates]))]
    return [item for item in ordered.tolist() if item not in excluded][:k]


def check_fitted(recommender: SessionRecommender) -> None:
    if not getattr(recommender, "item_ids", None):
        raise RuntimeError(f"{recommender.name}: call fit() before score() or rank()")


def load_recommender(folder: Path) -> SessionRecommender:
    """The recommender saved in `folder` by `SessionRecommender.save`, of whatever class."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{folder} holds no saved recommender (no {MANIFEST})")
    manifest = json.loads(manifest_path.read_text())
    module_name, _, class_name = manifest["class"].partition(":")
    if not module_name.startswith("recs_platform."):
        raise ValueError(f"{manifest_path}: refusing to load class {manifest['class']!r}")
    recommender_class = getattr(importlib.import_module(module_name), class_name)
    recommender = recommender_class._load_state(folder)
    recommender.name = manifest["name"]
    return recommender


def save_arrays(folder: Path, item_ids: Sequence[str], **arrays: np.ndarray) -> None:
    """The item ids as JSON and numeric arrays in one `.npz`: the state of the numpy models."""
    (Path(folder) / "item_ids.json").write_text(json.dumps(list(item_ids)))
    np.savez(Path(folder) / "arrays.npz", **arrays)


def load_arrays(folder: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    item_ids = json.loads((Path(folder) / "item_ids.json").read_text())
    with np.load(Path(folder) / "arrays.npz", allow_pickle=False) as stored:
        return item_ids, {key: stored[key] for key in stored.files}
