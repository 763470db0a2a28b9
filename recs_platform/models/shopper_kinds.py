"""Shopper kinds: sessions grouped by how they move, one context-chains model per group, and each
session's next item drawn from the groups it looks like.

A shop's sessions need not follow one behaviour: some shoppers walk along a range, some fetch the
accessory of what they chose, some come back to what they saw. Counts pooled over every session
blur them: after item i, the pooled chain predicts what any shopper did next, not what this one
will. This model finds K kinds of session without labels, counts each apart, and mixes them per
session by the posterior over the kinds that the session's own steps give:

    P(next = j | x) = sum_k P(k | x) Q_k(j | x)
    Q_k(j | x)      = (v_k(x_t) P_k(j | x) + b P(j | x)) / (v_k(x_t) + b)
    P(k | x)        ~ share_k * P_k(x_1) * prod_{s < t} Q_k(x_{s+1} | x_1 .. x_s)

P_k: the context chains (`models/context_chains.py`) fitted on kind k's sessions; P: the chains
fitted on every session; v_k(i): the views of the last item i among kind k's sessions, b
(`backoff`): how many views a kind needs before its own counts outweigh the pooled ones (a kind
holds a fraction of the sessions, so its rows are thinner). P_k(x_1): the share of kind k's
views that went to the first item. Steps that return to a seen item or reach an item outside the
training sessions say nothing of the kind and are skipped.

Finding the kinds (`find_kinds`, on a sample of `sample_sessions` training sessions, every other
session then given its likeliest kind by `assign_kinds`; the sample must hold many sessions per
product, else each kind's chains are too thin to tell the kinds apart; benchmarks/README.md,
"Shopper kinds"):
expectation-maximisation over a mixture of second-order chains, one per kind (P_k(j | h, i)
backing off to P_k(j | i), backing off to the pooled chain), each session scored with its own
steps left out of its kind's counts (else each kind explains best the sessions it already holds
and nothing moves). It starts from k-means on how each session's steps are explained by the
pooled chains' components (the last item, the pair before, the items around, popularity, ...):
which components explain a session says how its shopper moves. Then `refine_kinds` moves the
sessions (at most `refine_sessions` of the sample) by hard EM with each kind's whole context
chains, as the model scores them, for `refine_rounds` rounds: each session goes to the kind
whose chains, fitted on the other half of the sessions, give its steps the highest likelihood.
The second-order chains start the kinds; the whole chains (the items two and three back, the
items around, the recent trend) tell them apart better where each kind's chains have the data
(0.811 to 0.830 x the oracle on the mixed shop, 0.83 to 0.85 at a Coveo-sized month's density),
and worse where they are thin (0.830 to 0.824 with 28 views per product): the refinement runs
only where its sessions hold `refine_min_views` views per product of the catalogue.

Where the shop has one kind of shopper, the kinds split it arbitrarily and each is a thinner copy
of the pooled model (the back-off keeps them close to it); the blend (`models/blend.py`) weighs
this model against the pooled chains on the validation day, so it costs nothing there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from time import perf_counter

import numpy as np

from recs_platform.models.base import (
    SessionRecommender,
    check_fitted,
    load_arrays,
    load_recommender,
    save_arrays,
)
from recs_platform.models.context_chains import ContextChainsRecommender

SETTINGS_FILE = "shopper_kinds.json"
POOLED_FOLDER = "pooled"
_FLOOR = 1e-12  # below any probability a model gives: keeps the logarithms finite
_CACHE_LIMIT = 50_000


def kmeans(
    features: np.ndarray, k: int, seed: int = 0, restarts: int = 4, iterations: int = 100
) -> np.ndarray:
    """Labels of the rows of `features` by k-means (k-means++ starts, the best of `restarts`)."""
    rng = np.random.default_rng(seed)
    best, best_inertia = None, np.inf
    for _ in range(restarts):
        centres = [features[rng.integers(len(features))]]
        for _ in range(1, k):
            distances = ((features[:, None, :] - np.array(centres)[None]) ** 2).sum(-1).min(1)
            total = distances.sum()
            pick = rng.choice(len(features), p=distances / total) if total > 0 else 0
            centres.append(features[pick])
        centres = np.array(centres)
        labels = np.zeros(len(features), dtype=np.int64)
        for _ in range(iterations):
            distances = ((features[:, None, :] - centres[None]) ** 2).sum(-1)
            labels = distances.argmin(1)
            moved = np.array(
                [
                    features[labels == cluster].mean(0) if (labels == cluster).any() else centre
                    for cluster, centre in enumerate(centres)
                ]
            )
            if np.allclose(moved, centres):
                break
            centres = moved
        inertia = ((features - centres[labels]) ** 2).sum()
        if inertia < best_inertia:
            best, best_inertia = labels, inertia
    return best


def session_profiles(pooled: ContextChainsRecommender, sessions: Sequence[Sequence[str]]):
    """[sessions, components]: the mean over each session's steps of log(the component's
    probability of the step / the pooled mixture's); 0 for a session without a step."""
    weights = pooled.weights.mean(axis=0)
    steps, values = pooled.step_component_probabilities(sessions)
    known = steps.target >= 0
    session_of, values = steps.session[known], values[known]
    ratios = np.log(values + _FLOOR) - np.log(values @ weights + _FLOOR)[:, None]
    counts = np.bincount(session_of, minlength=len(sessions))
    sums = np.stack(
        [np.bincount(session_of, column, len(sessions)) for column in ratios.T], axis=1
    ).reshape(len(sessions), len(weights))
    return sums / np.maximum(counts, 1)[:, None]


