"""Every shop family x every candidate: MRR@20 against the oracle, the model served, the regret.

For each family of the simulator (`ShopConfig(family=...)` at the default size: 2,000 items,
3,000 sessions a day, 14 days, seed 7), the product-view sessions of at least two views are split
as `training_dataset` splits its 14-day window (train: days 1-12, validation: day 13, test: day
14), and `session_model`'s core (`train_and_choose`) runs with every default candidate, the
blend included, and the family's oracle as the ceiling, under one of two budgets:

- `demo`: what `make demo` gives session_model (2 search trials per tunable candidate, the
  defaults and one, at most 120 s of search each; torch candidates at most 3 epochs);
- `production`: the weekly retrain's settings, `SessionModelConfig`'s defaults (4 trials, 300 s
  of search per candidate, each torch candidate's own epoch count as its cap).

Both stop torch candidates early (patience 2). Per family: each candidate's test MRR@20 and
its ratio to the oracle's, its validation MRR with the 95% session-bootstrap interval, the
candidate the selection rule served, the best on test, the regret (1 - served / best test MRR),
and the goals of issue 21 §4. `--quick` runs a tiny shop (300 items, 400 sessions a day, 6
days, torch candidates at most 2 epochs) to smoke-test the script.

Usage: .venv/bin/python benchmarks/bench_model_suite.py [--budget demo|production]
       [--families intent ordered ...] [--quick]
"""

from __future__ import annotations

import argparse
import json
import logging
import time

from report import RESULTS

from recs_platform.assets.model import SessionModelConfig
from recs_platform.datasets.training import SPLITS, TrainingWindow
from recs_platform.demo import SEARCH_SECONDS_PER_CANDIDATE, TORCH_CANDIDATES
from recs_platform.simulation import FAMILY_NAMES, ShopConfig, simulate_sessions
from recs_platform.simulation.oracle import Oracle
from recs_platform.training.candidates import CANDIDATE_NAMES
from recs_platform.training.pipeline import DatasetSplits, TrainingPlan, train_and_choose
from recs_platform.training.search import SearchBudget

K = 20
BASELINES = ("popularity", "markov", "vsknn")
DEFAULT_FAMILY = "intent"
QUICK_SHOP = {"n_items": 300, "n_categories": 10, "sessions_per_day": 400, "days": 6}


def plan_for(budget: str, quick: bool) -> TrainingPlan:
    # One intra-op thread: on the shared 2-core machine two threads of a small network are up
    # to 10x slower whenever the other core is busy (benchmarks/README.md, "Speed").
    overrides = {name: {"num_threads": 1} for name in TORCH_CANDIDATES}
    if budget == "demo" or quick:
        for settings in overrides.values():
            settings["epochs"] = 2 if quick else 3
    if budget == "demo":
        return TrainingPlan(
            budget=SearchBudget(2, SEARCH_SECONDS_PER_CANDIDATE), overrides=overrides
        )
    defaults = SessionModelConfig()
    return TrainingPlan(
        candidates=tuple(defaults.candidates),
        budget=SearchBudget(defaults.search_trials, defaults.search_timeout_s),
        overrides=overrides,
        k=defaults.k,
        seed=defaults.seed,
        patience=defaults.patience,
    )


def splits_of(config: ShopConfig) -> DatasetSplits:
    """The sessions of >= 2 views, split by `training_dataset`'s window over the shop's days."""
    window = TrainingWindow(config.end, days=config.days)
    by_split: dict[str, list] = {split: [] for split in SPLITS}
    for session in simulate_sessions(config):
        if len(session.skus) >= 2:
            by_split[window.split_of(session.date)].append((session.date, list(session.skus)))
    return DatasetSplits(**by_split)


