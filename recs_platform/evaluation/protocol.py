"""The session-rec protocol: time split, next item at every position, full catalogue ranking.

Every recommender is scored on exactly the same targets against the same candidates (the items
seen in training); targets never seen in training cannot be recommended by anyone trained on
that data and are skipped, and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recs_platform.evaluation.metrics import hit_rate_at, mrr_at, target_ranks
from recs_platform.models.base import SessionRecommender
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


def split_by_time(sessions: Sequence[tuple[Hashable, Sequence[str]]], test_days: int) -> TimeSplit:
    """The last `test_days` distinct days are the test set, everything before is training."""
    days = sorted({day for day, _ in sessions})
    if not 0 < test_days < len(days):
        raise ValueError(
            f"test_days must leave at least one day for training and one for testing: "
            f"got {test_days} of {len(days)} days"
        )
    first_test_day = days[-test_days]
    train = [list(items) for day, items in sessions if day < first_test_day]
    test = [(day, list(items)) for day, items in sessions if day >= first_test_day]
    return TimeSplit(train, test, days[:-test_days], days[-test_days:])


@dataclass(frozen=True)
class NextItemTargets:
    """Prefix -> next item pairs from the test sessions, and the candidate catalogue."""

    prefixes: list[tuple[str, ...]]
    targets: list[str]
    days: list[Hashable]
    candidate_items: list[str]
    sessions: int
    skipped_unknown: int  # targets not among the candidates (never seen in training)

    def __len__(self) -> int:
        return len(self.targets)


def next_item_targets(
    test_sessions: Sequence[tuple[Hashable, Sequence[str]]], candidate_items: Sequence[str]
) -> NextItemTargets:
    """For each session, prefix = first t items, target = item t + 1, for every t >= 1."""
    candidates = set(candidate_items)
    prefixes, targets, days = [], [], []
    skipped = 0
    for day, items in test_sessions:
        for position in range(1, len(items)):
            if items[position] not in candidates:
                skipped += 1
                continue
            prefixes.append(tuple(items[:position]))
            targets.append(items[position])
            days.append(day)
    return NextItemTargets(prefixes, targets, days, sorted(candidates), len(test_sessions), skipped)


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
    candidate_index = {sku: position for position, sku in enumerate(targets.candidate_items)}
    model_index = recommender.item_index()
    model_columns = np.array([model_index.get(sku, -1) for sku in targets.candidate_items])
    known = model_columns >= 0
    ranks = np.empty(len(rows), dtype=np.int64)
    for start in range(0, len(rows), batch_size):
        batch = list(rows[start : start + batch_size])
        prefixes = [targets.prefixes[row] for row in batch]
        model_scores = np.asarray(recommender.score(prefixes), dtype=np.float64)
        scores = np.where(known, model_scores[:, np.maximum(model_columns, 0)], -np.inf)
        for offset, prefix in enumerate(prefixes):
            seen = [candidate_index[sku] for sku in prefix if sku in candidate_index]
            scores[offset, seen] = -np.inf
        target_columns = np.array([candidate_index[targets.targets[row]] for row in batch])
        ranks[start : start + len(batch)] = target_ranks(scores, target_columns)
    return ranks


@dataclass(frozen=True)
class EvaluationRow:
    name: str
    hit_rate: float
    mrr: float


@dataclass(frozen=True)
class EvaluationReport:
    k: int
    rows: list[EvaluationRow]
    targets: int
    sessions: int
    candidates: int
    skipped_unknown: int
    title: str = "next-item evaluation"

    def row(self, name: str) -> EvaluationRow:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no recommender named {name!r} in this report")

    def format_table(self) -> str:
        k = self.k
        width = max(len("model"), *(len(row.name) for row in self.rows))
        lines = [
            f"{self.title}: {self.targets:,} targets from {self.sessions:,} test sessions, "
            f"{self.candidates:,} candidate items, {self.skipped_unknown:,} targets skipped "
            "(not in training)",
            f"{'model':<{width}}  {'HR@' + str(k):>8}  {'MRR@' + str(k):>8}",
        ]
        lines += [
            f"{row.name:<{width}}  {row.hit_rate:>8.4f}  {row.mrr:>8.4f}" for row in self.rows
        ]
        return "\n".join(lines)


def evaluate(
    recommenders: Mapping[str, RecommenderOrFactory],
    targets: NextItemTargets,
    k: int = 20,
    title: str = "next-item evaluation",
) -> EvaluationReport:
    """HR@k and MRR@k of each recommender on the same targets.

    A value that is not a `SessionRecommender` is called with each test day and must return
    the recommender for that day.
    """
    if not len(targets):
        raise ValueError("no targets to evaluate on")
    rows = []
    for name, recommender in recommenders.items():
        if isinstance(recommender, SessionRecommender):
            ranks = ranks_of_targets(recommender, targets)
        else:
            ranks = np.empty(len(targets), dtype=np.int64)
            for day in sorted(set(targets.days)):
                on_day = [row for row, target_day in enumerate(targets.days) if target_day == day]
                ranks[on_day] = ranks_of_targets(recommender(day), targets, on_day)
        rows.append(EvaluationRow(name, hit_rate_at(ranks, k), mrr_at(ranks, k)))
    return EvaluationReport(
        k=k,
        rows=rows,
        targets=len(targets),
        sessions=targets.sessions,
        candidates=len(targets.candidate_items),
        skipped_unknown=targets.skipped_unknown,
        title=title,
    )


def shop_headroom(config: ShopConfig, test_days: int = 2, k: int = 20) -> EvaluationReport:
    """Oracle, first-order Markov chain and popularity on the simulated shop's last days."""
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
        title=f"shop headroom (seed {config.seed}, last {test_days} of {config.days} days)",
    )
