"""`session_model`: train the candidates, track them in MLflow, register one, promote a winner."""

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pandas as pd

from recs_platform.execution import training_op_tags
from recs_platform.resources import MlflowTracking
from recs_platform.simulation import ShopConfig
from recs_platform.simulation.oracle import Oracle
from recs_platform.training.candidates import CANDIDATE_NAMES
from recs_platform.training.pipeline import DatasetSplits, TrainingOutcome, TrainingPlan
from recs_platform.training.retrain import markdown_table, retrain
from recs_platform.training.search import SearchBudget

CHECKLIST_CHECK = "checklist_invariants"
CHAMPION_CHECK = "beats_champion"


class SessionModelConfig(dg.Config):
    candidates: list[str] = list(CANDIDATE_NAMES)
    search_trials: int = 4
    """Optuna trials per tunable candidate (the defaults are the first)."""
    search_timeout_s: float = 300.0
    """Seconds of search per candidate, at most."""
    overrides: dict[str, dict] = {}
    """Parameters per candidate that replace its defaults, e.g. {"gru4rec": {"epochs": 3}}."""
    k: int = 20
    seed: int = 0
    patience: int | None = 2
    """Torch candidates stop once this many epochs in a row did not beat their best validation
    MRR, and the refit trains for the best epoch count; null: every epoch of `epochs`."""
    shop_config_path: str | None = None
    """A simulated shop's `shop.json`: evaluate its oracle on the same targets as the ceiling."""
    time_budget_minutes: float | None = 60.0
    """The whole retrain (search, refit, blend, evaluation) in about this many minutes: a
    candidate that cannot train on the whole window in its share trains with fewer trials, then
    on the most recent sessions that fit (metadata `training_windows`), and the test day is
    scored on as many sessions as fit what is left (metadata `test_sample`); null: unbounded."""
    evaluation_sessions: int | None = 10_000
    """The validation and test days are scored on at most this many of their sessions each (a
    seeded sample; the served model's test MRR then has its 95% interval); null: all."""


def _scale_metadata(outcome: TrainingOutcome, k: int) -> dict:
    """What the time budget and the evaluation sample did, when they did anything."""
    metadata: dict = {
        "evaluated_sessions": f"validation {outcome.validation_sessions_evaluated:,} of "
        f"{outcome.validation_sessions:,}, test {outcome.test_sessions_evaluated:,} of "
        f"{outcome.test_sessions:,}",
    }
    if outcome.chosen_test_interval is not None:
        low, high = outcome.chosen_test_interval
        metadata[f"test_mrr_{k}_interval"] = f"{low:.4f}-{high:.4f} (95%, sampled test sessions)"
    if outcome.budget_used_s is not None:
        metadata["time_budget_used_minutes"] = round(outcome.budget_used_s / 60, 2)
        metadata["training_windows"] = dg.MetadataValue.json(outcome.windows_summary())
    if outcome.test_sample is not None:
        metadata["test_sample"] = outcome.test_sample.describe()
    return metadata


