"""The session-rec protocol: time split, next item at every position, full catalogue ranking.

Every recommender is scored on exactly the same targets against the same candidates (the items
seen in training); targets never seen in training cannot be recommended by anyone trained on
that data and are skipped, and counted. Reported per recommender: HR and MRR at several k, item
coverage@k and popularity bias@k (see `metrics`), all from one scoring pass; on simulated data
the oracle is scored on the same targets as the ceiling.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recs_platform.evaluation.metrics import (
    hit_rate_at,
    item_coverage_at,
    mrr_at,
    popularity_bias_at,
    popularity_percentiles,
    target_ranks,
    top_k,
)
from recs_platform.models.base import SessionRecommender, over_unseen
from recs_platform.models.markov import MarkovRecommender
from recs_platform.models.popularity import PopularityRecommender
from recs_platform.simulation.config import ShopConfig
from recs_platform.simulation.generator import simulate_sessions
from recs_platform.simulation.oracle import Oracle

# A recommender, or one per day for those that depend on it (the oracle).
RecommenderOrFactory = SessionRecommender | Callable[[Any], SessionRecommender]


@dataclass(frozen=True)
class TimeSplit:
    train: list[list[str]]
    test: list[tuple[Hashable, list[str]]]  # (day, SKUs)
    train_days: list[Hashable]
    test_days: list[Hashable]
    train_session_days: list[Hashable] = field(default_factory=list)  # aligned with train

    @property
    def dated_train(self) -> list[tuple[Hashable, list[str]]]:
        """The training sessions as (day, SKUs), as the checklist's new-item slice needs them."""
        return list(zip(self.train_session_days, self.train, strict=True))


def split_by_time(sessions: Sequence[tuple[Hashable, Sequence[str]]], test_days: int) -> TimeSplit:
    """The last `test_days` distinct days are the test set, everything before is training."""
    days = sorted({day for day, _ in sessions})
    if not 0 < test_days < len(days):
        raise ValueError(
            f"test_days must leave at least one day for training and one for testing: "
            f"got {test_days} of {len(days)} days"
        )
    first_test_day = days[-test_days]
    train = [(day, list(items)) for day, items in sessions if day < first_test_day]
    test = [(day, list(items)) for day, items in sessions if day >= first_test_day]
    return TimeSplit(
        [items for _, items in train],
        test,
        days[:-test_days],
        days[-test_days:],
        [day for day, _ in train],
    )


@dataclass(frozen=True)
class NextItemTargets:
    """Prefix -> next item pairs from the test sessions, and the candidate catalogue."""

    prefixes: list[tuple[str, ...]]
    targets: list[str]
    days: list[Hashable]
    candidate_items: list[str]
    sessions: int
    skipped_unknown: int  # targets not among the candidates (never seen in training)
    # Targets already in their prefix (a return to a product): under exclude-seen no
    # recommender may show them, so they are not targets.
    skipped_seen: int = 0
    # The position in `test_sessions` of the session each target comes from (the bootstrap's
    # resampling unit).
    session_of_target: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.targets)


def next_item_targets(
    test_sessions: Sequence[tuple[Hashable, Sequence[str]]], candidate_items: Sequence[str]
) -> NextItemTargets:
    """For each session, prefix = first t items, target = item t + 1, for every t >= 1.

    A target never seen in training, or already in its prefix (a return visit, which no
    recommender may show under exclude-seen), is skipped and counted.
    """
    candidates = set(candidate_items)
    prefixes, targets, days, session_of_target = [], [], [], []
    skipped_unknown = skipped_seen = 0
    for session, (day, items) in enumerate(test_sessions):
        for position in range(1, len(items)):
            if items[position] not in candidates:
                skipped_unknown += 1
                continue
            if items[position] in items[:position]:
                skipped_seen += 1
                continue
            prefixes.append(tuple(items[:position]))
            targets.append(items[position])
            days.append(day)
            session_of_target.append(session)
    return NextItemTargets(
        prefixes,
        targets,
        days,
        sorted(candidates),
        len(test_sessions),
        skipped_unknown,
        skipped_seen,
        session_of_target,
    )


