"""Hyperparameter search with Optuna, budgeted by trials and seconds, one MLflow run per trial."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import mlflow
import optuna

from recs_platform.models.base import SessionRecommender
from recs_platform.models.torch_common import TorchSessionRecommender
from recs_platform.training.candidates import Candidate, Params

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchBudget:
    trials: int = 4
    timeout_s: float = 300.0

    def __post_init__(self) -> None:
        if self.trials < 0 or self.timeout_s <= 0:
            raise ValueError(f"a search budget needs trials >= 0 and timeout_s > 0, got {self}")


@dataclass
class SearchResult:
    candidate: str
    best_params: Params  # with the epoch count early stopping found, for the refit
    best_value: float
    trials: list[dict] = field(default_factory=list)  # params, value, seconds per trial
    best_model: SessionRecommender | None = None  # the best trial's model, fitted on train


def fit_on_train(
    recommender: SessionRecommender,
    train_sessions: Sequence[Sequence[str]],
    validation_score: Callable[[SessionRecommender], float],
    patience: int | None,
    deadline: float | None = None,
) -> tuple[SessionRecommender, Params]:
    """Fit; a torch model with `patience` is scored every epoch and stops early (it keeps its
    best epoch). Returns the model and what the refit must reuse: the epoch count found.
    A torch model stops at `deadline` (`fit_before`); the others fit whole."""
    if patience is None or not isinstance(recommender, TorchSessionRecommender):
        return fit_before(recommender, train_sessions, deadline), {}
    recommender.fit(train_sessions, validation=validation_score, patience=patience,
                    deadline=deadline)  # fmt: skip
    return recommender, {"epochs": recommender.best_epoch()}


def fit_before(
    recommender: SessionRecommender,
    sessions: Sequence[Sequence[str]],
    deadline: float | None,
) -> SessionRecommender:
    """Fit; a model that `fits_within_deadline` stops at `deadline` (a `time.perf_counter()`
    value) and keeps what it learnt: a torch model inside an epoch if need be, the shopper
    kinds between the rounds of their refinement. The other count models fit in one pass,
    quick and predictable beside an epoch, and fit whole."""
    if deadline is not None and recommender.fits_within_deadline:
        return recommender.fit(sessions, deadline=deadline)
    return recommender.fit(sessions)


def stopped_at_deadline(recommender: SessionRecommender | None) -> bool:
    """Whether `recommender`'s last fit was cut by its deadline."""
    return bool(getattr(recommender, "stopped_at_deadline", False))


def search(
    candidate: Candidate,
    train_sessions: Sequence[Sequence[str]],
    validation_score: Callable[[SessionRecommender], float],
    budget: SearchBudget,
    seed: int = 0,
    patience: int | None = None,
    hard_deadline: bool = False,
) -> SearchResult:
    """Fits `candidate` on `train_sessions` per trial and maximises `validation_score`.

    The defaults are always the first trial (outside the Optuna study), so the search never
    returns something worse than them on validation. A candidate without a search space, or a
    budget of at most 1 trial, is fitted once with its defaults. With `patience`, each torch
    trial is scored after every epoch and stops once `patience` epochs in a row did not beat its
    best; its epoch count (the candidate's `epochs` is then the most it may train) is the best
    epoch's, kept in the trial's parameters so that the refit trains as long. Each trial is a
    nested MLflow run when a run is active.

    With `hard_deadline`, `budget.timeout_s` also bounds each torch fit (`fit_before`): a trial
    that would run past it stops there and is scored as it is; else it only keeps Optuna from
    starting trials after it.
    """
    trials: list[dict] = []
    best_model: list[SessionRecommender] = []  # the best trial's model so far (one at most)
    started = time.perf_counter()
    deadline = started + budget.timeout_s if hard_deadline else None

    def fit_and_score(params: Params, trial_number: int) -> float:
        started = time.perf_counter()
        recommender, found = fit_on_train(
            candidate.make(params), train_sessions, validation_score, patience, deadline
        )
        params.update(found)
        # An early-stopped model was scored at its best epoch already, and keeps that epoch.
        value = recommender.best_validation() if found else validation_score(recommender)
        seconds = time.perf_counter() - started
        trials.append({"trial": trial_number, "params": params, "value": value, "seconds": seconds})
        if value > max((trial["value"] for trial in trials[:-1]), default=-float("inf")):
            best_model[:] = [recommender]
        log.info("%s trial %d: validation %.4f in %.1f s %s", candidate.name, trial_number,
                 value, seconds, params)  # fmt: skip
        if mlflow.active_run() is not None:
            with mlflow.start_run(run_name=f"{candidate.name}-trial-{trial_number}", nested=True):
                mlflow.set_tag("candidate", candidate.name)
                mlflow.log_params({**candidate.defaults, **params})
                mlflow.log_metrics({"validation_mrr_20": value, "fit_seconds": seconds})
        return value

    best_params: Params = {}
    best_value = fit_and_score(best_params, 0)
    if candidate.search_space is None or budget.trials <= 1:
        return SearchResult(candidate.name, best_params, best_value, trials, best_model[0])

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    remaining_s = budget.timeout_s - (time.perf_counter() - started)
    if remaining_s > 0:
        study.optimize(
            lambda trial: fit_and_score(candidate.search_space(trial), trial.number + 1),
            n_trials=budget.trials - 1,
            timeout=remaining_s,
        )
    best = max(trials, key=lambda trial: trial["value"])  # the first of equals: the defaults
    return SearchResult(candidate.name, dict(best["params"]), best["value"], trials, best_model[0])
