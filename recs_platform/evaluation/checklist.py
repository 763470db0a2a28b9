"""A behavioural checklist in the spirit of RecList: metrics by slice, and invariants.

Slices (HR@k, MRR@k and the number of targets in each; the ranks are those of the protocol):

- `prefix_length`: the number of items viewed before the target: `1`, `2-4`, `5+`.
- `target_popularity`: the target's training popularity. Candidates are ordered by training
  views, most viewed first; an item's *share above* is the share of all training views that
  went to candidates viewed strictly more often. `head`: share above < 50% (the most viewed
  items that together make up the first half of the views, the one crossing 50% included);
  `torso`: 50% to < 80%; `tail`: the rest (items never viewed in training included). Items with
  equal counts have equal shares above, so a tie never straddles two segments.
- `target_age` (when `new_item_days` > 0): `new` targets are items first viewed in training on
  one of its last `new_item_days` distinct days; `established` ones were first viewed earlier.

Invariants (each a named pass/fail with the first counterexample as detail; meant to block):

- `exclude_seen`: `rank(prefix, k, exclude_seen=True)` returns no item of the prefix.
- `deterministic`: the same prefixes scored and ranked twice give identical scores and lists.
- `popularity_fallback`: for an empty prefix and for prefixes made only of SKUs that are not in
  the catalogue, `rank` returns exactly the top-k list of a `PopularityRecommender` fitted on
  the same training sessions (same items, same order: ties to the lower item index).
- `sorted_scores`: the items `rank` returns are catalogue items whose `score` never increases
  along the list.

They run on a sample of the test prefixes (at most `sample_size`, drawn with `seed`), plus the
empty prefix, all-unknown prefixes and the recommender's own top items as a prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from recs_platform.evaluation.metrics import hit_rate_at, mrr_at
from recs_platform.evaluation.protocol import NextItemTargets, rank_targets, training_counts
from recs_platform.models.base import SessionRecommender
from recs_platform.models.popularity import PopularityRecommender

PREFIX_LENGTHS = (("1", 1, 1), ("2-4", 2, 4), ("5+", 5, None))  # label, shortest, longest
POPULARITY_SEGMENTS = (("head", 0.5), ("torso", 0.8), ("tail", float("inf")))  # share above <
INVARIANTS = ("exclude_seen", "deterministic", "popularity_fallback", "sorted_scores")
UNKNOWN_SKU = "__checklist_unknown_{}__"


@dataclass(frozen=True)
class SliceResult:
    group: str  # prefix_length, target_popularity, target_age or all
    label: str
    targets: int
    hit_rate: float | None  # None when the slice has no targets
    mrr: float | None

    @property
    def key(self) -> str:
        """`group/label` with characters metric loggers refuse replaced: `prefix_length/5_plus`."""
        return f"{self.group}/{self.label}".replace("+", "_plus")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class InvariantResult:
    name: str
    passed: bool
    detail: str  # the first counterexample, or what was checked
    checked: int  # how many prefixes were checked

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Checklist:
    recommender: str
    k: int
    targets: int
    slices: list[SliceResult]
    invariants: list[InvariantResult]
    settings: dict[str, Any]  # new_item_days, sample_size, seed

    @property
    def passed(self) -> bool:
        """Whether every invariant holds."""
        return all(result.passed for result in self.invariants)

    def failures(self) -> list[InvariantResult]:
        return [result for result in self.invariants if not result.passed]

    def invariant(self, name: str) -> InvariantResult:
        for result in self.invariants:
            if result.name == name:
                return result
        raise KeyError(f"no invariant named {name!r}")

    def slice(self, group: str, label: str) -> SliceResult:
        for result in self.slices:
            if (result.group, result.label) == (group, label):
                return result
        raise KeyError(f"no slice {group}/{label}")

    def metrics(self) -> dict[str, float]:
        """Flat numeric metrics with names MLflow accepts: per slice `<group>/<label>/targets`,
        `.../hr_<k>` and `.../mrr_<k>` (the last two left out for an empty slice); per invariant
        `invariant/<name>`, 1.0 passed, 0.0 failed."""
        metrics: dict[str, float] = {}
        for result in self.slices:
            metrics[f"{result.key}/targets"] = float(result.targets)
            if result.hit_rate is not None:
                metrics[f"{result.key}/hr_{self.k}"] = result.hit_rate
                metrics[f"{result.key}/mrr_{self.k}"] = result.mrr
        for result in self.invariants:
            metrics[f"invariant/{result.name}"] = float(result.passed)
        return metrics

    def as_dict(self) -> dict[str, Any]:
        """Everything in JSON-serialisable types (None for an empty slice's HR and MRR)."""
        return {
            "recommender": self.recommender,
            "k": self.k,
            "targets": self.targets,
            "passed": self.passed,
            "settings": dict(self.settings),
            "slices": [result.as_dict() for result in self.slices],
            "invariants": [result.as_dict() for result in self.invariants],
        }

    def format_table(self) -> str:
        k = self.k
        lines = [
            f"checklist of {self.recommender} on {self.targets:,} targets: "
            + ("all invariants hold" if self.passed else f"{len(self.failures())} FAILED"),
            f"{'slice':<28}  {'targets':>8}  {'HR@' + str(k):>8}  {'MRR@' + str(k):>8}",
        ]
        for result in self.slices:
            metrics = (
                f"  {result.hit_rate:>8.4f}  {result.mrr:>8.4f}"
                if result.hit_rate is not None
                else f"  {'-':>8}  {'-':>8}"
            )
            lines.append(f"{result.group + '/' + result.label:<28}  {result.targets:>8,}{metrics}")
        for result in self.invariants:
            lines.append(f"{'ok  ' if result.passed else 'FAIL'} {result.name}: {result.detail}")
        return "\n".join(lines)


def prefix_length_label(length: int) -> str:
    for label, shortest, longest in PREFIX_LENGTHS:
        if length >= shortest and (longest is None or length <= longest):
            return label
    raise ValueError(f"no prefix-length slice for length {length}")


def popularity_segments(counts: np.ndarray) -> list[str]:
    """head, torso or tail for each item, from its training count (see the module docstring)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    ascending = np.sort(counts)
    below_and_at = np.concatenate([[0.0], np.cumsum(ascending)])
    # Views of items counted strictly more often = total - views of those counted at most as often.
    above = total - below_and_at[np.searchsorted(ascending, counts, side="right")]
    share_above = above / total if total > 0 else np.ones_like(counts)
    segments = []
    for share in share_above:
        segments.append(next(label for label, bound in POPULARITY_SEGMENTS if share < bound))
    return segments


def new_items(train_sessions: Sequence[tuple[Hashable, Sequence[str]]], days: int) -> set[str]:
    """SKUs first viewed in training on one of its last `days` distinct days."""
    if days < 1:
        return set()
    first_day: dict[str, Hashable] = {}
    for day, skus in train_sessions:
        for sku in skus:
            if sku not in first_day or day < first_day[sku]:
                first_day[sku] = day
    recent = set(sorted({day for day, _ in train_sessions})[-days:])
    return {sku for sku, day in first_day.items() if day in recent}


def _slice(group: str, label: str, ranks: np.ndarray, k: int) -> SliceResult:
    if ranks.size == 0:
        return SliceResult(group, label, 0, None, None)
    return SliceResult(group, label, int(ranks.size), hit_rate_at(ranks, k), mrr_at(ranks, k))


def slice_metrics(
    ranks: np.ndarray,
    targets: NextItemTargets,
    train_sessions: Sequence[tuple[Hashable, Sequence[str]]],
    k: int = 20,
    new_item_days: int = 1,
) -> list[SliceResult]:
    """HR@k and MRR@k overall and per slice, from each target's rank (in the targets' order)."""
    ranks = np.asarray(ranks)
    if len(ranks) != len(targets):
        raise ValueError(f"{len(ranks)} ranks for {len(targets)} targets")
    results = [_slice("all", "all", ranks, k)]
    lengths = [prefix_length_label(len(prefix)) for prefix in targets.prefixes]
    for label, _, _ in PREFIX_LENGTHS:
        results.append(
            _slice("prefix_length", label, ranks[[length == label for length in lengths]], k)
        )
    counts = training_counts([skus for _, skus in train_sessions], targets.candidate_items)
    segment_of = dict(zip(targets.candidate_items, popularity_segments(counts), strict=True))
    segments = [segment_of[target] for target in targets.targets]
    for label, _ in POPULARITY_SEGMENTS:
        results.append(_slice("target_popularity", label, ranks[[s == label for s in segments]], k))
    if new_item_days > 0:
        new = new_items(train_sessions, new_item_days)
        seen = {sku for _, skus in train_sessions for sku in skus}
        is_new = np.array([target in new for target in targets.targets], dtype=bool)
        established = np.array([t in seen and t not in new for t in targets.targets], dtype=bool)
        results.append(_slice("target_age", "new", ranks[is_new], k))
        results.append(_slice("target_age", "established", ranks[established], k))
    return results


def _guarded(name: str, check: Callable[[], InvariantResult]) -> InvariantResult:
    """A recommender that raises fails the invariant, with the error as the detail."""
    try:
        return check()
    except Exception as error:  # noqa: BLE001 - any error of the model is a failed check
        return InvariantResult(name, False, f"raised {type(error).__name__}: {error}", 0)


def _unknown_skus(recommender: SessionRecommender, count: int) -> tuple[str, ...]:
    index = recommender.item_index()
    skus = (UNKNOWN_SKU.format(number) for number in range(10 * count + 10))
    return tuple([sku for sku in skus if sku not in index][:count])


def check_exclude_seen(
    recommender: SessionRecommender, prefixes: Sequence[Sequence[str]], k: int
) -> InvariantResult:
    """No item of the prefix among `rank(prefix, k, exclude_seen=True)`."""
    name = "exclude_seen"

    def check() -> InvariantResult:
        rankings = recommender.rank(prefixes, k, exclude_seen=True)
        for prefix, ranking in zip(prefixes, rankings, strict=True):
            for position, sku in enumerate(ranking, start=1):
                if sku in prefix:
                    return InvariantResult(
                        name,
                        False,
                        f"prefix {tuple(prefix)}: its item {sku!r} is ranked at position "
                        f"{position} of {ranking}",
                        len(prefixes),
                    )
        return InvariantResult(name, True, f"{len(prefixes)} prefixes", len(prefixes))

    return _guarded(name, check)


def check_deterministic(
    recommender: SessionRecommender, prefixes: Sequence[Sequence[str]], k: int
) -> InvariantResult:
    """The same prefixes scored and ranked twice: identical scores, identical lists."""
    name = "deterministic"

    def check() -> InvariantResult:
        first, second = (np.asarray(recommender.score(prefixes)) for _ in range(2))
        if first.shape != second.shape:
            return InvariantResult(
                name, False, f"score shapes differ: {first.shape} then {second.shape}", 0
            )
        differs = ~((first == second) | (np.isnan(first) & np.isnan(second)))
        if differs.any():
            row, column = (int(i) for i in np.argwhere(differs)[0])
            item = recommender.item_ids[column] if column < len(recommender.item_ids) else column
            return InvariantResult(
                name,
                False,
                f"prefix {tuple(prefixes[row])}: item {item!r} scored "
                f"{float(first[row, column])!r} then {float(second[row, column])!r}",
                len(prefixes),
            )
        rankings = [recommender.rank(prefixes, k) for _ in range(2)]
        for prefix, once, again in zip(prefixes, *rankings, strict=True):
            if once != again:
                return InvariantResult(
                    name,
                    False,
                    f"prefix {tuple(prefix)}: ranked {once} then {again}",
                    len(prefixes),
                )
        return InvariantResult(
            name, True, f"{len(prefixes)} prefixes scored and ranked twice", len(prefixes)
        )

    return _guarded(name, check)


def check_popularity_fallback(
    recommender: SessionRecommender, popularity: PopularityRecommender, k: int
) -> InvariantResult:
    """Empty and all-unknown prefixes: exactly the popularity recommender's top-k list."""
    name = "popularity_fallback"

    def check() -> InvariantResult:
        unknown = _unknown_skus(recommender, 2)
        prefixes = [(), unknown[:1], unknown]
        expected = popularity.rank(prefixes, k)
        got = recommender.rank(prefixes, k)
        for prefix, ranking, wanted in zip(prefixes, got, expected, strict=True):
            if ranking != wanted:
                kind = "empty prefix" if not prefix else f"all-unknown prefix {prefix}"
                position = next(
                    (p for p, (a, b) in enumerate(zip(ranking, wanted, strict=False), 1) if a != b),
                    min(len(ranking), len(wanted)) + 1,
                )
                return InvariantResult(
                    name,
                    False,
                    f"{kind}: ranked {ranking}, popularity ranks {wanted} "
                    f"(first difference at position {position})",
                    len(prefixes),
                )
        return InvariantResult(
            name,
            True,
            f"the empty prefix and {len(prefixes) - 1} all-unknown prefixes rank like popularity",
            len(prefixes),
        )

    return _guarded(name, check)