def _codes(sessions: Sequence[Sequence[str]], index: dict[str, int]) -> list[np.ndarray]:
    return [np.array([index[sku] for sku in session], dtype=np.int64) for session in sessions]


def _steps(codes: Sequence[np.ndarray], n: int) -> tuple[np.ndarray, ...]:
    """(item before the last or n, last item, next item, session) of every step to a new item."""
    steps = [
        (code[t - 2] if t >= 2 else n, code[t - 1], code[t], number)
        for number, code in enumerate(codes)
        for t in range(1, len(code))
        if code[t] not in code[:t]
    ]
    if not steps:
        return tuple(np.zeros(0, dtype=np.int64) for _ in range(4))
    return tuple(np.array(column, dtype=np.int64) for column in zip(*steps, strict=True))


def _step_keys(before, last, next_, n: int) -> dict[str, np.ndarray]:
    """Each step's keys in the second-order chains' count tables."""
    context = before * (n + 1) + last
    return {
        "last": last,
        "pair": last * n + next_,
        "context": context,
        "triple": context * n + next_,
    }


def _smoothed_steps(pair, last, triple, context, general) -> np.ndarray:
    """A kind's P(next | before, last) of each step from its counts of the step's keys:
    the pair's count backing off to the pooled chain `general`, the triple's to that."""
    first_order = (pair + 20 * general) / (last + 20)
    return (triple + 10 * first_order) / (context + 10)


def _smoothed(counts, total, prior) -> np.ndarray:
    """(counts + 5 prior) / (total + 5): a count share smoothed towards `prior`."""
    return (counts + 5 * prior) / (total + 5)


