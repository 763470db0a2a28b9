"""V-SKNN (Ludewig & Jannach 2018): the session's nearest training sessions vote for their items.

For a prefix x_1..x_t, item x_p weighs p / t (linear decay: the last item 1, the first 1/t).
Candidate neighbours are the training sessions sharing an item with the prefix; of those the
`sample_size` most recent (training sessions are taken to be in time order, latest last) are
kept. Similarity is the cosine between the prefix's weight vector and the neighbour's binary
item vector,

    sim(x, n) = sum over items i in both of w_i / (||w|| * sqrt(|n|)),

the `k` most similar neighbours are kept, and item j scores the sum of the similarities of the
kept neighbours containing j. Items no neighbour contains are ranked by training popularity:
every row adds popularity share (< 1) times 1e-3 times the row's smallest positive neighbourhood
score, so popularity only orders what the neighbourhood leaves tied (zero, mostly); a prefix with
no known item, or no neighbour, is scored by the popularity share alone.

Defaults k=100, sample_size=1000 (the session-rec ranges; see benchmarks/README.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import sparse

from recs_platform.models.base import SessionRecommender, check_fitted, load_arrays, save_arrays
from recs_platform.models.popularity import item_counts

POPULARITY_SCALE = 1e-3


def _latest_per_row(matrix: sparse.csr_matrix, keep: int) -> sparse.csr_matrix:
    """`matrix` with only the last `keep` entries of each row (the most recent sessions of an
    item, sessions being in time order).

    The sample of a prefix's neighbours stays exactly the same: a session among the latest
    `sample_size` sharing an item with the prefix is among the latest `sample_size` of each
    prefix item it holds, so every dot product it needs survives. Without the cut, a popular
    item's whole history (hundreds of thousands of sessions on a large shop) entered the
    product of every prefix holding it.
    """
    matrix.sort_indices()
    lengths = np.diff(matrix.indptr)
    kept = np.minimum(lengths, keep)
    first_kept = np.repeat(matrix.indptr[1:] - kept, lengths)
    mask = np.arange(matrix.nnz) >= first_kept
    indptr = np.concatenate([[0], np.cumsum(kept)])
    return sparse.csr_matrix((matrix.data[mask], matrix.indices[mask], indptr), shape=matrix.shape)


class VSKNNRecommender(SessionRecommender):
    def __init__(self, name: str = "vsknn", k: int = 100, sample_size: int = 1000):
        if k < 1 or sample_size < 1:
            raise ValueError(f"k and sample_size must be at least 1, got {k} and {sample_size}")
        self.name = name
        self.k = k
        self.sample_size = sample_size
        self.item_ids: list[str] = []
        self.popularity_share = np.zeros(0)
        self.sessions = sparse.csr_matrix((0, 0))  # [training sessions, items], binary

    def fit(self, sessions: Sequence[Sequence[str]]) -> VSKNNRecommender:
        self.item_ids, counts = item_counts(sessions)
        self.popularity_share = counts / (counts.sum() + 1)
        index = self.item_index()
        rows, columns = [], []
        kept = 0
        for session in sessions:
            items = sorted({index[sku] for sku in session})
            if items:
                rows += [kept] * len(items)
                columns += items
                kept += 1
        self.sessions = sparse.csr_matrix(
            (np.ones(len(rows)), (rows, columns)), shape=(kept, len(self.item_ids))
        )
        self._prepare()
        return self

    def _prepare(self) -> None:
        self.sessions.sort_indices()
        self.session_norms = np.sqrt(np.diff(self.sessions.indptr)).astype(np.float64)
        self.sessions_by_item = _latest_per_row(self.sessions.T.tocsr(), self.sample_size)

    def _prefix_weights(self, prefixes: Sequence[Sequence[str]]) -> sparse.csr_matrix:
        """[prefixes, items]: linearly decaying weights of each prefix's known items."""
        index = self.item_index()
        rows, columns, values = [], [], []
        for row, prefix in enumerate(prefixes):
            known = [index[sku] for sku in prefix if sku in index]
            weights: dict[int, float] = {}
            for position, item in enumerate(known, start=1):
                weights[item] = position / len(known)  # a repeat keeps its latest weight
            rows += [row] * len(weights)
            columns += list(weights)
            values += list(weights.values())
        return sparse.csr_matrix(
            (values, (rows, columns)), shape=(len(prefixes), len(self.item_ids))
        )

    def neighbours(self, prefixes: Sequence[Sequence[str]]) -> sparse.csr_matrix:
        """[prefixes, training sessions]: the similarity of each prefix's k kept neighbours."""
        check_fitted(self)
        weights = self._prefix_weights(prefixes)
        prefix_norms = np.sqrt(np.asarray(weights.multiply(weights).sum(axis=1)).ravel())
        overlap = (weights @ self.sessions_by_item).tocsr()  # dot products, sharing sessions
        overlap.sort_indices()
        rows, columns, values = [], [], []
        for row in range(len(prefixes)):
            start, stop = overlap.indptr[row], overlap.indptr[row + 1]
            # The latest sample_size sharing sessions (indices are sorted ascending).
            start = max(start, stop - self.sample_size)
            candidates = overlap.indices[start:stop]
            if not len(candidates):
                continue
            similarity = overlap.data[start:stop] / (
                prefix_norms[row] * self.session_norms[candidates]
            )
            if len(candidates) > self.k:
                # Most similar first, the more recent session first on equal similarity.
                best = np.lexsort((-candidates, -similarity))[: self.k]
                candidates, similarity = candidates[best], similarity[best]
            rows += [row] * len(candidates)
            columns += candidates.tolist()
            values += similarity.tolist()
        return sparse.csr_matrix(
            (values, (rows, columns)), shape=(len(prefixes), self.sessions.shape[0])
        )

    def score(self, prefixes: Sequence[Sequence[str]]) -> np.ndarray:
        check_fitted(self)
        scores = (self.neighbours(prefixes) @ self.sessions).toarray()
        positive = np.where(scores > 0, scores, np.inf).min(axis=1)
        scale = np.where(np.isfinite(positive), POPULARITY_SCALE * positive, 1.0)
        return scores + scale[:, None] * self.popularity_share[None, :]

    def _save_state(self, folder: Path) -> None:
        save_arrays(
            folder,
            self.item_ids,
            popularity_share=self.popularity_share,
            indptr=self.sessions.indptr,
            indices=self.sessions.indices,
            settings=np.array([self.k, self.sample_size]),
        )

    @classmethod
    def _load_state(cls, folder: Path) -> VSKNNRecommender:
        item_ids, arrays = load_arrays(folder)
        k, sample_size = (int(value) for value in arrays["settings"])
        model = cls(k=k, sample_size=sample_size)
        model.item_ids = item_ids
        model.popularity_share = arrays["popularity_share"]
        indptr, indices = arrays["indptr"], arrays["indices"]
        model.sessions = sparse.csr_matrix(
            (np.ones(len(indices)), indices, indptr), shape=(len(indptr) - 1, len(item_ids))
        )
        model._prepare()
        return model
