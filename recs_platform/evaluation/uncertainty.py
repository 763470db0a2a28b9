"""How sure a metric is: the session bootstrap of MRR@k, for several recommenders at once.

Targets of one session are not independent (the same shopper, the same intent), so the
resampling unit is the session: each resample draws as many sessions as there are, with
replacement, and recomputes every recommender's MRR on the targets of the drawn sessions. The
same draws serve every recommender, so differences between two of them are paired: their
interval is much narrower than the two intervals side by side suggest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 1000
CONFIDENCE = 0.95
_BLOCK = 100


def reciprocal_ranks(ranks: np.ndarray, k: int) -> np.ndarray:
    """1 / rank where the target is in the top k, else 0: the per-target terms of MRR@k."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return np.where(ranks <= k, 1.0 / ranks, 0.0)


@dataclass(frozen=True)
class SessionBootstrap:
    """Resampled MRRs of several recommenders on the same targets, from the same draws.

    `resampled[name]` holds one MRR per resample; `estimates[name]` is the MRR on all targets.
    """

    estimates: dict[str, float]
    resampled: dict[str, np.ndarray]
    sessions: int
    targets: int
    confidence: float = CONFIDENCE

    def interval(self, name: str) -> tuple[float, float]:
        """The percentile interval of `name`'s MRR at `confidence`."""
        tail = (1 - self.confidence) / 2 * 100
        low, high = np.percentile(self.resampled[name], [tail, 100 - tail])
        return float(low), float(high)

    def difference_standard_error(self, first: str, second: str) -> float:
        """The standard error of MRR(first) - MRR(second), paired over the same draws."""
        return float(np.std(self.resampled[first] - self.resampled[second], ddof=1))

    def difference_interval(self, first: str, second: str) -> tuple[float, float]:
        tail = (1 - self.confidence) / 2 * 100
        differences = self.resampled[first] - self.resampled[second]
        low, high = np.percentile(differences, [tail, 100 - tail])
        return float(low), float(high)

    def probability_best(self) -> dict[str, float]:
        """The share of resamples in which each recommender has the highest MRR (ties split)."""
        names = list(self.resampled)
        table = np.stack([self.resampled[name] for name in names])
        best = table == table.max(axis=0, keepdims=True)
        shares = (best / best.sum(axis=0, keepdims=True)).mean(axis=1)
        return {name: float(share) for name, share in zip(names, shares, strict=True)}


def session_bootstrap(
    reciprocal_ranks_by_name: Mapping[str, np.ndarray],
    session_of_target: Sequence[int] | np.ndarray,
    resamples: int = RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> SessionBootstrap:
    """The session bootstrap of MRR for every recommender; see the module docstring.

    `reciprocal_ranks_by_name[name][i]` is `name`'s reciprocal rank on target i (0 outside the
    top k), `session_of_target[i]` the session target i comes from.
    """
    if resamples < 2:
        raise ValueError(f"resamples must be at least 2, got {resamples}")
    sessions, session_index = np.unique(np.asarray(session_of_target), return_inverse=True)
    n_targets = len(session_index)
    if n_targets == 0:
        raise ValueError("no targets to bootstrap")
    targets_per_session = np.bincount(session_index, minlength=len(sessions)).astype(np.float64)
    sums = {}
    for name, values in reciprocal_ranks_by_name.items():
        values = np.asarray(values, dtype=np.float64)
        if len(values) != n_targets:
            raise ValueError(f"{name}: {len(values)} reciprocal ranks for {n_targets} targets")
        sums[name] = np.bincount(session_index, weights=values, minlength=len(sessions))
    rng = np.random.default_rng(seed)
    uniform = np.full(len(sessions), 1 / len(sessions))
    resampled: dict[str, list[np.ndarray]] = {name: [] for name in sums}
    # Blocks of draws bound the memory to BLOCK x sessions, whatever the number of resamples.
    for start in range(0, resamples, _BLOCK):
        size = min(_BLOCK, resamples - start)
        draws = rng.multinomial(len(sessions), uniform, size=size).astype(np.float64)
        drawn_targets = draws @ targets_per_session
        for name, total in sums.items():
            resampled[name].append(draws @ total / drawn_targets)
    return SessionBootstrap(
        estimates={name: float(total.sum() / n_targets) for name, total in sums.items()},
        resampled={name: np.concatenate(blocks) for name, blocks in resampled.items()},
        sessions=len(sessions),
        targets=n_targets,
        confidence=confidence,
    )