def find_kinds(
    sessions: Sequence[Sequence[str]],
    kinds: int,
    pooled: ContextChainsRecommender,
    iterations: int = 60,
    seed: int = 0,
    profiled: int = 5_000,
) -> np.ndarray:
    """Each session's kind (0 .. kinds - 1), found without labels; see the module docstring."""
    # The start: k-means on the profiles of at most `profiled` sessions (a Python loop over
    # their steps); the others start with no kind and get one from the first E-step.
    rng = np.random.default_rng(seed)
    chosen = np.arange(len(sessions))
    if len(sessions) > profiled:
        chosen = np.sort(rng.choice(len(sessions), profiled, replace=False))
    profiles = session_profiles(pooled, [sessions[number] for number in chosen])
    profiles = (profiles - profiles.mean(0)) / (profiles.std(0) + _FLOOR)
    responsibility = np.full((len(sessions), kinds), 1.0 / kinds)
    responsibility[chosen] = np.eye(kinds)[kmeans(profiles, kinds, seed)]

    n = len(pooled.item_ids)
    codes = _codes(sessions, pooled.item_index())
    before, last, next_, session_of = _steps(codes, n)
    if not len(session_of):
        return responsibility.argmax(axis=1)
    popular = np.bincount(np.concatenate(codes), minlength=n) + 1.0
    popular /= popular.sum()
    first = np.array([code[0] for code in codes])
    keys = _step_keys(before, last, next_, n)
    _, pair = np.unique(keys["pair"], return_inverse=True)
    _, context = np.unique(keys["context"], return_inverse=True)
    _, triple = np.unique(keys["triple"], return_inverse=True)
    pair_counts, last_counts = np.bincount(pair), np.bincount(last, minlength=n)
    general = _smoothed(pair_counts[pair] - 1, last_counts[last] - 1, popular[next_])
    for _ in range(iterations):
        likelihood = np.zeros((len(sessions), kinds))
        for kind in range(kinds):
            weight = responsibility[session_of, kind]

            def left_out(keys: np.ndarray, weight: np.ndarray = weight) -> np.ndarray:
                """The kind's count of each step's key without the step itself."""
                return np.maximum(np.bincount(keys, weight)[keys] - weight, 0.0)

            second_order = _smoothed_steps(
                left_out(pair), left_out(last), left_out(triple), left_out(context), general
            )
            likelihood[:, kind] = np.bincount(session_of, np.log(second_order), len(sessions))
            starts = np.bincount(first, responsibility[:, kind], n)
            likelihood[:, kind] += np.log(_smoothed(starts[first], starts.sum(), popular[first]))
        likelihood += np.log(responsibility.mean(axis=0) + _FLOOR)
        responsibility = np.exp(likelihood - likelihood.max(axis=1, keepdims=True))
        responsibility /= responsibility.sum(axis=1, keepdims=True)
    return responsibility.argmax(axis=1)


def refine_kinds(
    sessions: Sequence[Sequence[str]],
    labels: np.ndarray,
    kinds: int,
    pooled: ContextChainsRecommender,
    rounds: int,
    backoff: float,
    seed: int = 0,
    min_sessions: int = 50,
    deadline: float | None = None,
) -> tuple[np.ndarray, bool]:
    """`labels` moved by hard EM with each kind's whole context chains, `rounds` times at most:
    every session goes to the kind whose chains (fitted on the other half of the sessions, so
    that no session explains itself), backed off to the pooled chains as when scoring, give its
    steps the highest likelihood.

    A round's moves are judged by what they climb, the likelihood of each session under its
    likeliest kind, measured before the next round; as the chains are fitted on halves that
    change with the labels, a round can lose some, and the best labels seen are kept (the
    start included). Where the sessions per product are few, a kind's chains are thin and the
    sessions it still explains go where the counts are: labels that hold fewer kinds of
    `min_sessions` than the start are never kept. Stops early when fewer than 1 % of the
    sessions move.

    Returns the labels and whether `deadline` (a `time.perf_counter()` value) cut the rounds:
    none starts after it, and the best labels measured by then are kept (the start, when it
    comes before the first)."""
    if rounds < 1 or not len(sessions):
        return labels, False
    if deadline is not None and perf_counter() >= deadline:
        return labels, True
    likelihoods = _CrossFittedKinds(sessions, kinds, pooled, backoff, seed, min_sessions)

    def kinds_held(labels: np.ndarray) -> int:
        return int((np.bincount(labels, minlength=kinds) >= min_sessions).sum())

    best, best_fit, start_kinds = labels, -np.inf, kinds_held(labels)
    for round_ in range(rounds + 1):
        likelihood = likelihoods.of(labels)
        largest = likelihood.max(axis=1)
        if np.isfinite(largest).all() and kinds_held(labels) >= start_kinds:
            fit = largest.sum()
            if fit > best_fit:
                best, best_fit = labels, fit
        if round_ == rounds:
            break
        moved = np.where(np.isfinite(largest), likelihood.argmax(axis=1), labels)
        if np.mean(moved != labels) < 0.01:
            break
        if deadline is not None and perf_counter() >= deadline:
            return best, True
        labels = moved
    return best, False


