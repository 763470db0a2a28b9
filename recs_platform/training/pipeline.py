"""From the training dataset to a chosen, checked recommender: search, refit, evaluate, compare.

1. Each candidate is searched on the train split and scored on the validation split (MRR@k).
2. The chosen configuration of each candidate is refitted on train + validation.
3. Every refitted candidate, and the oracle when the data is a simulated shop, is evaluated on the
   same test targets; the candidate with the best validation MRR@k is the one proposed (the test
   days are never used to choose).
4. The proposal's behavioural checklist runs on the test targets.
Registering and promoting is the caller's business (`tracking.py`); nothing here imports Dagster.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from recs_platform.evaluation.checklist import Checklist, run_checklist
from recs_platform.evaluation.protocol import (
    EvaluationReport,
    NextItemTargets,
    evaluate,
    next_item_targets,
)
from recs_platform.models.base import SessionRecommender
from recs_platform.training.candidates import CANDIDATE_NAMES, Params, candidate
from recs_platform.training.search import SearchBudget, SearchResult, search

log = logging.getLogger(__name__)

DaySessions = list[tuple[dt.date, list[str]]]


@dataclass(frozen=True)
class DatasetSplits:
    train: DaySessions
    validation: DaySessions
    test: DaySessions

    @classmethod
    def from_frame(cls, dataset: pd.DataFrame) -> DatasetSplits:
        """The `training_dataset` frame (split, session_date, items) as (day, skus) per split."""
        by_split: dict[str, DaySessions] = {"train": [], "validation": [], "test": []}
        ordered = dataset.sort_values(["session_date", "session_id"])
        for split, day, items in zip(
            ordered["split"], ordered["session_date"], ordered["items"], strict=True
        ):
            by_split[split].append((pd.Timestamp(day).date(), list(items)))
        for split, sessions in by_split.items():
            if not sessions:
                raise ValueError(f"the training dataset has no {split} sessions")
        return cls(**by_split)


def skus(sessions: DaySessions) -> list[list[str]]:
    return [items for _, items in sessions]


@dataclass(frozen=True)
class TrainingPlan:
    candidates: tuple[str, ...] = CANDIDATE_NAMES
    budget: SearchBudget = field(default_factory=SearchBudget)
    overrides: dict[str, Params] = field(default_factory=dict)  # per candidate
    k: int = 20
    seed: int = 0
    new_item_days: int = 2

    def __post_init__(self) -> None:
        if not self.candidates:
            raise ValueError("a training plan needs at least one candidate")
        unknown = set(self.overrides) - set(self.candidates)
        if unknown:
            raise ValueError(f"overrides for candidates not in the plan: {sorted(unknown)}")


@dataclass
class TrainedCandidate:
    name: str
    params: Params
    validation_mrr: float
    fit_seconds: float
    recommender: SessionRecommender
    search: SearchResult


@dataclass
class TrainingOutcome:
    chosen: TrainedCandidate
    candidates: dict[str, TrainedCandidate]
    report: EvaluationReport  # test split: every candidate, and the oracle when known
    test_targets: NextItemTargets
    checklist: Checklist
    train_sessions: int
    test_sessions: int

    def table(self) -> list[dict]:
        """One row per model: test metrics, validation MRR and fit time (oracle: test only)."""
        rows = []
        for row in self.report.rows:
            trained = self.candidates.get(row.name)
            rows.append(
                {
                    **row.as_dict(),
                    "validation_mrr": trained.validation_mrr if trained else None,
                    "fit_seconds": trained.fit_seconds if trained else None,
                    "chosen": row.name == self.chosen.name,
                }
            )
        return rows


def train_and_choose(
    splits: DatasetSplits,
    plan: TrainingPlan,
    oracle_for_day: Callable[[dt.date], SessionRecommender] | None = None,
) -> TrainingOutcome:
    train = skus(splits.train)
    train_and_validation = train + skus(splits.validation)
    probe = candidate("popularity").make().fit(train)
    validation_targets = next_item_targets(splits.validation, probe.item_ids)
    if not len(validation_targets):
        raise ValueError("the validation split has no next-item targets among the training items")

    def validation_mrr(recommender: SessionRecommender) -> float:
        report = evaluate({recommender.name: recommender}, validation_targets, k=plan.k)
        return report.rows[0].mrr

    trained: dict[str, TrainedCandidate] = {}
    for name in plan.candidates:
        chosen_candidate = candidate(name, plan.overrides.get(name))
        result = search(chosen_candidate, train, validation_mrr, plan.budget, seed=plan.seed)
        started = time.perf_counter()
        recommender = chosen_candidate.make(result.best_params).fit(train_and_validation)
        fit_seconds = time.perf_counter() - started
        log.info("%s: validation MRR@%d %.4f, refitted in %.1f s", name, plan.k,
                 result.best_value, fit_seconds)  # fmt: skip
        trained[name] = TrainedCandidate(
            name,
            {**chosen_candidate.defaults, **result.best_params},
            result.best_value,
            fit_seconds,
            recommender,
            result,
        )

    chosen = max(trained.values(), key=lambda item: item.validation_mrr)
    test_targets = next_item_targets(splits.test, chosen.recommender.item_ids)
    if not len(test_targets):
        raise ValueError("the test split has no next-item targets among the training items")
    evaluated: dict = {name: item.recommender for name, item in trained.items()}
    if oracle_for_day is not None:
        evaluated = {"oracle": oracle_for_day, **evaluated}
    report = evaluate(
        evaluated,
        test_targets,
        k=plan.k,
        train_sessions=train_and_validation,
        title="test split",
    )
    checklist = run_checklist(
        chosen.recommender,
        splits.train + splits.validation,
        test_targets,
        k=plan.k,
        new_item_days=plan.new_item_days,
    )
    return TrainingOutcome(
        chosen=chosen,
        candidates=trained,
        report=report,
        test_targets=test_targets,
        checklist=checklist,
        train_sessions=len(train_and_validation),
        test_sessions=len(splits.test),
    )


@dataclass(frozen=True)
class ChampionComparison:
    """The proposed model against the serving champion, on the same test targets."""

    champion_version: str | None
    champion_mrr: float | None
    candidate_mrr: float
    k: int

    @property
    def beats_champion(self) -> bool:
        return self.champion_mrr is None or self.candidate_mrr > self.champion_mrr

    def describe(self) -> str:
        if self.champion_version is None:
            return f"no champion yet: the new model (MRR@{self.k} {self.candidate_mrr:.4f}) wins"
        verdict = "beats" if self.beats_champion else "does not beat"
        return (
            f"new model MRR@{self.k} {self.candidate_mrr:.4f} {verdict} champion version "
            f"{self.champion_version} ({self.champion_mrr:.4f}) on the same test targets"
        )


def compare_with_champion(
    outcome: TrainingOutcome,
    champion: SessionRecommender | None,
    champion_version: str | None,
    k: int | None = None,
) -> ChampionComparison:
    k = k or outcome.report.k
    candidate_mrr = outcome.report.row(outcome.chosen.name).mrr
    if champion is None:
        return ChampionComparison(None, None, candidate_mrr, k)
    champion_report = evaluate({"champion": champion}, outcome.test_targets, k=k)
    return ChampionComparison(champion_version, champion_report.rows[0].mrr, candidate_mrr, k)


def best_by(rows: Sequence[dict], metric: str, exclude: Sequence[str] = ("oracle",)) -> dict:
    """The row with the highest `metric` among the rows not named in `exclude`."""
    return max((row for row in rows if row["name"] not in exclude), key=lambda row: row[metric])