def run_family(family: str, budget: str, quick: bool) -> dict:
    config = ShopConfig(family=family, **(QUICK_SHOP if quick else {}))
    started = time.perf_counter()
    splits = splits_of(config)
    outcome = train_and_choose(splits, plan_for(budget, quick), Oracle(config).ranker)
    seconds = time.perf_counter() - started
    oracle_mrr = outcome.report.row("oracle").mrr
    rows = {}
    for row in outcome.table():
        name = row["name"]
        rows[name] = {
            "test_mrr": row[f"mrr_{K}"],
            "test_hr": row[f"hr_{K}"],
            "mrr_vs_oracle": row[f"mrr_{K}"] / oracle_mrr,
            "validation_mrr": row["validation_mrr"],
            "validation_interval": (
                [row["validation_mrr_low"], row["validation_mrr_high"]]
                if row["validation_mrr_low"] is not None
                else None
            ),
            "within_noise": row["within_noise"],
            "fit_seconds": row["fit_seconds"],
        }
    served = outcome.chosen.name
    baselines = [name for name in BASELINES if name in rows]
    best_baseline = max(baselines, key=lambda name: rows[name]["test_mrr"]) if baselines else None
    result = {
        "family": family,
        "shop": {
            "items": config.n_items,
            "sessions_per_day": config.sessions_per_day,
            "days": config.days,
            "seed": config.seed,
        },  # fmt: skip
        "sessions": {
            "train": len(splits.train),
            "validation": len(splits.validation),
            "test": len(splits.test),
        },  # fmt: skip
        "test_targets": len(outcome.test_targets),
        "seconds": seconds,
        "served": served,
        "leader_on_validation": outcome.selection.leader,
        "best_on_test": outcome.best_on_test,
        "regret": outcome.regret,
        "selection": outcome.selection.describe(),
        "blend_weights": outcome.candidates["blend"].params["weights"]
        if "blend" in outcome.candidates
        else None,
        "epochs_found": {
            name: item.params.get("epochs")
            for name, item in outcome.candidates.items()
            if name in TORCH_CANDIDATES
        },
        "rows": rows,
    }
    served_mrr = rows[served]["test_mrr"]
    result["goals"] = {
        "served_vs_oracle (moonshot >= 0.9)": served_mrr / oracle_mrr,
        "served_vs_best_baseline (floor >= 1.0)": served_mrr / rows[best_baseline]["test_mrr"]
        if best_baseline
        else None,
        "regret (floor <= 0.02)": outcome.regret,
    }
    if family == DEFAULT_FAMILY:
        result["goals"]["default shop: served_vs_oracle (>= 0.93)"] = served_mrr / oracle_mrr
        result["goals"]["default shop: served_vs_best_baseline (>= 1.05)"] = result["goals"][
            "served_vs_best_baseline (floor >= 1.0)"
        ]
    print_family(result)
    return result


def print_family(result: dict) -> None:
    print(
        f"\n{result['family']}: {result['test_targets']:,} test targets, "
        f"{result['seconds']:.0f} s; served {result['served']} (validation leader "
        f"{result['leader_on_validation']}, best on test {result['best_on_test']}, regret "
        f"{result['regret']:.2%})",
        flush=True,
    )
    print(f"  {'model':<16}{'test MRR':>9}{'/oracle':>9}{'val MRR':>9}{'val 95% interval':>19}")
    for name, row in result["rows"].items():
        interval = row["validation_interval"]
        print(
            f"  {name:<16}{row['test_mrr']:>9.4f}{row['mrr_vs_oracle']:>9.3f}"
            + (f"{row['validation_mrr']:>9.4f}" if row["validation_mrr"] is not None else " " * 9)
            + (f"{interval[0]:>10.4f}-{interval[1]:.4f}" if interval else "")
            + ("  <- served" if name == result["served"] else ""),
            flush=True,
        )
    for goal, value in result["goals"].items():
        print(f"  {goal}: {value:.3f}" if value is not None else f"  {goal}: -")


def summary_table(results: dict) -> str:
    """Markdown: family x candidate (test MRR@20 / oracle's), then served, regret."""
    candidates = [
        name for name in CANDIDATE_NAMES if any(name in r["rows"] for r in results.values())
    ]
    header = "| family | " + " | ".join(candidates) + " | served | served / oracle | regret |"
    lines = [header, "|" + "---|" * (len(candidates) + 4)]
    for family, result in results.items():
        cells = []
        for name in candidates:
            row = result["rows"].get(name)
            text = f"{row['mrr_vs_oracle']:.3f}" if row else "-"
            cells.append(f"**{text}**" if name == result["best_on_test"] else text)
        served = result["rows"][result["served"]]["mrr_vs_oracle"]
        lines.append(
            f"| {family} | " + " | ".join(cells)
            + f" | {result['served']} | {served:.3f} | {result['regret']:.1%} |"
        )  # fmt: skip
    return "\n".join(lines)


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", choices=("demo", "production"), default="demo")
    parser.add_argument("--families", nargs="+", default=list(FAMILY_NAMES), choices=FAMILY_NAMES)
    parser.add_argument("--quick", action="store_true", help="a tiny shop: a smoke test")
    parser.add_argument("--verbose", action="store_true", help="log training progress")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(message)s"
    )
    RESULTS.mkdir(exist_ok=True)
    stem = f"model_suite_{args.budget}{'_quick' if args.quick else ''}"
    for family in args.families:
        # One file per family, so families can run apart (side by side on the two cores).
        result = run_family(family, args.budget, args.quick)
        (RESULTS / f"{stem}_{family}.json").write_text(json.dumps(result, indent=2) + "\n")
    results = {
        family: json.loads(path.read_text())
        for family in FAMILY_NAMES
        if (path := RESULTS / f"{stem}_{family}.json").is_file()
    }
    table = summary_table(results)
    print(f"\nMRR@20 / oracle's, budget {args.budget}, every family measured so far (bold: best "
          f"on the test day; results/{stem}_*.json)\n{table}")  # fmt: skip
    return results


if __name__ == "__main__":
    main()