class _CrossFittedKinds:
    """log share_k + log prod Q_k(steps) of every session and kind, Q_k the backed-off chains
    of kind k fitted on the other half of the sessions (-inf where that half holds fewer than
    `min_sessions` of the kind)."""

    def __init__(self, sessions, kinds, pooled, backoff, seed, min_sessions):
        self.sessions, self.kinds, self.pooled = sessions, kinds, pooled
        self.backoff, self.seed, self.min_sessions = backoff, seed, min_sessions
        self.steps, self.pooled_probabilities = pooled.step_probabilities(sessions)
        self.lengths = np.array([len(session) for session in sessions])
        self.codes = np.concatenate(_codes(sessions, pooled.item_index()))
        self.half = np.random.default_rng(seed).random(len(sessions)) < 0.5

    def of(self, labels: np.ndarray) -> np.ndarray:
        sessions, half, n = self.sessions, self.half, len(self.pooled.item_ids)
        likelihood = np.full((len(sessions), self.kinds), -np.inf)
        for fitted_half in (True, False):
            fitted = np.flatnonzero(half == fitted_half)
            scored = np.flatnonzero(half != fitted_half)
            at_step = np.flatnonzero(half[self.steps.session] != fitted_half)
            for kind in range(self.kinds):
                members = fitted[labels[fitted] == kind]
                if len(members) < self.min_sessions:
                    continue
                model = ContextChainsRecommender(name=f"kind-{kind}", seed=self.seed)
                model.fit([sessions[row] for row in members])
                _, own = model.step_probabilities([sessions[row] for row in scored])
                is_member = np.zeros(len(sessions), dtype=bool)
                is_member[members] = True
                member_codes = self.codes[np.repeat(is_member, self.lengths)]
                views = np.bincount(member_codes, minlength=n)[self.steps.previous[at_step]]
                pooled = self.pooled_probabilities[at_step]
                mixed = (views * own + self.backoff * pooled) / (views + self.backoff)
                steps_of = self.steps.session[at_step]
                likelihood[scored, kind] = (
                    np.log(len(members) / len(fitted))
                    + np.bincount(steps_of, np.log(mixed + _FLOOR), len(sessions))[scored]
                )
        return likelihood


