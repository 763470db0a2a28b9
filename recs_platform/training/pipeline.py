"""From the training dataset to a chosen, checked recommender: search, refit, evaluate, compare.

1. Each candidate is searched on the train split and scored on the validation split (MRR@k); a
   torch candidate is scored after every epoch and stops early (the plan's `patience`).
2. The chosen configuration of each candidate is refitted on train + validation, a torch one
   for the epoch count early stopping found.
3. The blend (when planned) mixes the candidates' next-item distributions with weights fitted
   on the validation day; its own validation score is cross-fitted (two halves of the day).
4. The candidate to serve is chosen on the validation day alone, by the one-standard-error rule
   on the session-bootstrapped MRR@k (`selection.py`): the test days never choose.
5. Every refitted candidate, and the oracle when the data is a simulated shop, is evaluated on the
   same test targets; the regret (the served candidate's test MRR@k against the best one's)
   says what the choice cost.
6. The proposal's behavioural checklist runs on the test targets.

At a large shop's size two settings bound the cost: `evaluation_sessions` scores the validation
and test days on a seeded sample of their sessions (the served model's test MRR then comes with
its bootstrap interval), and `time_budget_s` bounds the whole retrain (`budget.py`): a candidate
that cannot search and refit on the whole training window within its share trains with fewer
trials, then on the most recent sessions that fit, and its `window` says so.
Registering and promoting is the caller's business (`tracking.py`); nothing here imports Dagster.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from recs_platform.evaluation.checklist import Checklist, run_checklist
from recs_platform.evaluation.metrics import mrr_at
from recs_platform.evaluation.protocol import (
    EvaluationReport,
    NextItemTargets,
    RecommenderOrFactory,
    evaluate,
    evaluate_with_results,
    next_item_targets,
    rank_targets,
    ranks_and_likelihoods,
    ranks_of_targets,
)
from recs_platform.evaluation.uncertainty import reciprocal_ranks, session_bootstrap
from recs_platform.models.base import SessionRecommender
from recs_platform.models.blend import (
    BlendRecommender,
    length_buckets,
    members_worth_keeping,
    weights_by_bucket,
)
from recs_platform.models.torch_common import TorchSessionRecommender, torch_threads
from recs_platform.training.budget import (
    MIN_TRAINING_SESSIONS,
    EvaluationSample,
    Probe,
    TimeBudget,
    TrainingWindow,
    candidate_allowance,
    evaluation_sample,
    fit_window,
    fixed_costs_s,
    probe_size,
)
from recs_platform.training.candidates import (
    BLEND,
    BLEND_PRUNING_TOLERANCE,
    BLEND_SETTINGS,
    CANDIDATE_NAMES,
    Candidate,
    Params,
    candidate,
)
from recs_platform.training.search import (
    SearchBudget,
    SearchResult,
    fit_before,
    search,
    stopped_at_deadline,
)
from recs_platform.training.selection import Selection, select

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
        days: dict = {}  # one date object per day, not per session
        for split, day, items in zip(
            ordered["split"], ordered["session_date"], ordered["items"], strict=True
        ):
            if day not in days:
                days[day] = pd.Timestamp(day).date()
            # The frame's own lists where it has them (a loaded dataset does): no second copy.
            sessions = items if isinstance(items, list) else list(items)
            by_split[split].append((days[day], sessions))
        for split, sessions in by_split.items():
            if not sessions:
                raise ValueError(f"the training dataset has no {split} sessions")
        return cls(**by_split)


def skus(sessions: DaySessions) -> list[list[str]]:
    return [items for _, items in sessions]


def sample_sessions(sessions: DaySessions, limit: int | None, seed: int) -> DaySessions:
    """At most `limit` of `sessions`, drawn uniformly with `seed`, in their original order."""
    if limit is None or len(sessions) <= limit:
        return sessions
    kept = np.sort(np.random.default_rng(seed).choice(len(sessions), limit, replace=False))
    return [sessions[position] for position in kept]


@dataclass(frozen=True)
class TrainingPlan:
    candidates: tuple[str, ...] = CANDIDATE_NAMES
    budget: SearchBudget = field(default_factory=SearchBudget)
    overrides: dict[str, Params] = field(default_factory=dict)  # per candidate
    k: int = 20
    seed: int = 0
    new_item_days: int = 2
    # Torch candidates stop once this many epochs in a row did not beat their best validation
    # MRR; None: they train their `epochs` in full.
    patience: int | None = 2
    # Seconds for the whole retrain; None: unbounded (module docstring, `budget.py`).
    time_budget_s: float | None = None
    # The validation and test days are each scored on at most this many of their sessions (a
    # seeded sample); None: every session.
    evaluation_sessions: int | None = None

    def __post_init__(self) -> None:
        if not self.candidates:
            raise ValueError("a training plan needs at least one candidate")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ValueError(f"time_budget_s must be positive or None, got {self.time_budget_s}")
        if self.evaluation_sessions is not None and self.evaluation_sessions < 100:
            raise ValueError(
                f"evaluation_sessions must be at least 100 or None, got {self.evaluation_sessions}"
            )
        unknown = set(self.overrides) - set(self.candidates)
        if unknown:
            raise ValueError(f"overrides for candidates not in the plan: {sorted(unknown)}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be at least 1 or None, got {self.patience}")
        if BLEND in self.candidates and len(self.members_of_blend) < 2:
            raise ValueError("the blend needs at least two other candidates in the plan")
        unknown_settings = set(self.overrides.get(BLEND, {})) - set(BLEND_SETTINGS)
        if unknown_settings:
            raise ValueError(
                f"blend settings {sorted(unknown_settings)} unknown; it takes {BLEND_SETTINGS}"
            )
        budget = self.overrides.get(BLEND, {}).get("serving_budget_ms")
        if budget is not None and (
            isinstance(budget, bool) or not isinstance(budget, int | float) or not budget > 0
        ):
            raise ValueError(
                f"the blend's serving_budget_ms must be a positive number, got {budget!r}"
            )

    @property
    def members_of_blend(self) -> tuple[str, ...]:
        return tuple(name for name in self.candidates if name != BLEND)


@dataclass
class TrainedCandidate:
    name: str
    params: Params  # the refit's: the search's best, with the epoch count early stopping found
    validation_mrr: float
    fit_seconds: float  # the refit on train + validation
    recommender: SessionRecommender  # refitted on train + validation
    search: SearchResult | None  # None for the blend, which is not searched
    validation_model: SessionRecommender  # fitted on train only: what validation scored
    validation_reciprocal_ranks: np.ndarray  # per validation target, 0 outside the top k
    # Per validation target, P(target | prefix, target unseen): what the blend weighs it by.
    validation_likelihoods: np.ndarray | None
    # What the time budget let it train on; None: no budget, the whole training split.
    window: TrainingWindow | None = None
    # What the budget's deadline did to its fits (`_refit`): "search" (the validation model was
    # cut), "refit on the newest N sessions" (after a search cut inside its first epoch),
    # "refit" (the refit was cut), then `REFIT_SHORTER` where it learnt less than the search's
    # model, which serves, or "no refit" (too little time left: the search's model serves).
    deadline_cuts: tuple[str, ...] = ()


@dataclass
class TrainingOutcome:
    chosen: TrainedCandidate
    candidates: dict[str, TrainedCandidate]
    report: EvaluationReport  # test split: every candidate, and the oracle when known
    test_targets: NextItemTargets
    checklist: Checklist
    train_sessions: int
    test_sessions: int
    selection: Selection
    validation_sessions: int = 0  # in the validation split
    validation_sessions_evaluated: int = 0  # scored: all of them, or the sample
    test_sessions_evaluated: int = 0
    # The served model's test MRR@k, 95 % session-bootstrap interval: set when the test day
    # was sampled, where it says how far the sample's figure may be from the whole day's.
    chosen_test_interval: tuple[float, float] | None = None
    budget_used_s: float | None = None  # with a time budget: the seconds the retrain took
    # With a time budget: how many test sessions the evaluation could score in what was left.
    test_sample: EvaluationSample | None = None
    # The serving champion's test MRR@k on the same targets, when one was given.
    champion_test_mrr: float | None = None

    @property
    def windows(self) -> dict[str, TrainingWindow]:
        """What each candidate trained on under the time budget (empty without one)."""
        return {name: item.window for name, item in self.candidates.items() if item.window}

    def windows_summary(self) -> dict[str, dict]:
        """Per candidate under the time budget: its window, in words and numbers, and which
        fits the deadline cut (the run's metadata and its MLflow record)."""
        return {
            name: {
                "window": item.window.describe(),
                "trimmed": item.window.trimmed,
                "sessions": item.window.sessions,
                "available_sessions": item.window.available_sessions,
                "trials": item.window.trials,
                "deadline_cuts": list(item.deadline_cuts),
            }
            for name, item in self.candidates.items()
            if item.window
        }

    @property
    def best_on_test(self) -> str:
        """The candidate with the best test MRR@k (known only after the fact: never chooses)."""
        return max(self.candidates, key=lambda name: self.report.row(name).mrr)

    @property
    def regret(self) -> float:
        """How much test MRR@k the served candidate gave up against the best one of the same
        run: 1 - served / best (0 when the best was served)."""
        best = self.report.row(self.best_on_test).mrr
        return 1 - self.report.row(self.chosen.name).mrr / best if best > 0 else 0.0

    def table(self) -> list[dict]:
        """One row per model: test metrics, validation MRR with its 95% interval, whether it is
        within noise of the validation leader, and fit time (oracle: test only)."""
        rows = []
        for row in self.report.rows:
            trained = self.candidates.get(row.name)
            score = self.selection.scores.get(row.name)
            rows.append(
                {
                    **row.as_dict(),
                    "validation_mrr": trained.validation_mrr if trained else None,
                    "validation_mrr_low": score.low if score else None,
                    "validation_mrr_high": score.high if score else None,
                    "within_noise": score.within_noise if score else None,
                    "fit_seconds": trained.fit_seconds if trained else None,
                    "chosen": row.name == self.chosen.name,
                }
            )
        return rows


def train_and_choose(
    splits: DatasetSplits,
    plan: TrainingPlan,
    oracle_for_day: Callable[[dt.date], SessionRecommender] | None = None,
    champion: SessionRecommender | None = None,
) -> TrainingOutcome:
    """Train the plan's candidates, choose one on the validation day, evaluate every candidate
    (and the oracle, and the serving `champion` when given) on the same test targets."""
    budget = TimeBudget(plan.time_budget_s) if plan.time_budget_s is not None else None
    train = skus(splits.train)
    validation_sessions = sample_sessions(splits.validation, plan.evaluation_sessions, plan.seed)
    test_sessions = sample_sessions(splits.test, plan.evaluation_sessions, plan.seed + 1)
    probe = candidate("popularity").make().fit(train)
    validation_targets = next_item_targets(validation_sessions, probe.item_ids)
    if not len(validation_targets):
        raise ValueError("the validation split has no next-item targets among the training items")

    def reciprocal_ranks_of(recommender: SessionRecommender, rows=None) -> np.ndarray:
        return reciprocal_ranks(ranks_of_targets(recommender, validation_targets, rows), plan.k)

    # Each model's reciprocal ranks and target likelihoods at its best validation MRR so far (a
    # torch model is scored every epoch and keeps its best one): the bootstrap and the blend
    # reuse them instead of scoring the validation day once more per candidate.
    best_scored: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def validation_mrr(recommender: SessionRecommender) -> float:
        ranks, likelihoods = ranks_and_likelihoods(recommender, validation_targets)
        values = reciprocal_ranks(ranks, plan.k)
        mrr = float(values.mean())
        if recommender not in best_scored or mrr > best_scored[recommender][0]:
            best_scored[recommender] = (mrr, values, likelihoods)
        return mrr

    def validation_seconds(recommender: SessionRecommender) -> float:
        """What scoring the validation day costs `recommender`, timed on its first
        `PROBE_VALIDATION_TARGETS` targets (whole sessions, in order, as the day is scored)."""
        timed = min(len(validation_targets), PROBE_VALIDATION_TARGETS)
        started = time.perf_counter()
        ranks_of_targets(recommender, validation_targets, range(timed))
        return (time.perf_counter() - started) * len(validation_targets) / max(timed, 1)

    everything = splits.train + splits.validation  # in time order: what the refits learn from
    trained: dict[str, TrainedCandidate] = {}
    members = plan.members_of_blend
    for position, name in enumerate(members):
        chosen_candidate = candidate(name, plan.overrides.get(name))
        window_sessions, search_budget, window = train, plan.budget, None
        refit_deadline = None
        if budget is not None:
            window, search_budget = _window_within_budget(
                chosen_candidate, train, len(splits.validation), validation_seconds, plan,
                budget.training_left_s(), len(members) - position,
            )  # fmt: skip
            refit_deadline = time.perf_counter() + window.allowance_s
            window_sessions = train[len(train) - window.sessions :]
            if window.epochs is not None and window.epochs < chosen_candidate.make().epochs:
                chosen_candidate = chosen_candidate.with_overrides({"epochs": window.epochs})
            log.info("[%s] %s: %s", budget.progress(), name, window.describe())
        result = search(
            chosen_candidate, window_sessions, validation_mrr, search_budget, plan.seed,
            plan.patience, hard_deadline=budget is not None,
        )  # fmt: skip
        started = time.perf_counter()
        refit_count = window.refit_sessions if window is not None else len(everything)
        recommender, deadline_cuts, window = _refit(
            chosen_candidate, result, everything[len(everything) - refit_count :], window,
            refit_deadline,
        )  # fmt: skip
        fit_seconds = time.perf_counter() - started
        log.info("%s%s: validation MRR@%d %.4f, refitted in %.1f s%s",
                 f"[{budget.progress()}] " if budget else "", name, plan.k, result.best_value,
                 fit_seconds, f" (deadline: {', '.join(deadline_cuts)})" if deadline_cuts else "",
                 )  # fmt: skip
        _, validation_reciprocal_ranks, validation_likelihoods = best_scored[result.best_model]
        trained[name] = TrainedCandidate(
            name,
            {**chosen_candidate.defaults, **result.best_params},
            result.best_value,
            fit_seconds,
            recommender,
            result,
            result.best_model,
            validation_reciprocal_ranks,
            validation_likelihoods,
            window,
            deadline_cuts,
        )
    # Under a time budget the members may have trained on different windows (the most recent
    # sessions of each, so the longest holds the others): the blend then falls back on the
    # popularity of the longest one, which is also what the checklist compares it with.
    windows = {item.window.refit_sessions for item in trained.values() if item.window}
    longest_window = max(windows) if windows else len(everything)
    if BLEND in plan.candidates:
        fallback = None
        if len(windows) > 1:
            fallback_sessions = skus(everything[len(everything) - longest_window :])
            fallback = candidate("popularity").make().fit(fallback_sessions)
        trained[BLEND] = _train_blend(
            trained,
            validation_targets,
            reciprocal_ranks_of,
            plan.overrides.get(BLEND, {}),
            fallback,
        )

    selection = select(
        {name: item.validation_reciprocal_ranks for name, item in trained.items()},
        validation_targets.session_of_target,
        seed=plan.seed,
    )
    log.info("chosen by the %s: %s", selection.rule, selection.describe())
    chosen = trained[selection.chosen]
    train_and_validation = train + skus(splits.validation)
    test_targets = next_item_targets(test_sessions, chosen.recommender.item_ids)
    if not len(test_targets):
        raise ValueError("the test split has no next-item targets among the training items")
    evaluated: dict = {name: item.recommender for name, item in trained.items()}
    if oracle_for_day is not None:
        evaluated = {"oracle": oracle_for_day, **evaluated}
    test_sample = None
    if budget is not None:
        scored = {**evaluated, **({"champion": champion} if champion is not None else {})}
        test_sample = _test_sample_within_budget(scored, chosen.name, test_targets, budget, plan)
        log.info("[%s] test evaluation: %s", budget.progress(), test_sample.describe())
        if test_sample.cut:
            test_sessions = sample_sessions(test_sessions, test_sample.sessions, plan.seed + 2)
            test_targets = next_item_targets(test_sessions, chosen.recommender.item_ids)
    report, results = evaluate_with_results(
        evaluated,
        test_targets,
        k=plan.k,
        train_sessions=train_and_validation,
        title="test split",
    )
    chosen_ranks = results[chosen.name].ranks
    champion_test_mrr = None
    if champion is not None:
        champion_ranks = rank_targets(champion, test_targets, plan.k).ranks
        champion_test_mrr = mrr_at(champion_ranks, plan.k)
    chosen_test_interval = None
    if len(test_sessions) < len(splits.test):
        ranks = reciprocal_ranks(chosen_ranks, plan.k)
        bootstrap = session_bootstrap({chosen.name: ranks}, test_targets.session_of_target)
        chosen_test_interval = bootstrap.interval(chosen.name)
    if budget is not None:
        log.info("[%s] test day evaluated; the checklist runs", budget.progress())
    # The checklist compares the fallback with the popularity of what the model trained on.
    trained_sessions = chosen.window.refit_sessions if chosen.window else longest_window
    trained_on = everything[len(everything) - trained_sessions :]
    checklist = run_checklist(
        chosen.recommender,
        trained_on,
        test_targets,
        k=plan.k,
        new_item_days=plan.new_item_days,
        ranks=chosen_ranks,
    )
    if budget is not None:
        log.info("[%s] retrain done", budget.progress())
    return TrainingOutcome(
        chosen=chosen,
        candidates=trained,
        report=report,
        test_targets=test_targets,
        checklist=checklist,
        train_sessions=len(train_and_validation),
        test_sessions=len(splits.test),
        selection=selection,
        validation_sessions=len(splits.validation),
        validation_sessions_evaluated=len(validation_sessions),
        test_sessions_evaluated=len(test_sessions),
        chosen_test_interval=chosen_test_interval,
        budget_used_s=budget.elapsed_s() if budget is not None else None,
        test_sample=test_sample,
        champion_test_mrr=champion_test_mrr,
    )


# A refit gets at least this share of the probe's estimate of it, or it is not made.
MIN_REFIT_SHARE = 0.5
# The deadline cut a torch refit before it learnt from as many product views as the search's
# network: that one serves (on the Coveo-sized month GRU4Rec's refit, cut at 45 % of its one
# epoch, scored 0.151 on the test day where the search's network scored 0.197 on validation).
REFIT_SHORTER = "refit learnt less than the search: the search's model serves"


def _refit(
    chosen_candidate: Candidate,
    result: SearchResult,
    sessions: DaySessions,
    window: TrainingWindow | None,
    deadline: float | None,
) -> tuple[SessionRecommender, tuple[str, ...], TrainingWindow | None]:
    """The search's best configuration fitted on `sessions` (the most recent of train +
    validation); which fits the deadline cut (`TrainedCandidate.deadline_cuts`); the window
    with the sessions the refit had.

    A count model always refits (a quick, predictable pass; the shopper kinds start no round
    of their refinement past `deadline`, `fit_before`); a torch model stops at `deadline`,
    and is not refitted when less than `MIN_REFIT_SHARE` of the refit's estimate is left (a
    refit stopped after a few batches would serve worse than the search's model, which then
    serves); a refit the deadline stopped before it learnt from as many product views as the
    search's network did gives way to that network (`REFIT_SHORTER`). A search stopped inside
    its first epoch saw a random share of its window: the refit takes that share of its
    sessions, the most recent ones (never fewer than `MIN_TRAINING_SESSIONS`), so that it
    trains on the newest part that fits."""
    searched = result.best_model
    cuts = ("search",) if stopped_at_deadline(searched) else ()
    if (
        deadline is not None
        and window is not None
        and isinstance(searched, TorchSessionRecommender)
        and deadline - time.perf_counter() < MIN_REFIT_SHARE * window.refit_estimated_s
    ):
        return searched, (*cuts, "no refit"), window
    log_of_search = getattr(searched, "training_log", None) or [{}]
    share = log_of_search[0].get("epoch_share", 1.0) if cuts else 1.0
    kept = min(len(sessions), max(MIN_TRAINING_SESSIONS, round(share * len(sessions))))
    if window is not None and kept < len(sessions):
        sessions = sessions[len(sessions) - kept :]
        window = replace(window, refit_sessions=kept)
        cuts = (*cuts, f"refit on the newest {kept:,} sessions")
    refitted = fit_before(chosen_candidate.make(result.best_params), skus(sessions), deadline)
    if not stopped_at_deadline(refitted):
        return refitted, cuts, window
    if (
        isinstance(searched, TorchSessionRecommender)
        and refitted.events_learnt() < searched.events_learnt()
    ):
        return searched, (*cuts, "refit", REFIT_SHORTER), window
    return refitted, (*cuts, "refit"), window


# The smaller probe fit's fewest sessions (below it, the probe is proportional).
MIN_SMALL_PROBE = 250
# A probe fit quicker than this says little about the whole window (fixed costs weigh in it):
# the probe grows fourfold until a fit takes this long or covers every session.
MIN_PROBE_S = 10.0
# Validation targets a probe scores to time the validation day: a model that is slow to score
# on a large catalogue (the shopper kinds at 50,000 items: 4 ms a prefix) would otherwise spend
# its allowance on the probe's timing alone.
PROBE_VALIDATION_TARGETS = 3_000


def _probe(
    chosen_candidate: Candidate,
    train: list[list[str]],
    one_epoch: Params,
    validation_seconds: Callable[[SessionRecommender], float],
    min_probe_s: float = MIN_PROBE_S,
) -> Probe:
    """Fits on the most recent sessions, timed: `probe_size` of them (more for a quick model),
    and a smaller one for the line through the two (`budget.Probe`); `validation_seconds` says
    what scoring the validation day costs the model fitted."""

    def timed_fit(sessions: int) -> tuple[SessionRecommender, float]:
        started = time.perf_counter()
        model = chosen_candidate.make(one_epoch).fit(train[len(train) - sessions :])
        return model, time.perf_counter() - started

    probed = probe_size(len(train))
    probe_model, fit_s = timed_fit(probed)
    smaller = (0, 0.0)
    while fit_s < min_probe_s and probed < len(train):
        smaller = (probed, fit_s)
        probed = min(4 * probed, len(train))
        probe_model, fit_s = timed_fit(probed)
    validation_s = validation_seconds(probe_model)
    if not smaller[0] and probed >= MIN_SMALL_PROBE * 4:
        # A quarter of the sessions, after the larger fit so that one-off set-up costs (first
        # calls, thread pools) land on the larger one and the line errs on the steep side.
        smaller = (probed // 4, timed_fit(probed // 4)[1])
    return Probe(probed, fit_s, validation_s, *smaller)


def _window_within_budget(
    chosen_candidate: Candidate,
    train: list[list[str]],
    validation_sessions: int,
    validation_seconds: Callable[[SessionRecommender], float],
    plan: TrainingPlan,
    training_left_s: float,
    candidates_left: int,
) -> tuple[TrainingWindow, SearchBudget]:
    """Probe the candidate on the most recent sessions, then size its search and refit to its
    allowance (`budget.candidate_allowance`: its fixed costs by the probe and its share of
    `training_left_s` among `candidates_left`, less the probe's time; `budget.fit_window`)."""
    model = chosen_candidate.make()
    is_torch = isinstance(model, TorchSessionRecommender)
    epochs = int(model.epochs) if is_torch else None
    started = time.perf_counter()
    probe = _probe(chosen_candidate, train, {"epochs": 1} if is_torch else {}, validation_seconds)
    probing_s = time.perf_counter() - started
    trials = plan.budget.trials if chosen_candidate.search_space is not None else 1
    allowance_s = candidate_allowance(
        training_left_s, candidates_left, fixed_costs_s(probe, len(train))
    )
    window = fit_window(
        probe,
        len(train),
        validation_sessions,
        epochs if is_torch else None,
        scored_every_epoch=is_torch and plan.patience is not None,
        trials=max(trials, 1),
        allowance_s=max(allowance_s - probing_s, 0.0),
    )
    search_s = min(plan.budget.timeout_s, max(window.allowance_s - window.refit_estimated_s, 1.0))
    return window, SearchBudget(window.trials, search_s)


# Test targets each model is timed on before the test day is sized to the budget.
TIMED_TEST_TARGETS = 512


def _test_sample_within_budget(
    models: dict[str, RecommenderOrFactory],
    served: str,
    test_targets: NextItemTargets,
    budget: TimeBudget,
    plan: TrainingPlan,
) -> EvaluationSample:
    """Time each model on a few hundred test targets, then size the test sample to what is left
    of the budget (`budget.evaluation_sample`)."""
    size = min(TIMED_TEST_TARGETS, len(test_targets))
    rows = np.sort(np.random.default_rng(plan.seed).choice(len(test_targets), size, replace=False))
    seconds_per_target = {}
    for name, model in models.items():
        started = time.perf_counter()
        rank_targets(model, test_targets, plan.k, rows=rows.tolist())
        seconds_per_target[name] = (time.perf_counter() - started) / size
    return evaluation_sample(
        seconds_per_target,
        served,
        targets_per_session=len(test_targets) / max(test_targets.sessions, 1),
        available_sessions=test_targets.sessions,
        remaining_s=budget.remaining_s(),
    )


SERVING_PROBES, SERVING_WARMUP = 40, 5


def member_serving_milliseconds(
    models: Sequence[SessionRecommender], prefixes: Sequence[Sequence[str]]
) -> np.ndarray:
    """Each model's median milliseconds to score one prefix alone, as the endpoint does: torch
    on one thread, the models taking turns on each prefix as the blend's call does (each then
    reads its own tables from beyond the caches). `SERVING_PROBES` prefixes spread over
    `prefixes`, after `SERVING_WARMUP` untimed ones; timed on the machine the retrain runs on."""
    spread = np.linspace(0, len(prefixes) - 1, SERVING_WARMUP + SERVING_PROBES).astype(int)
    timings = np.zeros((len(spread), len(models)))
    with torch_threads(1):
        for row, position in enumerate(spread):
            for column, model in enumerate(models):
                began = time.perf_counter()
                model.probabilities([prefixes[position]])
                timings[row, column] = time.perf_counter() - began
    return np.median(timings[SERVING_WARMUP:], axis=0) * 1000


def _train_blend(
    trained: dict[str, TrainedCandidate],
    validation_targets: NextItemTargets,
    reciprocal_ranks_of: Callable[..., np.ndarray],
    settings: Params,
    fallback: SessionRecommender | None = None,
) -> TrainedCandidate:
    """The blend of every trained candidate, weighed on the validation day.

    Its validation score must not come from the targets its weights were fitted on, so it is
    cross-fitted: the validation sessions fall in two halves (by position), the weights fitted on
    one half score the other. The blend served takes the weights fitted on the whole day and the
    members refitted on train + validation, without those weighing under `min_weight`.

    Members the others make redundant are left out first (`members_worth_keeping`: at most
    `pruning_tolerance` nats of validation log-likelihood per target lost in all): every member
    is scored per request. With `serving_budget_ms`, the pruning starts from the likeliest
    blend of the members whose scoring times per request (`member_serving_milliseconds`) add up
    to at most the budget. Which ones go is decided on the whole validation day, before the
    cross-fitting; a choice among a handful of subsets, not a fit of the weights it scores.
    """
    started = time.perf_counter()
    prior_strength = float(settings.get("prior_strength", 100.0))
    tolerance = float(settings.get("pruning_tolerance", BLEND_PRUNING_TOLERANCE))
    budget = settings.get("serving_budget_ms")
    on_train = BlendRecommender(
        [item.validation_model for item in trained.values()], prior_strength=prior_strength
    )
    prefixes, targets = validation_targets.prefixes, validation_targets.targets
    likelihoods = np.column_stack([item.validation_likelihoods for item in trained.values()])
    buckets = length_buckets([len(prefix) for prefix in prefixes], on_train.bounds)
    n_buckets = len(on_train.bounds) + 1
    names = list(trained)
    costs, timing = None, {}
    if budget is not None:
        budget = float(budget)
        costs = member_serving_milliseconds([trained[name].recommender for name in names], prefixes)
        member_ms = dict(zip(names, costs.round(3).tolist(), strict=True))
        timing = {"serving_budget_ms": budget, "member_ms": member_ms}
        log.info("blend: each member's scoring time per request (ms): %s; budget %g ms",
                 member_ms, budget)  # fmt: skip
    kept, dropped = members_worth_keeping(
        likelihoods, buckets, n_buckets, prior_strength, tolerance, costs, budget
    )
    dropped_members = {names[member]: round(loss, 5) for member, loss in dropped.items()}
    if dropped:
        log.info(
            "blend: left out %s (validation log-likelihood lost per target, in total: %s; "
            "tolerance %g, serving budget %s ms)",
            ", ".join(dropped_members), dropped_members, tolerance, budget,
        )  # fmt: skip
        likelihoods = likelihoods[:, kept]
        on_train = BlendRecommender(
            [trained[names[member]].validation_model for member in kept],
            prior_strength=prior_strength,
        )
    half = np.asarray(validation_targets.session_of_target) % 2
    out_of_fold = np.zeros(len(targets))
    for fold in (0, 1):
        fitted_on, scored = np.flatnonzero(half != fold), np.flatnonzero(half == fold)
        on_train.weights = weights_by_bucket(
            likelihoods[fitted_on], buckets[fitted_on], n_buckets, prior_strength
        )
        out_of_fold[scored] = reciprocal_ranks_of(on_train, scored.tolist())
    weights = weights_by_bucket(likelihoods, buckets, n_buckets, prior_strength)
    served = BlendRecommender(
        [trained[names[member]].recommender for member in kept],
        weights,
        prior_strength=prior_strength,
        fallback=fallback,
    ).without_small_weights(float(settings.get("min_weight", 0.01)))
    on_train.weights = weights
    log.info("blend: validation MRR %.4f (cross-fitted), weights by prefix length %s",
             out_of_fold.mean(), served.described_weights())  # fmt: skip
    return TrainedCandidate(
        name=BLEND,
        params={
            "prior_strength": prior_strength,
            "pruning_tolerance": tolerance,
            "left_out": dropped_members,
            "weights": served.described_weights(),
            **timing,
        },
        validation_mrr=float(out_of_fold.mean()),
        fit_seconds=time.perf_counter() - started,
        recommender=served,
        search=None,
        validation_model=on_train,
        validation_reciprocal_ranks=out_of_fold,
        validation_likelihoods=None,  # the blend is no member of a blend
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
    if outcome.champion_test_mrr is not None and k == outcome.report.k:
        # Scored with the candidates, on the same targets.
        return ChampionComparison(champion_version, outcome.champion_test_mrr, candidate_mrr, k)
    champion_report = evaluate({"champion": champion}, outcome.test_targets, k=k)
    return ChampionComparison(champion_version, champion_report.rows[0].mrr, candidate_mrr, k)


def best_by(rows: Sequence[dict], metric: str, exclude: Sequence[str] = ("oracle",)) -> dict:
    """The row with the highest `metric` among the rows not named in `exclude`."""
    return max((row for row in rows if row["name"] not in exclude), key=lambda row: row[metric])
