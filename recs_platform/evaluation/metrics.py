"""Next-item metrics from the rank of the target and from the top-k lists of a scored catalogue.

Scores are rows over the candidate catalogue; a candidate that must not be recommended (seen in
the prefix, unknown to the model) scores -inf. Ranks count ties against the model
(`target_ranks`); top-k lists break ties toward the lower candidate index, like
`SessionRecommender.rank`, and never contain a -inf candidate.
"""

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


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """The k best candidate indices per row, best first: [n_rows, k] int64, -1 where none is left.

    Order: score descending, then candidate index ascending (ties go to the lower index, across
    the cut at k too). Candidates scoring -inf are never returned, so a row with fewer than k
    finite scores is padded with -1 at the end. NaN scores are refused.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    scores = np.asarray(scores, dtype=np.float64)
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    n_rows, n_items = scores.shape
    top = np.full((n_rows, k), -1, dtype=np.int64)
    if n_rows == 0 or n_items == 0:
        return top
    wanted = min(k, n_items)
    # The wanted-th best value of each row; everything above it is in, and the ties at it are
    # filled in by candidate index until the row has `wanted` items.
    threshold = np.partition(scores, n_items - wanted, axis=1)[:, n_items - wanted][:, None]
    above = scores > threshold
    at = scores == threshold
    still_needed = wanted - above.sum(axis=1, keepdims=True)
    chosen = (above | (at & (np.cumsum(at, axis=1) <= still_needed))) & np.isfinite(scores)
    rows, columns = np.nonzero(chosen)
    order = np.lexsort((columns, -scores[rows, columns], rows))
    rows, columns = rows[order], columns[order]
    row_starts = np.searchsorted(rows, np.arange(n_rows))
    top[rows, np.arange(len(rows)) - row_starts[rows]] = columns
    return top


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


def _checked_lists(top: np.ndarray, k: int) -> np.ndarray:
    top = np.asarray(top, dtype=np.int64)
    if top.ndim != 2 or top.shape[0] == 0:
        raise ValueError("no top-k lists to average over")
    if not 1 <= k <= top.shape[1]:
        raise ValueError(f"k must be between 1 and the lists' length {top.shape[1]}, got {k}")
    return top[:, :k]


def item_coverage_at(top: np.ndarray, k: int, n_candidates: int) -> float:
    """Coverage@k: share of the `n_candidates` candidates in at least one top-k list.

    `top` holds candidate indices best first with -1 padding (as `top_k` returns); the first k
    columns are the top-k lists.
    """
    if n_candidates < 1:
        raise ValueError("no candidates to cover")
    top = _checked_lists(top, k)
    return float(np.unique(top[top >= 0]).size / n_candidates)


def popularity_percentiles(counts: np.ndarray) -> np.ndarray:
    """Each candidate's training popularity percentile, in [0, 1).

    percentile(i) = (number of candidates whose training count is strictly lower than i's) /
    (number of candidates). The single most viewed item gets (n - 1) / n, close to 1; an item
    never seen in training (count 0), like every item tied for the lowest count, gets 0. Tied
    items share a percentile: the lowest position of their tie group.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError("popularity percentiles need a non-empty vector of counts")
    return np.searchsorted(np.sort(counts), counts, side="left") / counts.size


def popularity_bias_at(top: np.ndarray, k: int, percentiles: np.ndarray) -> float:
    """Popularity bias@k: mean popularity percentile over every item of every top-k list.

    Each recommended item counts once per list it appears in (padding -1 does not count), so
    this is the popularity of what users would be shown. NaN when nothing was recommended.
    `percentiles` as `popularity_percentiles` computes them, indexed by candidate.
    """
    top = _checked_lists(top, k)
    recommended = top[top >= 0]
    if recommended.size == 0:
        return float("nan")
    return float(np.asarray(percentiles, dtype=np.float64)[recommended].mean())