def check_sorted_scores(
    recommender: SessionRecommender, prefixes: Sequence[Sequence[str]], k: int
) -> InvariantResult:
    """The items `rank` returns are catalogue items with non-increasing scores."""
    name = "sorted_scores"

    def check() -> InvariantResult:
        scores = np.asarray(recommender.score(prefixes), dtype=np.float64)
        rankings = recommender.rank(prefixes, k)
        index = recommender.item_index()
        for row, (prefix, ranking) in enumerate(zip(prefixes, rankings, strict=True)):
            unknown = [sku for sku in ranking if sku not in index]
            if unknown:
                return InvariantResult(
                    name,
                    False,
                    f"prefix {tuple(prefix)}: ranked {unknown[0]!r}, which is not in the catalogue",
                    len(prefixes),
                )
            ranked_scores = scores[row, [index[sku] for sku in ranking]]
            rises = np.flatnonzero(ranked_scores[1:] > ranked_scores[:-1])
            if rises.size:
                at = int(rises[0])
                return InvariantResult(
                    name,
                    False,
                    f"prefix {tuple(prefix)}: {ranking[at]!r} (score "
                    f"{float(ranked_scores[at])!r}) is ranked before {ranking[at + 1]!r} "
                    f"(score {float(ranked_scores[at + 1])!r})",
                    len(prefixes),
                )
        return InvariantResult(name, True, f"{len(prefixes)} prefixes", len(prefixes))

    return _guarded(name, check)