def training_counts(
    train_sessions: Sequence[Sequence[str]], candidate_items: Sequence[str]
) -> np.ndarray:
    """How often each candidate occurs in the training sessions (0 if never), by candidate."""
    occurrences = Counter(sku for session in train_sessions for sku in session)
    return np.array([occurrences[sku] for sku in candidate_items], dtype=np.float64)


def _masked_scores(
    recommender: SessionRecommender,
    targets: NextItemTargets,
    rows: Sequence[int],
    batch_size: int,
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """(offset into rows, scores [batch, n_candidates], target columns, the recommender's own
    scores [batch, its items]) per batch of rows.

    Scores are the recommender's, mapped onto the candidates; candidates it does not know and
    those seen in the prefix score -inf. Each batch is scored once.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    candidate_index = {sku: position for position, sku in enumerate(targets.candidate_items)}
    model_index = recommender.item_index()
    model_columns = np.array([model_index.get(sku, -1) for sku in targets.candidate_items])
    known = model_columns >= 0
    for start in range(0, len(rows), batch_size):
        batch = list(rows[start : start + batch_size])
        prefixes = [targets.prefixes[row] for row in batch]
        model_scores = np.asarray(recommender.score(prefixes), dtype=np.float64)
        expected = (len(prefixes), len(recommender.item_ids))
        if model_scores.shape != expected:
            raise ValueError(
                f"{recommender.name}: score() returned shape {model_scores.shape}, "
                f"expected {expected}"
            )
        if np.isnan(model_scores).any():
            raise ValueError(f"{recommender.name}: score() returned NaN")
        scores = np.where(known, model_scores[:, np.maximum(model_columns, 0)], -np.inf)
        for offset, prefix in enumerate(prefixes):
            seen = [candidate_index[sku] for sku in prefix if sku in candidate_index]
            scores[offset, seen] = -np.inf
        target_columns = np.array(
            [candidate_index[targets.targets[row]] for row in batch], dtype=np.int64
        )
        yield start, scores, target_columns, model_scores


def ranks_of_targets(
    recommender: SessionRecommender,
    targets: NextItemTargets,
    rows: Sequence[int] | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """Rank of each target among the candidates, seen items excluded (scored -inf).

    Candidates the recommender does not know score -inf too.
    """
    rows = range(len(targets)) if rows is None else rows
    ranks = np.empty(len(rows), dtype=np.int64)
    for start, scores, target_columns, _ in _masked_scores(recommender, targets, rows, batch_size):
        ranks[start : start + len(target_columns)] = target_ranks(scores, target_columns)
    return ranks


_LIKELIHOOD_ROWS = 32


def ranks_and_likelihoods(
    recommender: SessionRecommender,
    targets: NextItemTargets,
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """`ranks_of_targets` of every target, and each target's P(target | prefix, target unseen)
    by the recommender's `probabilities` (what a blend weighs its members by; 0 for a target
    it does not know), from the same scores."""
    ranks = np.empty(len(targets), dtype=np.int64)
    likelihoods = np.zeros(len(targets))
    index = recommender.item_index()
    for start, scores, target_columns, model_scores in _masked_scores(
        recommender, targets, range(len(targets)), batch_size
    ):
        ranks[start : start + len(target_columns)] = target_ranks(scores, target_columns)
        # A few rows at a time: the probabilities' copies of a batch's rows at a catalogue of
        # 50,000 items would be hundreds of MB.
        for first in range(0, len(target_columns), _LIKELIHOOD_ROWS):
            last = min(first + _LIKELIHOOD_ROWS, len(target_columns))
            rows = np.arange(start + first, start + last)
            prefixes = [targets.prefixes[row] for row in rows]
            probabilities = over_unseen(
                recommender.probabilities_of_scores(prefixes, model_scores[first:last]),
                [[index[sku] for sku in set(prefix) if sku in index] for prefix in prefixes],
            )
            columns = np.array([index.get(targets.targets[row], -1) for row in rows])
            at_target = probabilities[np.arange(len(rows)), np.maximum(columns, 0)]
            likelihoods[rows] = np.where(columns >= 0, at_target, 0.0)
    return ranks, likelihoods


@dataclass(frozen=True)
class TargetResults:
    """What one recommender did on each target of a `NextItemTargets`, in the targets' order.

    `ranks[i]`: rank of target i among the candidates (1 = best; ties count against the model,
    seen and unknown candidates excluded). `top[i]`: the k best candidates for prefix i as
    indices into `targets.candidate_items`, best first, ties to the lower index, -1 where fewer
    than k candidates were left. Both come from the same scores.
    """

    ranks: np.ndarray
    top: np.ndarray

    def __len__(self) -> int:
        return len(self.ranks)

    @property
    def k(self) -> int:
        return self.top.shape[1]


def rank_targets(
    recommender: RecommenderOrFactory,
    targets: NextItemTargets,
    k: int = 20,
    rows: Sequence[int] | None = None,
    batch_size: int = 256,
) -> TargetResults:
    """Ranks of the targets and top-k lists, scoring each prefix once.

    A value that is not a `SessionRecommender` is called with each test day and must return
    the recommender for that day; each target is scored by its own day's recommender.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    rows = list(range(len(targets)) if rows is None else rows)
    ranks = np.empty(len(rows), dtype=np.int64)
    top = np.full((len(rows), k), -1, dtype=np.int64)
    if isinstance(recommender, SessionRecommender):
        groups = [(recommender, np.arange(len(rows)))]
    else:
        days = [targets.days[row] for row in rows]
        groups = [
            (recommender(day), np.flatnonzero([target_day == day for target_day in days]))
            for day in sorted(set(days))
        ]
    for model, positions in groups:
        group_rows = [rows[position] for position in positions]
        for start, scores, target_columns, _ in _masked_scores(
            model, targets, group_rows, batch_size
        ):
            batch = positions[start : start + len(target_columns)]
            ranks[batch] = target_ranks(scores, target_columns)
            top[batch] = top_k(scores, k)
    return TargetResults(ranks, top)


