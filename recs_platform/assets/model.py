"""`session_model`: train the candidates, track them in MLflow, register one, promote a winner."""

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import mlflow
import pandas as pd

from recs_platform.execution import training_op_tags
from recs_platform.resources import MlflowTracking
from recs_platform.simulation import ShopConfig
from recs_platform.simulation.oracle import Oracle
from recs_platform.training import tracking
from recs_platform.training.candidates import CANDIDATE_NAMES
from recs_platform.training.pipeline import (
    DatasetSplits,
    TrainingOutcome,
    TrainingPlan,
    compare_with_champion,
    train_and_choose,
)
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
    on the most recent sessions that fit (metadata `training_windows`); null: unbounded."""
    evaluation_sessions: int | None = 10_000
    """The validation and test days are scored on at most this many of their sessions each (a
    seeded sample; the served model's test MRR then has its 95% interval); null: all."""


def _markdown_table(rows: list[dict], k: int) -> str:
    columns = [
        ("model", "name"),
        (f"HR@{k}", f"hr_{k}"),
        (f"MRR@{k}", f"mrr_{k}"),
        ("HR@10", "hr_10"),
        ("MRR@10", "mrr_10"),
        (f"coverage@{k}", f"coverage_{k}"),
        (f"popularity bias@{k}", f"popularity_bias_{k}"),
        ("validation MRR", "validation_mrr"),
        ("95% interval", "validation_interval"),
        ("fit s", "fit_seconds"),
    ]
    lines = [
        "| " + " | ".join(title for title, _ in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in rows:
        cells = []
        for _, key in columns:
            value = row.get(key)
            if key == "name" and row.get("chosen"):
                value = f"**{value}** (chosen)"
            if key == "validation_interval" and row.get("validation_mrr_low") is not None:
                value = f"{row['validation_mrr_low']:.4f}-{row['validation_mrr_high']:.4f}"
                value += " (within noise of the best)" if row.get("within_noise") else ""
            cells.append(f"{value:.4f}" if isinstance(value, float) else str(value or ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _log_outcome(outcome: TrainingOutcome, plan: TrainingPlan) -> None:
    """Params, metrics, the table, the checklist and plots into the active MLflow run."""
    chosen = outcome.chosen
    mlflow.set_tags({"chosen_candidate": chosen.name, "candidates": ",".join(plan.candidates)})
    mlflow.log_params({f"{chosen.name}.{key}": value for key, value in chosen.params.items()})
    mlflow.log_params(
        {
            "train_sessions": outcome.train_sessions,
            "test_sessions": outcome.test_sessions,
            "test_targets": len(outcome.test_targets),
            "search_trials": plan.budget.trials,
            "search_timeout_s": plan.budget.timeout_s,
            "time_budget_s": plan.time_budget_s,
            "evaluation_sessions": plan.evaluation_sessions,
            "test_sessions_evaluated": outcome.test_sessions_evaluated,
        }
    )
    if outcome.budget_used_s is not None:
        mlflow.log_metric("time_budget_used_s", outcome.budget_used_s)
        mlflow.log_dict(
            {name: {"window": window.describe(), "sessions": window.sessions,
                    "available_sessions": window.available_sessions, "trials": window.trials}
             for name, window in outcome.windows.items()},
            "training/windows.json",
        )  # fmt: skip
    for row in outcome.table():
        for key, value in row.items():
            if isinstance(value, float):
                mlflow.log_metric(f"{row['name']}.{key}", value)
    for name, trained in outcome.candidates.items():
        for step, entry in enumerate(getattr(trained.recommender, "training_log", []) or []):
            numbers = {key: value for key, value in entry.items() if isinstance(value, float)}
            mlflow.log_metrics({f"{name}.train.{key}": v for key, v in numbers.items()}, step=step)
    mlflow.log_metrics({"selection_regret": outcome.regret})
    mlflow.set_tags(
        {"selection_rule": outcome.selection.rule, "best_on_test": outcome.best_on_test}
    )
    mlflow.log_dict(outcome.selection.as_dict(), "selection/validation_scores.json")
    mlflow.log_dict({"rows": outcome.table()}, "evaluation/test_metrics.json")
    mlflow.log_text(_markdown_table(outcome.table(), plan.k), "evaluation/test_metrics.md")
    mlflow.log_dict(outcome.checklist.as_dict(), "checklist/checklist.json")
    mlflow.log_metric("checklist_passed", float(outcome.checklist.passed))
    mlflow.log_figure(_metrics_figure(outcome.table(), plan.k), "evaluation/mrr_hr.png")


def _metrics_figure(rows: list[dict], k: int):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.5))
    names = [row["name"] for row in rows]
    positions = range(len(rows))
    axis.bar([p - 0.2 for p in positions], [row[f"hr_{k}"] for row in rows], 0.4, label=f"HR@{k}")
    axis.bar([p + 0.2 for p in positions], [row[f"mrr_{k}"] for row in rows], 0.4, label=f"MRR@{k}")
    axis.set_xticks(list(positions), names)
    axis.set_ylim(0, 1)
    axis.set_title("test split: every candidate on the same targets")
    axis.legend()
    figure.tight_layout()
    plt.close(figure)
    return figure


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
        metadata["training_windows"] = dg.MetadataValue.json(
            {
                name: {"window": window.describe(), "trimmed": window.trimmed,
                       "sessions": window.sessions, "trials": window.trials}
                for name, window in outcome.windows.items()
            }
        )  # fmt: skip
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
                "only then does alias `champion` move to it.",
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
        splits = DatasetSplits.from_frame(training_dataset)
        oracle = _oracle_for(config, default_shop_config)
        mlflow_tracking.activate()
        client = mlflow.MlflowClient()
        with mlflow.start_run(run_name=f"session_model-{context.run.run_id[:8]}") as run:
            mlflow.set_tag("dagster_run_id", context.run.run_id)
            with _platform_logs_in(context.log):
                outcome = train_and_choose(splits, plan, oracle)
            _log_outcome(outcome, plan)
            example = [items for _, items in splits.test[:3]]
            logged = tracking.log_and_register(outcome.chosen.recommender, example)
            champion = tracking.champion_version(client)
            champion_model = (
                tracking.load_registered(f"models:/{tracking.REGISTERED_MODEL}/{champion}")
                if champion is not None
                else None
            )
            comparison = compare_with_champion(outcome, champion_model, champion)
            mlflow.log_dict(
                {"champion_version": champion, "champion_mrr": comparison.champion_mrr,
                 "candidate_mrr": comparison.candidate_mrr,
                 "beats_champion": comparison.beats_champion},
                "evaluation/champion_comparison.json",
            )  # fmt: skip
            promoted = outcome.checklist.passed and comparison.beats_champion
            if promoted:
                tracking.promote(logged.version, client)
            mlflow.set_tag("promoted_to_champion", str(promoted).lower())

        k = plan.k
        table = outcome.table()
        failures = [failure.as_dict() for failure in outcome.checklist.failures()]
        return dg.MaterializeResult(
            metadata={
                "mlflow_run_id": run.info.run_id,
                "model_uri": logged.model_uri,
                "model_version": logged.version,
                "chosen_candidate": outcome.chosen.name,
                "champion_version": tracking.champion_version(client),
                "promoted": promoted,
                f"test_mrr_{k}": comparison.candidate_mrr,
                f"test_hr_{k}": outcome.report.row(outcome.chosen.name).as_dict()[f"hr_{k}"],
                "test_targets": len(outcome.test_targets),
                "skipped_unseen_targets": outcome.report.skipped_unknown,
                "selection": outcome.selection.describe(),
                "selection_rule": outcome.selection.rule,
                "best_on_test": outcome.best_on_test,
                "selection_regret": outcome.regret,
                **_scale_metadata(outcome, k),
                "evaluation": dg.MetadataValue.md(_markdown_table(table, k)),
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
                    severity=dg.AssetCheckSeverity.ERROR,
                    description=comparison.describe(),
                    metadata={
                        "previous_champion": str(champion),
                        f"champion_mrr_{k}": comparison.champion_mrr
                        if comparison.champion_mrr is not None
                        else float("nan"),
                        f"candidate_mrr_{k}": comparison.candidate_mrr,
                    },
                ),
            ],
        )

    return session_model
