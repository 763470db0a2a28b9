"""Next-item metrics from the rank of the target among all scored items."""

from __future__ import annotations

import numpy as np


def target_ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """1 + the number of OTHER items scoring at least as high as the target, per row.

    Ties count against the model, so a constant scorer ranks every target last.
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    target_scores = scores[np.arange(len(targets)), targets]
    # The target itself is counted by >=, which supplies the "1 +".
    return (scores >= target_scores[:, None]).sum(axis=1)


def _checked(ranks: np.ndarray, k: int) -> np.ndarray:
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        raise ValueError("no targets to average over")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return ranks


def hit_rate_at(ranks: np.ndarray, k: int) -> float:
    """HR@k: share of targets ranked in the top k."""
    ranks = _checked(ranks, k)
    return float((ranks <= k).mean())


def mrr_at(ranks: np.ndarray, k: int) -> float:
    """MRR@k: mean of 1/rank, counting targets ranked below k as 0."""
    ranks = _checked(ranks, k)
    return float(np.where(ranks <= k, 1.0 / ranks, 0.0).mean())