def metric_key(metric: str, k: int) -> str:
    """The name of a metric at k in `EvaluationRow.metrics`, e.g. `hr_20`.

    Only letters, digits and underscores, so the names can be logged as they are (MLflow
    refuses `@`).
    """
    return f"{metric}_{k}"


# Metric -> column header prefix in `format_table`.
METRIC_HEADERS = {
    "hr": "HR",
    "mrr": "MRR",
    "coverage": "Cov",
    "popularity_bias": "PopBias",
}


@dataclass(frozen=True)
class EvaluationRow:
    """One recommender's metrics. `hit_rate` and `mrr` are at the report's main k; `metrics`
    holds every metric by `metric_key` name: `hr_<k>` and `mrr_<k>` for each k,
    `coverage_<k>` and `popularity_bias_<k>` at the main k (the latter only when
    training counts were given).
    """

    name: str
    hit_rate: float
    mrr: float
    metrics: Mapping[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The name and every metric by key (just `hit_rate` and `mrr` if `metrics` is empty)."""
        if not self.metrics:
            return {"name": self.name, "hit_rate": self.hit_rate, "mrr": self.mrr}
        return {"name": self.name, **self.metrics}


@dataclass(frozen=True)
class EvaluationReport:
    k: int
    rows: list[EvaluationRow]
    targets: int
    sessions: int
    candidates: int
    skipped_unknown: int
    title: str = "next-item evaluation"
    skipped_seen: int = 0
    ks: tuple[int, ...] = ()  # the cutoffs of HR and MRR; empty means just k

    def row(self, name: str) -> EvaluationRow:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no recommender named {name!r} in this report")

    def metric_names(self) -> list[str]:
        """The metric keys every row has, in table order."""
        ks = sorted(set(self.ks) | {self.k})
        names = [metric_key("hr", k) for k in ks] + [metric_key("mrr", k) for k in ks]
        names += [metric_key("coverage", self.k), metric_key("popularity_bias", self.k)]
        return [name for name in names if all(name in row.metrics for row in self.rows)]

    def as_dict(self) -> dict[str, Any]:
        """Everything in plain JSON-serialisable types (for logging)."""
        return {
            "title": self.title,
            "k": self.k,
            "ks": sorted(set(self.ks) | {self.k}),
            "targets": self.targets,
            "sessions": self.sessions,
            "candidates": self.candidates,
            "skipped_unknown": self.skipped_unknown,
            "skipped_seen": self.skipped_seen,
            "rows": [row.as_dict() for row in self.rows],
        }

    def format_table(self, metrics: Sequence[str] | None = None) -> str:
        """A text table: one line per recommender, one column per metric key in `metrics`
        (default: `metric_names()`, or HR@k and MRR@k for rows without `metrics`)."""
        main = {metric_key("hr", self.k): "hit_rate", metric_key("mrr", self.k): "mrr"}
        if metrics is None:
            metrics = self.metric_names() or list(main)

        def value(row: EvaluationRow, name: str) -> float:
            return row.metrics[name] if name in row.metrics else getattr(row, main[name])

        headers = []
        for name in metrics:
            metric, _, k = name.rpartition("_")
            headers.append(f"{METRIC_HEADERS.get(metric, metric)}@{k}")
        widths = [max(8, len(header)) for header in headers]
        width = max(len("model"), *(len(row.name) for row in self.rows))
        lines = [
            f"{self.title}: {self.targets:,} targets from {self.sessions:,} test sessions, "
            f"{self.candidates:,} candidate items, {self.skipped_unknown:,} targets skipped "
            "(not in training)"
            + (f", {self.skipped_seen:,} (return visits)" if self.skipped_seen else ""),
            f"{'model':<{width}}"
            + "".join(f"  {header:>{w}}" for header, w in zip(headers, widths, strict=True)),
        ]
        for row in self.rows:
            cells = (f"  {value(row, n):>{w}.4f}" for n, w in zip(metrics, widths, strict=True))
            lines.append(f"{row.name:<{width}}" + "".join(cells))
        if any(name.startswith("coverage_") for name in metrics):
            lines.append("Cov: share of the candidates in at least one top-k list")
        if any(name.startswith("popularity_bias_") for name in metrics):
            lines.append(
                "PopBias: mean training-popularity percentile of the recommended items "
                "(near 1 = the most viewed)"
            )
        return "\n".join(lines)


def _checked_ks(k: int, ks: Sequence[int]) -> list[int]:
    all_ks = sorted(set(ks) | {k})
    if all_ks[0] < 1:
        raise ValueError(f"every k must be at least 1, got {all_ks[0]}")
    return all_ks


def _percentiles(
    targets: NextItemTargets,
    train_sessions: Sequence[Sequence[str]] | None,
    train_counts: Mapping[str, float] | None,
) -> np.ndarray | None:
    if train_sessions is not None and train_counts is not None:
        raise ValueError("pass train_sessions or train_counts, not both")
    if train_sessions is not None:
        counts = training_counts(train_sessions, targets.candidate_items)
    elif train_counts is not None:
        counts = np.array([train_counts.get(sku, 0) for sku in targets.candidate_items], float)
    else:
        return None
    return popularity_percentiles(counts)


def _row(
    name: str,
    results: TargetResults,
    k: int,
    ks: Sequence[int],
    n_candidates: int,
    percentiles: np.ndarray | None,
) -> EvaluationRow:
    metrics = {metric_key("hr", cut): hit_rate_at(results.ranks, cut) for cut in ks}
    metrics |= {metric_key("mrr", cut): mrr_at(results.ranks, cut) for cut in ks}
    metrics[metric_key("coverage", k)] = item_coverage_at(results.top, k, n_candidates)
    if percentiles is not None:
        metrics[metric_key("popularity_bias", k)] = popularity_bias_at(results.top, k, percentiles)
    return EvaluationRow(name, metrics[metric_key("hr", k)], metrics[metric_key("mrr", k)], metrics)


def evaluate_recommender(
    recommender: RecommenderOrFactory,
    targets: NextItemTargets,
    k: int = 20,
    *,
    name: str | None = None,
    ks: Sequence[int] = (10, 20),
    train_sessions: Sequence[Sequence[str]] | None = None,
    train_counts: Mapping[str, float] | None = None,
    batch_size: int = 256,
) -> tuple[EvaluationRow, TargetResults]:
    """One recommender's row of `evaluate` and its per-target results (ranks, top-k lists)."""
    if not len(targets):
        raise ValueError("no targets to evaluate on")
    all_ks = _checked_ks(k, ks)
    percentiles = _percentiles(targets, train_sessions, train_counts)
    if name is None:
        name = getattr(recommender, "name", None) or getattr(recommender, "__name__", "model")
    results = rank_targets(recommender, targets, all_ks[-1], batch_size=batch_size)
    row = _row(name, results, k, all_ks, len(targets.candidate_items), percentiles)
    return row, results


def evaluate(
    recommenders: Mapping[str, RecommenderOrFactory],
    targets: NextItemTargets,
    k: int = 20,
    title: str = "next-item evaluation",
    *,
    ks: Sequence[int] = (10, 20),
    train_sessions: Sequence[Sequence[str]] | None = None,
    train_counts: Mapping[str, float] | None = None,
    batch_size: int = 256,
) -> EvaluationReport:
    """HR and MRR at each of `ks` and k, coverage@k and popularity bias@k of each recommender,
    all on the same targets; each prefix is scored once per recommender.

    Popularity bias needs the training popularity of the candidates: the training sessions or
    a count per SKU (SKUs missing from it count 0); without either it is left out.

    A value that is not a `SessionRecommender` is called with each test day and must return
    the recommender for that day (the simulator's oracle: `Oracle(config).ranker`).
    """
    report, _ = evaluate_with_results(
        recommenders,
        targets,
        k,
        title,
        ks=ks,
        train_sessions=train_sessions,
        train_counts=train_counts,
        batch_size=batch_size,
    )
    return report


def evaluate_with_results(
    recommenders: Mapping[str, RecommenderOrFactory],
    targets: NextItemTargets,
    k: int = 20,
    title: str = "next-item evaluation",
    *,
    ks: Sequence[int] = (10, 20),
    train_sessions: Sequence[Sequence[str]] | None = None,
    train_counts: Mapping[str, float] | None = None,
    batch_size: int = 256,
) -> tuple[EvaluationReport, dict[str, TargetResults]]:
    """`evaluate`, with each recommender's per-target results (ranks, top-k lists): what a
    caller needs for intervals or slices without scoring the prefixes again."""
    if not len(targets):
        raise ValueError("no targets to evaluate on")
    all_ks = _checked_ks(k, ks)
    percentiles = _percentiles(targets, train_sessions, train_counts)
    rows, results_by_name = [], {}
    for name, recommender in recommenders.items():
        results = rank_targets(recommender, targets, all_ks[-1], batch_size=batch_size)
        results_by_name[name] = results
        rows.append(_row(name, results, k, all_ks, len(targets.candidate_items), percentiles))
    report = EvaluationReport(
        k=k,
        rows=rows,
        targets=len(targets),
        sessions=targets.sessions,
        candidates=len(targets.candidate_items),
        skipped_unknown=targets.skipped_unknown,
        title=title,
        ks=tuple(all_ks),
        skipped_seen=targets.skipped_seen,
    )
    return report, results_by_name


def shop_headroom(config: ShopConfig, test_days: int = 2, k: int = 20) -> EvaluationReport:
    """Oracle, first-order Markov chain and popularity on the simulated shop's last days.

    The oracle (the exact next-product distribution of the shop's family) is scored on the same
    targets: the ceiling. Returns to a product seen earlier in the session are not targets.
    """
    sessions = [(session.day, session.skus) for session in simulate_sessions(config)]
    split = split_by_time(sessions, test_days)
    markov = MarkovRecommender().fit(split.train)
    popularity = PopularityRecommender().fit(split.train)
    targets = next_item_targets(split.test, markov.item_ids)
    oracle = Oracle(config)
    return evaluate(
        {"oracle": oracle.ranker, "markov": markov, "popularity": popularity},
        targets,
        k=k,
        train_sessions=split.train,
        title=(
            f"shop headroom ({config.family} family, seed {config.seed}, "
            f"last {test_days} of {config.days} days)"
        ),
    )