def assign_kinds(
    sessions: Sequence[Sequence[str]],
    sample: Sequence[Sequence[str]],
    labels: np.ndarray,
    kinds: int,
    pooled: ContextChainsRecommender,
    chunk: int = 100_000,
) -> np.ndarray:
    """Each of `sessions`' likeliest kind under the second-order chains that `find_kinds`
    counts per kind, here from the `sample` whose kinds are `labels` (no step left out: the
    sessions scored are not counted), `chunk` sessions at a time."""
    n = len(pooled.item_ids)
    index = pooled.item_index()
    codes = _codes(sample, index)
    before, last, next_, session_of = _steps(codes, n)
    if not len(session_of):  # nothing to tell the kinds apart by
        return np.zeros(len(sessions), dtype=np.int64)
    keys = _step_keys(before, last, next_, n)
    one_hot = np.eye(kinds)[labels]
    tables = {}
    for name, values in keys.items():
        unique, inverse = np.unique(values, return_inverse=True)
        counts = np.stack(
            [np.bincount(inverse, one_hot[session_of, kind], len(unique)) for kind in range(kinds)],
            axis=1,
        )
        tables[name] = (unique, counts, np.bincount(inverse, minlength=len(unique)))
    popular = np.bincount(np.concatenate(codes), minlength=n) + 1.0
    popular /= popular.sum()
    first = np.array([code[0] for code in codes])
    starts = np.stack([np.bincount(first, one_hot[:, kind], n) for kind in range(kinds)], axis=1)
    log_share = np.log(one_hot.mean(axis=0) + _FLOOR)

    def counted(name: str, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[steps, kinds] counts of each step's key per kind, and over every kind."""
        unique, counts, total = tables[name]
        position = np.minimum(np.searchsorted(unique, values), len(unique) - 1)
        found = unique[position] == values
        return (
            np.where(found[:, None], counts[position], 0.0),
            np.where(found, total[position], 0.0),
        )

    assigned = np.empty(len(sessions), dtype=np.int64)
    for start in range(0, len(sessions), chunk):
        part = _codes(sessions[start : start + chunk], index)
        before, last, next_, session_of = _steps(part, n)
        keys = _step_keys(before, last, next_, n)
        pair, pair_total = counted("pair", keys["pair"])
        last_counts, last_total = counted("last", keys["last"])
        triple, _ = counted("triple", keys["triple"])
        context, _ = counted("context", keys["context"])
        general = _smoothed(pair_total, last_total, popular[next_])
        second_order = _smoothed_steps(pair, last_counts, triple, context, general[:, None])
        likelihood = np.stack(
            [
                np.bincount(session_of, np.log(second_order[:, kind]), len(part))
                for kind in range(kinds)
            ],
            axis=1,
        )
        firsts = np.array([code[0] for code in part])
        likelihood += np.log(_smoothed(starts[firsts], starts.sum(0), popular[firsts, None]))
        assigned[start : start + len(part)] = (likelihood + log_share).argmax(axis=1)
    return assigned


class ShopperKindsRecommender(SessionRecommender):
    """Context chains per kind of shopper, mixed per session; see the module docstring."""

    fits_within_deadline = True

    def __init__(
        self,
        name: str = "shopper_kinds",
        kinds: int = 5,
        sample_sessions: int = 1_000_000,
        backoff: float = 50.0,
        iterations: int = 60,
        min_sessions: int = 50,
        seed: int = 0,
        refine_rounds: int = 3,
        refine_sessions: int = 500_000,
        refine_min_views: float = 50.0,
    ):
        if kinds < 1:
            raise ValueError(f"kinds must be at least 1, got {kinds}")
        if backoff <= 0:
            raise ValueError(f"backoff must be positive, got {backoff}")
        if refine_rounds < 0 or refine_min_views < 0:
            raise ValueError("refine_rounds and refine_min_views must be at least 0")
        if sample_sessions < 1 or min_sessions < 1 or refine_sessions < 1:
            raise ValueError("sample_sessions, refine_sessions and min_sessions must be at least 1")
        self.name = name
        self.kinds = int(kinds)
        self.sample_sessions = int(sample_sessions)
        self.backoff = float(backoff)
        self.iterations = int(iterations)
        self.min_sessions = int(min_sessions)
        self.seed = seed
        self.refine_rounds = int(refine_rounds)
        self.refine_sessions = int(refine_sessions)
        self.refine_min_views = float(refine_min_views)
        self.item_ids: list[str] = []
        self.pooled: ContextChainsRecommender | None = None
        self.kind_models: list[ContextChainsRecommender] = []
        self._evidence: dict[tuple[str, ...], np.ndarray] = {}

    # --- fit -----------------------------------------------------------------------------------

    def fit(
        self, sessions: Sequence[Sequence[str]], deadline: float | None = None
    ) -> ShopperKindsRecommender:
        """The pooled chains on every session; the kinds found on a sample, every session
        given its likeliest kind, and each kind's chains on its sessions (in session order, so
        the chains' held-out newest sessions stay the newest).

        `deadline` (a `time.perf_counter()` value, a retrain's time budget): no round of the
        refinement starts after it (`stopped_at_deadline` says whether it cut one); the rest
        of the fit, counting, runs whole."""
        self.stopped_at_deadline = False
        sessions = [list(session) for session in sessions]
        self.pooled = ContextChainsRecommender(name="pooled", seed=self.seed).fit(sessions)
        rng = np.random.default_rng(self.seed)
        if len(sessions) > self.sample_sessions:
            chosen = np.sort(rng.choice(len(sessions), self.sample_sessions, replace=False))
            sample = [sessions[number] for number in chosen]
        else:
            sample = sessions
        labels = find_kinds(sample, self.kinds, self.pooled, self.iterations, self.seed)
        refined = sample
        if len(sample) > self.refine_sessions:
            chosen = np.sort(rng.choice(len(sample), self.refine_sessions, replace=False))
            refined = [sample[number] for number in chosen]
        views_per_item = sum(map(len, refined)) / len(self.pooled.item_ids)
        # Whether the kinds were refined (not saved): what the benchmarks report.
        self.refined = self.refine_rounds > 0 and views_per_item >= self.refine_min_views
        if self.refined and deadline is not None and perf_counter() >= deadline:
            self.refined, self.stopped_at_deadline = False, True
        if self.refined:
            if refined is not sample:
                sample, labels = refined, labels[chosen]
            labels, self.stopped_at_deadline = refine_kinds(
                sample,
                labels,
                self.kinds,
                self.pooled,
                self.refine_rounds,
                self.backoff,
                self.seed,
                self.min_sessions,
                deadline,
            )
        if len(sample) < len(sessions):
            labels = assign_kinds(sessions, sample, labels, self.kinds, self.pooled)
        found = [kind for kind in range(self.kinds) if np.sum(labels == kind) >= self.min_sessions]
        if not found:  # too few sessions to split: one kind, every session
            found, labels = [0], np.zeros(len(sessions), dtype=np.int64)
        # Each training session's kind (not saved): what the benchmarks compare with the truth.
        self.training_kinds = labels
        self.kind_models = [
            ContextChainsRecommender(name=f"kind-{slot}", seed=self.seed).fit(
                [session for session, label in zip(sessions, labels, strict=True) if label == kind]
            )
            for slot, kind in enumerate(found)
        ]
        self.shares = np.array([np.mean(labels == kind) for kind in found])
        self.shares /= self.shares.sum()
        self.item_ids = list(self.pooled.item_ids)
        index = self.item_index()
        n_items = len(self.item_ids)
        lengths = np.array([len(session) for session in sessions])
        codes = np.fromiter(
            (index[sku] for session in sessions for sku in session), np.int64, int(lengths.sum())
        )
        slot_of_kind = np.full(self.kinds, -1)
        slot_of_kind[found] = np.arange(len(found))
        slots = np.repeat(slot_of_kind[labels], lengths)
        kept = slots >= 0
        self.views = (
            np.bincount(slots[kept] * n_items + codes[kept], minlength=len(found) * n_items)
            .reshape(len(found), n_items)
            .astype(np.float64)
        )
        self._index_kinds()
        return self

    def _index_kinds(self) -> None:
        """Each kind's columns in the pooled catalogue, and its first-item log-probabilities."""
        index = self.item_index()
        self._columns = [
            np.array([index[sku] for sku in model.item_ids], dtype=np.int64)
            for model in self.kind_models
        ]
        n_items = len(self.item_ids)
        self._log_first = np.log((self.views + 1.0) / (self.views.sum(1, keepdims=True) + n_items))
        self._evidence = {}

    # --- score ---------------------------------------------------------------------------------

    def _last_views(self, prefixes: Sequence[Sequence[str]]) -> np.ndarray:
        """[kinds, prefixes]: v_k of each prefix's last item (0 if unknown or no item)."""
        index = self.item_index()
        last = np.array([index.get(prefix[-1], -1) if prefix else -1 for prefix in prefixes])
        return np.where(last >= 0, self.views[:, np.maximum(last, 0)], 0.0)

    def log_evidence(
        self, prefix: Sequence[str], last_step: np.ndarray | None = None
    ) -> np.ndarray:
        """log share_k P_k(x_1) prod Q_k(steps) for each kind (unnormalised log posterior).

        Built step by step from the longest start of the prefix already computed: scoring a
        session's prefixes in turn (the evaluation, a shopper's successive requests) adds one
        step each. `last_step`: Q_k(x_t | x_1 .. x_t-1) of each kind, where the caller has it."""
        key = tuple(prefix)
        known = len(key)
        while known > 0 and key[:known] not in self._evidence:
            known -= 1
        evidence = self._evidence[key[:known]] if known else np.log(self.shares)
        index = self.item_index()
        for position in range(known, len(key)):
            earlier, step = key[:position], key[position]
            if not earlier:
                if step in index:
                    evidence = evidence + self._log_first[:, index[step]]
            elif step in index and step not in earlier:
                if last_step is None or position < len(key) - 1:
                    backed_off = self._step_probabilities(earlier, step)
                else:
                    backed_off = last_step
                evidence = evidence + np.log(backed_off + _FLOOR)
            if len(self._evidence) >= _CACHE_LIMIT:
                self._evidence.clear()
            self._evidence[key[: position + 1]] = evidence
        return evidence

    def _step_probabilities(self, earlier: Sequence[str], step: str) -> np.ndarray:
        """Q_k(step | earlier) of each kind."""
        pooled = self.pooled.next_probabilities(earlier, [step])[0]
        kinds = np.array(
            [model.next_probabilities(earlier, [step])[0] for model in self.kind_models]
        )
        views = self._last_views([earlier])[:, 0]
        return (views * kinds + self.backoff * pooled) / (views + self.backoff)

    def kind_posterior(
        self, prefix: Sequence[str], last_step: np.ndarray | None = None
    ) -> np.ndarray:
        """P(kind | prefix)."""
        check_fitted(self)
        evidence = self.log_evidence(prefix, last_step)
        weights = np.exp(evidence - evidence.max())
        return weights / weights.sum()

    def score(self, prefixes: Sequence[Sequence[str]]) -> np.ndarray:
        """P(next = j | prefix, j unseen): the kinds' backed-off distributions mixed by the
        posterior (a prefix without a known item: the pooled chains' popularity).

        Kind k's distribution is Q_k = w_k R_k + (1 - w_k) P, with R_k its own chains' scores,
        P the pooled chains' and w_k = v_k / (v_k + backoff) for the views v_k of the last
        item, so the mixture is sum_k post_k w_k R_k + (sum_k post_k (1 - w_k)) P: each kind's
        scores are added once, weighted, on its own columns (`add_weighted_scores`), never
        spread over the catalogue first.
        Where a prefix follows the row before it (the same session one step on, as the
        evaluation asks), that row's Q_k holds the step the posterior needs."""
        check_fitted(self)
        prefixes = [tuple(prefix) for prefix in prefixes]
        index = self.item_index()
        pooled = self.pooled.score(prefixes)
        follows = [
            row > 0 and len(prefix) > 1 and prefix[:-1] == prefixes[row - 1]
            for row, prefix in enumerate(prefixes)
        ]
        steps_to = np.array(
            [
                index.get(prefix[-1], -1) if after else -1
                for prefix, after in zip(prefixes, follows, strict=True)
            ]
        )
        stepped = np.flatnonzero(steps_to >= 0)
        before, step_columns = stepped - 1, steps_to[stepped]
        views = self._last_views(prefixes)
        own_weight = views / (views + self.backoff)  # [kinds, prefixes]: w_k
        steps = (1 - own_weight[:, before]) * pooled[before, step_columns]
        step_skus = [self.item_ids[column] for column in step_columns]
        for slot, model in enumerate(self.kind_models):
            own = [
                model.next_probabilities(prefixes[row], [sku])[0]
                for row, sku in zip(before, step_skus, strict=True)
            ]
            steps[slot] += own_weight[slot, before] * np.array(own)
        step_of_row = np.full(len(prefixes), -1)
        step_of_row[stepped] = np.arange(len(stepped))
        posteriors = np.array(
            [
                self.kind_posterior(prefix, steps[:, step] if step >= 0 else None)
                for prefix, step in zip(prefixes, step_of_row, strict=True)
            ]
        )  # [prefixes, kinds]
        mixed = pooled * (posteriors * (1 - own_weight.T)).sum(axis=1, keepdims=True)
        for slot, (model, columns) in enumerate(zip(self.kind_models, self._columns, strict=True)):
            model.add_weighted_scores(
                prefixes, posteriors[:, slot] * own_weight[slot], mixed, columns
            )
        return mixed

    # --- persistence ---------------------------------------------------------------------------

    def _save_state(self, folder: Path) -> None:
        self.pooled.save(folder / POOLED_FOLDER)
        for slot, model in enumerate(self.kind_models):
            model.save(folder / f"kind-{slot:02d}")
        save_arrays(folder, self.item_ids, shares=self.shares, views=self.views)
        settings = {
            "kinds": self.kinds,
            "sample_sessions": self.sample_sessions,
            "backoff": self.backoff,
            "iterations": self.iterations,
            "min_sessions": self.min_sessions,
            "seed": self.seed,
            "refine_rounds": self.refine_rounds,
            "refine_sessions": self.refine_sessions,
            "refine_min_views": self.refine_min_views,
            "kinds_found": len(self.kind_models),
        }
        (Path(folder) / SETTINGS_FILE).write_text(json.dumps(settings, indent=2))

    @classmethod
    def _load_state(cls, folder: Path) -> ShopperKindsRecommender:
        settings = json.loads((Path(folder) / SETTINGS_FILE).read_text())
        found = settings.pop("kinds_found")
        model = cls(**settings)
        model.item_ids, arrays = load_arrays(folder)
        model.shares, model.views = arrays["shares"], arrays["views"]
        model.pooled = load_recommender(Path(folder) / POOLED_FOLDER)
        model.kind_models = [
            load_recommender(Path(folder) / f"kind-{slot:02d}") for slot in range(found)
        ]
        model._index_kinds()
        return model
