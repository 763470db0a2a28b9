"""A retrain as one MLflow run, what `session_model` does without Dagster: train the candidates
and choose one (`pipeline.train_and_choose`), log everything (params, per-model metrics, the
table, the selection, the checklist, plots), register the chosen model as a new version of
`session-recommender`, compare it with the champion on the same test targets, and move alias
`champion` to it when its checklist passes and it wins (retiring alias `challenger`), else alias
`challenger` to it when its checklist passes: the endpoint then serves it to a configured share
of sessions beside the champion (training/tracking.py). A version that fails its checklist
changes no alias.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import mlflow

from recs_platform.models.base import SessionRecommender
from recs_platform.training import tracking
from recs_platform.training.pipeline import (
    ChampionComparison,
    DatasetSplits,
    TrainingOutcome,
    TrainingPlan,
    compare_with_champion,
    train_and_choose,
)


@dataclass(frozen=True)
class Retrain:
    outcome: TrainingOutcome
    mlflow_run_id: str
    logged: tracking.LoggedRecommender
    comparison: ChampionComparison  # against `comparison.champion_version`, the one before
    promoted: bool  # alias `champion` moved to the new version
    champion_version: str | None  # after the run
    challenger: bool = False  # alias `challenger` moved to the new version


def retrain(
    splits: DatasetSplits,
    plan: TrainingPlan,
    oracle_for_day: Callable[[dt.date], SessionRecommender] | None = None,
    run_name: str = "session_model",
    tags: dict[str, str] | None = None,
) -> Retrain:
    """Train, log, register and maybe promote, in one MLflow run of the active experiment."""
    client = mlflow.MlflowClient()
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.set_tags(tags or {})
        # The champion is scored with the candidates, on the same test targets and within
        # the same time budget.
        champion = tracking.champion_version(client)
        champion_model = (
            tracking.load_registered(f"models:/{tracking.REGISTERED_MODEL}/{champion}")
            if champion is not None
            else None
        )
        outcome = train_and_choose(splits, plan, oracle_for_day, champion_model)
        log_outcome(outcome, plan)
        example = [items for _, items in splits.test[:3]]
        logged = tracking.log_and_register(outcome.chosen.recommender, example)
        comparison = compare_with_champion(outcome, champion_model, champion)
        mlflow.log_dict(
            {"champion_version": champion, "champion_mrr": comparison.champion_mrr,
             "candidate_mrr": comparison.candidate_mrr,
             "beats_champion": comparison.beats_champion},
            "evaluation/champion_comparison.json",
        )  # fmt: skip
        promoted = outcome.checklist.passed and comparison.beats_champion
        challenger = outcome.checklist.passed and not promoted
        if promoted:
            tracking.promote(logged.version, client)
        elif challenger:
            tracking.make_challenger(logged.version, client)
        mlflow.set_tags(
            {
                "promoted_to_champion": str(promoted).lower(),
                "became_challenger": str(challenger).lower(),
            }
        )
    return Retrain(
        outcome,
        run.info.run_id,
        logged,
        comparison,
        promoted,
        tracking.champion_version(client),
        challenger,
    )


def markdown_table(rows: list[dict], k: int) -> str:
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


def log_outcome(outcome: TrainingOutcome, plan: TrainingPlan) -> None:
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
    if outcome.test_sample is not None:
        mlflow.set_tag("test_sample", outcome.test_sample.describe())
        mlflow.log_dict(outcome.windows_summary(), "training/windows.json")
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
    mlflow.log_text(markdown_table(outcome.table(), plan.k), "evaluation/test_metrics.md")
    mlflow.log_dict(outcome.checklist.as_dict(), "checklist/checklist.json")
    mlflow.log_metric("checklist_passed", float(outcome.checklist.passed))
    mlflow.log_figure(metrics_figure(outcome.table(), plan.k), "evaluation/mrr_hr.png")


def metrics_figure(rows: list[dict], k: int):
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
