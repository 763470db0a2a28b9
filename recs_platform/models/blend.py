"""A blend of recommenders: a mixture of their next-item distributions, weighed on held-out days.

For a prefix x of length t in length bucket b(t),

    P(next = j | x) = sum_m w[b(t), m] * P_m(j | x, j unseen)
    P_m(j | x, j unseen) = P_m(j | x) / (1 - sum over k in x of P_m(k | x))

P_m is member m's next-item distribution (`SessionRecommender.probabilities`), renormalised over
the items the prefix has not seen, which is what the evaluation and the carousel ask for. The
weights are fitted where the members did not learn: on a held-out day's targets, by maximum
likelihood (EM; the objective is concave in the weights, so EM finds its maximum). No member is a
bet on one structure: where a shop rewards the last item, the chain that reads it earns the
weight; where the history or the item geometry matters, the sequence models do.

Weights differ by prefix length (`LENGTH_BUCKETS`: 1, 2, 3-4, 5+ items): a member that reads the
whole history has more to say after five products than after one. Each bucket's weights get a
Dirichlet prior centred on the weights fitted on all targets (`prior_strength` pseudo-targets),
so a bucket with few targets stays near them.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from recs_platform.models.base import (
    SessionRecommender,
    check_fitted,
    load_recommender,
    over_unseen,
)

# Upper ends of the prefix-length buckets (inclusive); the last bucket is everything longer.
LENGTH_BUCKETS = (1, 2, 4)
WEIGHTS_FILE = "blend.json"
MEMBERS_FOLDER = "members"
FALLBACK_FOLDER = "fallback"
_TINY = 1e-300


def length_buckets(lengths: Sequence[int] | np.ndarray, bounds: Sequence[int]) -> np.ndarray:
    """The bucket of each prefix length: 0 for lengths <= bounds[0], ..., len(bounds) beyond."""
    return np.searchsorted(np.asarray(bounds), np.asarray(lengths), side="left")


def mixture_weights(
    likelihoods: np.ndarray,
    prior: np.ndarray | None = None,
    prior_strength: float = 0.0,
    iterations: int = 1000,
    tolerance: float = 1e-10,
) -> np.ndarray:
    """Weights w on the simplex maximising sum_n log sum_m w_m L[n, m] + prior_strength *
    sum_m prior_m log w_m (EM; the MAP estimate under a Dirichlet prior when prior_strength > 0).

    L[n, m] is member m's probability of held-out target n. Rows where every member gives the
    target probability 0 say nothing about the weights and are left out.
    """
    likelihoods = np.asarray(likelihoods, dtype=np.float64)
    if likelihoods.ndim != 2 or likelihoods.shape[1] == 0:
        raise ValueError(f"likelihoods must be [targets, members], got {likelihoods.shape}")
    if (likelihoods < 0).any() or not np.isfinite(likelihoods).all():
        raise ValueError("likelihoods must be finite and non-negative")
    members = likelihoods.shape[1]
    prior = np.full(members, 1.0 / members) if prior is None else np.asarray(prior, float)
    likelihoods = likelihoods[likelihoods.sum(axis=1) > 0]
    if not len(likelihoods) and prior_strength <= 0:
        return np.full(members, 1.0 / members)
    weights = prior.copy()
    transposed = np.ascontiguousarray(likelihoods.T)
    for _ in range(iterations):
        mixture = np.maximum(likelihoods @ weights, _TINY)
        responsibility = weights * (transposed @ (1.0 / mixture))
        updated = (responsibility + prior_strength * prior) / (len(likelihoods) + prior_strength)
        if np.abs(updated - weights).max() < tolerance:
            return updated
        weights = updated
    return weights


class BlendRecommender(SessionRecommender):
    """A weighted mixture of fitted members; see the module docstring.

    `weights` is [len(bounds) + 1, members] (one row per length bucket, each on the simplex);
    None means equal weights until `fit_weights` runs.
    """

    def __init__(
        self,
        members: Sequence[SessionRecommender],
        weights: np.ndarray | None = None,
        name: str = "blend",
        bounds: Sequence[int] = LENGTH_BUCKETS,
        prior_strength: float = 100.0,
        fallback: SessionRecommender | None = None,
    ):
        if not members:
            raise ValueError("a blend needs at least one member")
        names = [member.name for member in members]
        if len(set(names)) != len(names):
            raise ValueError(f"blend members need distinct names, got {names}")
        self.name = name
        self.members = list(members)
        self.bounds = tuple(int(bound) for bound in bounds)
        self.prior_strength = float(prior_strength)
        shape = (len(self.bounds) + 1, len(self.members))
        if weights is None:
            weights = np.full(shape, 1.0 / len(self.members))
        self.weights = np.asarray(weights, dtype=np.float64)
        if self.weights.shape != shape:
            raise ValueError(f"weights must be {shape}, got {self.weights.shape}")
        # Scores the prefixes no member knows an item of (the empty one too), where the members
        # were trained on different windows and their fallbacks disagree; None: the mixture.
        self.fallback = fallback
        self.item_ids: list[str] = []
        if all(getattr(member, "item_ids", None) for member in self.members):
            self._index_members()

    def _index_members(self) -> None:
        """The blend's catalogue (every member's items) and each member's columns in it."""
        self.item_ids = sorted({sku for member in self.members for sku in member.item_ids})
        index = self.item_index()
        self._columns = [
            np.array([index[sku] for sku in member.item_ids], dtype=np.int64)
            for member in self.members
        ]

    def fit(self, sessions: Sequence[Sequence[str]]) -> BlendRecommender:
        """Refit every member on `sessions` (each with its own settings); the weights stay."""
        for member in self.members:
            member.fit(sessions)
        self._index_members()
        return self

    # --- the members' distributions ----------------------------------------------------------

    def _member_rows(self, prefixes: Sequence[Sequence[str]]) -> Iterator[np.ndarray]:
        """Each member's [prefixes, items] P(next = j | prefix, j unseen), in the blend's columns,
        one member at a time: every member's rows at once would be members x prefixes x items
        (gigabytes for a batch at a 50,000-item shop)."""
        check_fitted(self)
        index = self.item_index()
        seen_rows = [
            np.array([index[sku] for sku in set(prefix) if sku in index], dtype=np.int64)
            for prefix in prefixes
        ]
        for member, columns in zip(self.members, self._columns, strict=True):
            rows = np.zeros((len(prefixes), len(self.item_ids)))
            rows[:, columns] = member.probabilities(prefixes)
            yield over_unseen(rows, seen_rows)

    def member_probabilities(self, prefixes: Sequence[Sequence[str]]) -> np.ndarray:
        """[members, prefixes, items]: each member's P(next = j | prefix, j unseen)."""
        return np.stack(list(self._member_rows(prefixes)))

    def target_likelihoods(
        self, prefixes: Sequence[Sequence[str]], targets: Sequence[str], batch_size: int = 256
    ) -> np.ndarray:
        """[targets, members]: each member's P(target | prefix, target unseen)."""
        index = self.item_index()
        columns = np.array([index.get(sku, -1) for sku in targets])
        if (columns < 0).any():
            unknown = sorted({sku for sku in targets if sku not in index})
            raise ValueError(f"{self.name}: targets unknown to every member: {unknown[:5]}")
        likelihoods = np.zeros((len(targets), len(self.members)))
        for start in range(0, len(targets), batch_size):
            stop = min(start + batch_size, len(targets))
            batch = np.arange(stop - start)
            for position, rows in enumerate(self._member_rows(prefixes[start:stop])):
                likelihoods[start:stop, position] = rows[batch, columns[start:stop]]
        return likelihoods

    def fit_weights(
        self, prefixes: Sequence[Sequence[str]], targets: Sequence[str]
    ) -> BlendRecommender:
        """Weights by maximum likelihood of held-out (prefix, next item) pairs; see the module."""
        likelihoods = self.target_likelihoods(prefixes, targets)
        buckets = length_buckets([len(prefix) for prefix in prefixes], self.bounds)
        self.weights = weights_by_bucket(
            likelihoods, buckets, len(self.bounds) + 1, self.prior_strength
        )
        return self

    def without_small_weights(self, minimum: float = 0.01) -> BlendRecommender:
        """The same blend without members whose weight is below `minimum` in every bucket
        (they cost scoring time and add nothing): the other weights are renormalised."""
        keep = np.flatnonzero(self.weights.max(axis=0) >= minimum)
        if len(keep) == len(self.members):
            return self
        weights = self.weights[:, keep]
        weights = weights / weights.sum(axis=1, keepdims=True)
        members = [self.members[position] for position in keep]
        return BlendRecommender(
            members, weights, self.name, self.bounds, self.prior_strength, self.fallback
        )

    def described_weights(self) -> dict[str, dict[str, float]]:
        """{bucket label: {member: weight}}; the default buckets are "1", "2", "3-4", "5+"."""
        labels, low = [], 1
        for bound in self.bounds:
            labels.append(str(bound) if bound == low else f"{low}-{bound}")
            low = bound + 1
        labels.append(f"{low}+")
        return {
            label: {
                member.name: float(weight) for member, weight in zip(self.members, row, strict=True)
            }
            for label, row in zip(labels, self.weights, strict=True)
        }

    # --- scoring -----------------------------------------------------------------------------

    def score(self, prefixes: Sequence[Sequence[str]]) -> np.ndarray:
        check_fitted(self)
        buckets = length_buckets([len(prefix) for prefix in prefixes], self.bounds)
        weights = self.weights[buckets]  # [prefixes, members]
        scores = np.zeros((len(prefixes), len(self.item_ids)))
        for position, rows in enumerate(self._member_rows(prefixes)):
            rows *= weights[:, position : position + 1]
            scores += rows
        if self.fallback is not None:
            index = self.item_index()
            lost = [
                row for row, prefix in enumerate(prefixes) if not any(s in index for s in prefix)
            ]
            if lost:
                columns = np.array([index.get(sku, -1) for sku in self.fallback.item_ids])
                known = columns >= 0
                rows = self.fallback.probabilities([prefixes[row] for row in lost])
                scores[lost] = 0.0
                scores[np.ix_(lost, columns[known])] = rows[:, known]
        return scores

    def probabilities(self, prefixes: Sequence[Sequence[str]]) -> np.ndarray:
        """The blend's next-item distribution over the unseen items (the scores themselves)."""
        return self.score(prefixes)

    def probabilities_of_scores(
        self, prefixes: Sequence[Sequence[str]], scores: np.ndarray
    ) -> np.ndarray:
        return np.array(scores, dtype=np.float64)  # a copy: callers renormalise it in place

    # --- persistence -------------------------------------------------------------------------

    def _save_state(self, folder: Path) -> None:
        names = []
        for position, member in enumerate(self.members):
            member_folder = f"{position:02d}-{member.name}"
            member.save(folder / MEMBERS_FOLDER / member_folder)
            names.append(member_folder)
        if self.fallback is not None:
            self.fallback.save(folder / FALLBACK_FOLDER)
        state = {
            "members": names,
            "weights": self.weights.tolist(),
            "bounds": list(self.bounds),
            "prior_strength": self.prior_strength,
        }
        (folder / WEIGHTS_FILE).write_text(json.dumps(state, indent=2))

    @classmethod
    def _load_state(cls, folder: Path) -> BlendRecommender:
        state = json.loads((folder / WEIGHTS_FILE).read_text())
        members = [load_recommender(folder / MEMBERS_FOLDER / name) for name in state["members"]]
        fallback = folder / FALLBACK_FOLDER
        return cls(
            members,
            np.array(state["weights"]),
            bounds=state["bounds"],
            prior_strength=state["prior_strength"],
            fallback=load_recommender(fallback) if fallback.is_dir() else None,
        )