@contextmanager
def _platform_logs_in(run_log: logging.Logger) -> Iterator[None]:
    """The platform's own log lines (the budget's progress, each epoch, each candidate) into the
    run's log, where the Dagster UI shows them, at INFO and above."""

    class Forward(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            run_log.log(record.levelno, record.getMessage())

    platform = logging.getLogger("recs_platform")
    handler, level = Forward(logging.INFO), platform.level
    platform.addHandler(handler)
    platform.setLevel(logging.INFO)
    try:
        yield
    finally:
        platform.removeHandler(handler)
        platform.setLevel(level)


def _oracle_for(config: SessionModelConfig, default_shop_config: Path | None):
    path = Path(config.shop_config_path) if config.shop_config_path else default_shop_config
    if path is None or not path.is_file():
        return None
    return Oracle(ShopConfig.read(path)).ranker


def build_session_model_asset(default_shop_config: Path | None) -> dg.AssetsDefinition:
    """`default_shop_config`: where the simulator leaves its `shop.json` in this environment."""

    @dg.asset(
        group_name="model",
        kinds={"pytorch", "mlflow"},
        # In production each step is its own pod: this one on a GPU node (recs_platform.execution).
        op_tags=training_op_tags(),
        check_specs=[
            dg.AssetCheckSpec(
                CHECKLIST_CHECK,
                asset="session_model",
                blocking=True,
                description="Behavioural invariants of the proposed model (exclude-seen, "
                "determinism, popularity fallback, sorted scores).",
            ),
            dg.AssetCheckSpec(
                CHAMPION_CHECK,
                asset="session_model",
                blocking=True,
                description="The new model beats the current champion on the same test targets; "
                "only then does alias `champion` move to it. A model that loses but passed its "
                "checklist becomes the `challenger` (the A/B test decides): then it only warns, "
                "so that the endpoint still deploys it.",
            ),
        ],
        description=(
            "Trains the candidate recommenders on training_dataset (Optuna search and early "
            "stopping on the validation days, refit on train + validation, a blend of them "
            "weighed on the validation days), evaluates them and the simulator's oracle on the "
            "test days, logs everything to MLflow, registers the candidate chosen by the "
            "one-standard-error rule on the bootstrapped validation MRR as a version of "
            "`session-recommender`, and moves alias `champion` to it when its checklist passes "
            "and it beats the current champion."
        ),
    )
    def session_model(
        context: dg.AssetExecutionContext,
        config: SessionModelConfig,
        mlflow_tracking: MlflowTracking,
        training_dataset: pd.DataFrame,
    ) -> dg.MaterializeResult:
        plan = TrainingPlan(
            candidates=tuple(config.candidates),
            budget=SearchBudget(config.search_trials, config.search_timeout_s),
            overrides=config.overrides,
            k=config.k,
            seed=config.seed,
            patience=config.patience,
            time_budget_s=config.time_budget_minutes * 60
            if config.time_budget_minutes is not None
            else None,
            evaluation_sessions=config.evaluation_sessions,
        )
        mlflow_tracking.activate()
        with _platform_logs_in(context.log):
            done = retrain(
                DatasetSplits.from_frame(training_dataset),
                plan,
                _oracle_for(config, default_shop_config),
                run_name=f"session_model-{context.run.run_id[:8]}",
                tags={"dagster_run_id": context.run.run_id},
            )
        outcome, comparison, logged = done.outcome, done.comparison, done.logged

        k = plan.k
        table = outcome.table()
        failures = [failure.as_dict() for failure in outcome.checklist.failures()]
        return dg.MaterializeResult(
            metadata={
                "mlflow_run_id": done.mlflow_run_id,
                "model_uri": logged.model_uri,
                "model_version": logged.version,
                "chosen_candidate": outcome.chosen.name,
                "champion_version": done.champion_version,
                "promoted": done.promoted,
                "became_challenger": done.challenger,
                f"test_mrr_{k}": comparison.candidate_mrr,
                f"test_hr_{k}": outcome.report.row(outcome.chosen.name).as_dict()[f"hr_{k}"],
                "test_targets": len(outcome.test_targets),
                "skipped_unseen_targets": outcome.report.skipped_unknown,
                "selection": outcome.selection.describe(),
                "selection_rule": outcome.selection.rule,
                "best_on_test": outcome.best_on_test,
                "selection_regret": outcome.regret,
                **_scale_metadata(outcome, k),
                "evaluation": dg.MetadataValue.md(markdown_table(table, k)),
                "evaluation_rows": dg.MetadataValue.json(json.loads(json.dumps(table))),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=CHECKLIST_CHECK,
                    passed=outcome.checklist.passed,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={
                        "failures": dg.MetadataValue.json(failures),
                        "checklist": dg.MetadataValue.json(outcome.checklist.as_dict()),
                    },
                ),
                dg.AssetCheckResult(
                    check_name=CHAMPION_CHECK,
                    passed=comparison.beats_champion,
                    # A new challenger must still reach the endpoint (its A/B test decides), so
                    # losing offline then only warns and leaves the deployment unblocked.
                    severity=dg.AssetCheckSeverity.WARN
                    if done.challenger
                    else dg.AssetCheckSeverity.ERROR,
                    description=comparison.describe(),
                    metadata={
                        "previous_champion": str(comparison.champion_version),
                        f"champion_mrr_{k}": comparison.champion_mrr
                        if comparison.champion_mrr is not None
                        else float("nan"),
                        f"candidate_mrr_{k}": comparison.candidate_mrr,
                    },
                ),
            ],
        )

    return session_model