def sample_prefixes(targets: NextItemTargets, size: int, seed: int = 0) -> list[tuple[str, ...]]:
    """At most `size` test prefixes, drawn without replacement with `seed`, in target order."""
    if size >= len(targets):
        return list(targets.prefixes)
    rows = np.sort(np.random.default_rng(seed).choice(len(targets), size=size, replace=False))
    return [targets.prefixes[row] for row in rows]


def _guarded_top(recommender: SessionRecommender, k: int) -> tuple[str, ...]:
    """The recommender's own top items for an empty prefix, seen items allowed: as a prefix,
    they are what a model that forgets to exclude seen items would most likely return."""
    try:
        return tuple(recommender.rank([()], min(k, 5), exclude_seen=False)[0])
    except Exception:  # noqa: BLE001 - the invariants report the error
        return ()


def run_checklist(
    recommender: SessionRecommender,
    train_sessions: Sequence[tuple[Hashable, Sequence[str]]],
    targets: NextItemTargets,
    k: int = 20,
    *,
    new_item_days: int = 1,
    sample_size: int = 200,
    seed: int = 0,
    ranks: np.ndarray | None = None,
    batch_size: int = 256,
) -> Checklist:
    """Slices and invariants of a fitted recommender (see the module docstring).

    `train_sessions`: the training sessions as (day, SKUs), as `TimeSplit.dated_train` gives
    them: they define target popularity, new items and the popularity reference. `ranks`: the
    targets' ranks if already computed (`evaluate_recommender(...)[1].ranks`); otherwise they
    are computed here. The invariants use `sample_size` test prefixes drawn with `seed`.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not len(targets):
        raise ValueError("no targets to check on")
    if ranks is None:
        ranks = rank_targets(recommender, targets, k, batch_size=batch_size).ranks
    slices = slice_metrics(ranks, targets, train_sessions, k, new_item_days)

    popularity = PopularityRecommender().fit([skus for _, skus in train_sessions])
    sample = sample_prefixes(targets, sample_size, seed)
    own_top = _guarded_top(recommender, k)
    probes = [*sample, (), _unknown_skus(recommender, 1)] + ([own_top] if own_top else [])
    invariants = [
        check_exclude_seen(recommender, probes, k),
        check_deterministic(recommender, probes, k),
        check_popularity_fallback(recommender, popularity, k),
        check_sorted_scores(recommender, probes, k),
    ]
    return Checklist(
        recommender=recommender.name,
        k=k,
        targets=len(targets),
        slices=slices,
        invariants=invariants,
        settings={"new_item_days": new_item_days, "sample_size": sample_size, "seed": seed},
    )
