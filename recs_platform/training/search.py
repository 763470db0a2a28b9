"""Hyperparameter search with Optuna, budgeted by trials and seconds, one MLflow run per trial."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import mlflow
import optuna

from recs_platform.models.base import SessionRecommender
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
    best_params: Params
    best_value: float
    trials: list[dict] = field(default_factory=list)  # params, value, seconds per trial


def search(
    candidate: Candidate,
    train_sessions: Sequence[Sequence[str]],
    validation_score: Callable[[SessionRecommender], float],
    budget: SearchBudget,
    seed: int = 0,
) -> SearchResult:
    """Fits `candidate` on `train_sessions` per trial and maximises `validation_score`.

    The defaults are always the first trial (outside the Optuna study), so the search never
    returns something worse than them on validation. A candidate without a search space, or a
    budget of at most 1 trial, is fitted once with its defaults. Each trial is a nested MLflow
    run when a run is active.
    """
    trials: list[dict] = []

    def fit_and_score(params: Params, trial_number: int) -> float:
        started = time.perf_counter()
        recommender = candidate.make(params).fit(train_sessions)
        value = validation_score(recommender)
        seconds = time.perf_counter() - started
        trials.append({"trial": trial_number, "params": params, "value": value, "seconds": seconds})
        log.info("%s trial %d: validation %.4f in %.1f s %s", candidate.name, trial_number,
                 value, seconds, params)  # fmt: skip
        if mlflow.active_run() is not None:
            with mlflow.start_run(run_name=f"{candidate.name}-trial-{trial_number}", nested=True):
                mlflow.set_tag("candidate", candidate.name)
                mlflow.log_params({**candidate.defaults, **params})
                mlflow.log_metrics({"validation_mrr_20": value, "fit_seconds": seconds})
        return value

    started = time.perf_counter()
    best_params, best_value = {}, fit_and_score({}, 0)
    if candidate.search_space is None or budget.trials <= 1:
        return SearchResult(candidate.name, best_params, best_value, trials)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    remaining_s = budget.timeout_s - (time.perf_counter() - started)
    if remaining_s > 0:
        study.optimize(
            lambda trial: fit_and_score(candidate.search_space(trial), trial.number + 1),
            n_trials=budget.trials - 1,
            timeout=remaining_s,
        )
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if completed and study.best_value > best_value:
        best_params, best_value = dict(study.best_params), float(study.best_value)
    return SearchResult(candidate.name, best_params, best_value, trials)