def weights_by_bucket(
    likelihoods: np.ndarray, buckets: np.ndarray, n_buckets: int, prior_strength: float
) -> np.ndarray:
    """[n_buckets, members]: each bucket's MAP weights, the prior centred on all targets' ones."""
    overall = mixture_weights(likelihoods)
    return np.stack(
        [
            mixture_weights(likelihoods[buckets == bucket], overall, prior_strength)
            for bucket in range(n_buckets)
        ]
    )


def mean_log_likelihood(likelihoods: np.ndarray, buckets: np.ndarray, weights: np.ndarray) -> float:
    """The mean log-likelihood of held-out targets under bucket weights `weights`."""
    mixture = (weights[buckets] * likelihoods).sum(axis=1)
    return float(np.log(np.maximum(mixture, _TINY)).mean())


def members_worth_keeping(
    likelihoods: np.ndarray,
    buckets: np.ndarray,
    n_buckets: int,
    prior_strength: float,
    tolerance: float,
    costs: np.ndarray | None = None,
    budget: float | None = None,
) -> tuple[list[int], dict[int, float]]:
    """The members a blend needs, by backward elimination on held-out targets.

    While one can go, drop the member whose removal costs the least: the blend of the rest,
    its weights refitted, may lose at most `tolerance` nats of mean log-likelihood per target
    against the blend it started from (losses add up as members go). Every member is scored
    per request, so one that adds nothing the others do not say costs serving time for
    nothing.

    With `costs` (each member's scoring time per request) and a `budget` for their sum, the
    elimination starts from the likeliest blend of the members that fit the budget (every
    subset tried: a blend has a handful of members, and dropping the least useful member per
    millisecond one at a time can drop the cheap member that stands in for an expensive one),
    else from the cheapest member alone. Returns the positions kept and, for each dropped one,
    the loss against the blend of every member once it went.
    """

    def fitted(keep: Sequence[int]) -> float:
        kept = likelihoods[:, list(keep)]
        return mean_log_likelihood(
            kept, buckets, weights_by_bucket(kept, buckets, n_buckets, prior_strength)
        )

    members = list(range(likelihoods.shape[1]))
    everything = fitted(members)
    keep, dropped = members, {}
    if budget is not None:
        if costs is None or len(costs) != len(members):
            raise ValueError("a serving budget needs one cost per member")
        affordable = [
            subset
            for size in range(1, len(members) + 1)
            for subset in itertools.combinations(members, size)
            if float(np.sum(costs[list(subset)])) <= budget
        ]
        if affordable:
            scored = {subset: fitted(subset) for subset in affordable}
            keep = list(max(scored, key=lambda subset: (scored[subset], -len(subset))))
        else:
            keep = [int(np.argmin(costs))]
        lost = max(everything - fitted(keep), 0.0)
        dropped = {member: lost for member in members if member not in keep}
    start = fitted(keep)
    while len(keep) > 1:
        losses = {
            member: start - fitted([other for other in keep if other != member]) for member in keep
        }
        member = min(losses, key=losses.get)
        if losses[member] > tolerance:
            break
        keep = [other for other in keep if other != member]
        dropped[member] = max(everything - start + losses[member], 0.0)
    return keep, dropped
