"""The whole graph at a large shop's size: each stage's wall time, peak memory and rows.

Stages, in order, each in a fresh process (so that its peak resident memory is its own):
simulate the shop into a landing zone, `raw_events` for every day, the dbt models of every day
in one run (a one-run backfill), `training_dataset`, `session_model` with its production defaults
(the weekly retrain's: every candidate, the time budget, the sampled evaluation), the deployment
of the champion to the local endpoint, and a serving check against it (sequential
/invocations with sessions of the test day). Each stage's resident memory, sampled every half
second, goes to `rss-STAGE.tsv` in the data folder, and the time of its peak to the figures.
Dagster runs every asset, as in production.

Sizes: the Coveo-sized month by default (`ShopConfig.preset("coveo")`); `--quick` a small shop
for a smoke test (a few minutes; session_model gets a
one-minute budget there, so that it trims); `--scale F` the Coveo-sized shop's traffic times F.
Usage: .venv/bin/python benchmarks/bench_scale.py [--quick | --scale F] [--data-dir DIR] [--keep]
       [--session-model-config JSON]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# One thread for numpy's BLAS and torch, set before anything imports them: two threads on two
# shared cores are slower, and the stages run one at a time anyway.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

STAGES = ("simulate", "raw_events", "dbt", "training_dataset", "session_model", "deploy", "serve")
SERVING_REQUESTS = 500
QUICK_BUDGET_MINUTES = 1.0
ENDPOINT_PORT = "18092"
RSS_SAMPLE_SECONDS = 0.5


def shop_config(size: str, scale: float):
    from recs_platform.simulation import ShopConfig

    if size == "quick":
        return ShopConfig(
            family="mixed", days=8, sessions_per_day=1500, n_items=3000, n_categories=30
        )
    return ShopConfig.preset("coveo", scale=scale)


def _settings(data_dir: Path):
    import datetime as dt

    from recs_platform.settings import Settings
    from recs_platform.simulation import ShopConfig
    from recs_platform.simulation.generator import SHOP_CONFIG_FILE

    start = ShopConfig.read(data_dir / "landing" / SHOP_CONFIG_FILE).start
    env = {
        "RECS_ENV": "local",
        "RECS_DATA_DIR": str(data_dir),
        "RECS_PARTITIONS_START": (start - dt.timedelta(days=1)).isoformat(),
        "RECS_ENDPOINT_PORT": ENDPOINT_PORT,
    }
    os.environ.update(env)
    return Settings.from_env(env)


def _materialized(result, node: str) -> dict:
    found = result.asset_materializations_for_node(node)
    if not found:
        raise RuntimeError(f"{node} did not materialize")
    return {key: value.value for key, value in found[0].metadata.items()}


def run_stage(
    stage: str, data_dir: Path, size: str, scale: float, model_config: dict | None = None
) -> dict:
    """One stage in this process; returns its rows and figures."""
    if stage == "simulate":
        from recs_platform.simulation import simulate_to_landing

        config = shop_config(size, scale)
        report = simulate_to_landing(config, data_dir / "landing")
        return {
            "rows": report.events,
            "sessions": report.sessions,
            "product_views": report.product_views,
            "products": config.n_items,
            "days": config.days,
            "family": config.family,
        }

    import dagster as dg

    from recs_platform.definitions import (
        DEPLOY_JOB,
        INGEST_JOB,
        TRAINING_JOB,
        WAREHOUSE_JOB,
        build_definitions,
    )
    from recs_platform.events.landing import list_local_dates

    settings = _settings(data_dir)
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    days = [day.isoformat() for day in list_local_dates(settings.landing_dir)]
    warehouse = defs.resources["warehouse"]

    if stage == "raw_events":
        job = defs.resolve_job_def(INGEST_JOB)
        for day in days:
            job.execute_in_process(partition_key=day, instance=instance)
        ((rows, history_days),) = warehouse.query(
            "SELECT count(*), count(DISTINCT event_date) FROM raw.events"
        )
        return {"rows": rows, "partitions": history_days}
    if stage == "dbt":
        result = defs.resolve_job_def(WAREHOUSE_JOB).execute_in_process(
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": days[0],
                "dagster/asset_partition_range_end": days[-1],
            },
        )
        checks = result.get_asset_check_evaluations()
        ((sessions,),) = warehouse.query("SELECT count(*) FROM analytics.sessions")
        ((training,),) = warehouse.query("SELECT count(*) FROM analytics.training_sessions")
        return {
            "rows": sessions,
            "training_sessions": training,
            "dbt_tests_passed": f"{sum(check.passed for check in checks)} of {len(checks)}",
        }
    training = defs.resolve_job_def(TRAINING_JOB)
    from recs_platform.simulation import ShopConfig
    from recs_platform.simulation.generator import SHOP_CONFIG_FILE

    # The shop's days, ending with its last one: the partition after it holds only the
    # stragglers of its last night (a test day of one session).
    shop = ShopConfig.read(settings.landing_dir / SHOP_CONFIG_FILE)
    window = {"window_days": shop.days, "end_date": shop.end.isoformat()}
    dataset_config = {"training_dataset": {"config": window}}
    if stage == "training_dataset":
        result = training.execute_in_process(
            instance=instance,
            run_config={"ops": dataset_config},
            asset_selection=[dg.AssetKey("training_dataset")],
        )
        metadata = _materialized(result, "training_dataset")
        return {"rows": metadata["dagster/row_count"], **_plain(metadata)}
    if stage == "session_model":
        # The whole job: the dataset again (seconds), then the model with its defaults; the
        # smoke test gives it a minute, so that the budget trims there too.
        defaults = {"time_budget_minutes": QUICK_BUDGET_MINUTES} if size == "quick" else {}
        model_config = {**defaults, **(model_config or {})}
        run_config = {"ops": {**dataset_config, "session_model": {"config": model_config}}}
        result = training.execute_in_process(
            instance=instance, run_config=run_config, raise_on_error=False
        )
        metadata = _materialized(result, "session_model")
        rows = {row["name"]: row for row in metadata["evaluation_rows"]}
        chosen = rows[metadata["chosen_candidate"]]
        oracle = rows.get("oracle")
        return {
            "rows": metadata["test_targets"],
            "chosen": metadata["chosen_candidate"],
            "promoted": metadata["promoted"],
            "test_mrr_20": chosen["mrr_20"],
            "test_mrr_20_interval": metadata.get("test_mrr_20_interval"),
            "oracle_mrr_20": oracle["mrr_20"] if oracle else None,
            "served_over_oracle": chosen["mrr_20"] / oracle["mrr_20"] if oracle else None,
            "candidates": {
                name: {"mrr_20": row["mrr_20"], "fit_seconds": row.get("fit_seconds")}
                for name, row in rows.items()
            },
            "evaluated_sessions": metadata["evaluated_sessions"],
            "time_budget_used_minutes": metadata.get("time_budget_used_minutes"),
            "training_windows": metadata.get("training_windows"),
        }
    if stage == "deploy":
        result = defs.resolve_job_def(DEPLOY_JOB).execute_in_process(instance=instance)
        metadata = _materialized(result, "recommendation_endpoint")
        return {"rows": 1, **_plain(metadata)}
    if stage == "serve":
        return serving_check(settings, warehouse)
    raise ValueError(f"unknown stage {stage!r}")


def _plain(metadata: dict) -> dict:
    return {key: value for key, value in metadata.items() if isinstance(value, int | float | str)}


def serving_check(settings, warehouse) -> dict:
    """Sequential /invocations with the test day's sessions; latency percentiles; then stop."""
    import httpx
    import numpy as np

    from recs_platform.serving.local_endpoint import LocalEndpoint

    sessions = [
        list(items)
        for (items,) in warehouse.query(
            "SELECT items FROM analytics.training_sessions "
            f"ORDER BY session_date DESC, session_id LIMIT {SERVING_REQUESTS}"
        )
    ]
    latencies, errors = [], 0
    try:
        with httpx.Client(base_url=settings.endpoint_url, timeout=10) as client:
            for items in sessions:
                started = time.perf_counter()
                response = client.post("/invocations", json={"session": items[:-1], "k": 20})
                latencies.append((time.perf_counter() - started) * 1000)
                errors += response.status_code != 200
    finally:
        LocalEndpoint(settings.endpoint_dir, port=settings.endpoint_port).stop()
    if errors:
        raise RuntimeError(f"{errors} of {len(latencies)} requests were not answered with 200")
    p50, p99 = np.percentile(latencies, [50, 99])
    return {"rows": len(latencies), "errors": errors, "p50_ms": p50, "p99_ms": p99}


def measure(
    stage: str, data_dir: Path, size: str, scale: float, model_config: dict | None = None
) -> dict:
    """Run `stage` in a child process: wall seconds, peak RSS (its own), and what it returned."""
    out = data_dir / f"stage-{stage}.json"
    command = [sys.executable, __file__, "--stage", stage, "--data-dir", str(data_dir)]
    command += ["--scale", str(scale)] + (["--quick"] if size == "quick" else [])
    command += ["--session-model-config", json.dumps(model_config or {})]
    started = time.perf_counter()
    child = subprocess.Popen(command)
    timeline: list[tuple[float, int]] = []
    sampler = threading.Thread(target=_sample_rss, args=(child.pid, timeline), daemon=True)
    sampler.start()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    sampler.join()
    _write_timeline(data_dir / f"rss-{stage}.tsv", timeline)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"stage {stage} failed (exit {os.waitstatus_to_exitcode(status)})")
    figures = json.loads(out.read_text())
    # ru_maxrss is in KiB on Linux.
    peak = {"seconds": round(seconds, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024)}
    if timeline:  # when in the stage the sampled peak came: its log says what ran then
        at, _ = max(timeline, key=lambda sample: sample[1])
        peak["sampled_peak_at"] = time.strftime("%H:%M:%S", time.localtime(at))
    return {**peak, **figures}


def _sample_rss(pid: int, timeline: list[tuple[float, int]]) -> None:
    """The child's resident memory (MB) every RSS_SAMPLE_SECONDS until it ends (Linux /proc)."""
    status = Path(f"/proc/{pid}/status")
    while True:
        try:
            lines = status.read_text().splitlines()
        except OSError:  # gone (or not Linux): the timeline ends here
            return
        rss = next((line.split()[1] for line in lines if line.startswith("VmRSS:")), None)
        if rss is None:  # a zombie, reaped next
            return
        timeline.append((time.time(), int(rss) // 1024))
        time.sleep(RSS_SAMPLE_SECONDS)


def _write_timeline(path: Path, timeline: list[tuple[float, int]]) -> None:
    rows = [f"{time.strftime('%H:%M:%S', time.localtime(at))}\t{mb}" for at, mb in timeline]
    path.write_text("time\trss_mb\n" + "".join(row + "\n" for row in rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small shop: a smoke test")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="the Coveo-sized shop's traffic times this"
    )
    parser.add_argument("--data-dir", type=Path, help="work here (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the data folder afterwards")
    parser.add_argument(
        "--from-stage",
        choices=STAGES,
        default=STAGES[0],
        help="start at this stage, on the data of an earlier run kept with --keep --data-dir",
    )
    parser.add_argument(
        "--to-stage", choices=STAGES, default=STAGES[-1], help="stop after this stage"
    )
    parser.add_argument(
        "--session-model-config",
        type=json.loads,
        default={},
        help="session_model settings over its defaults, as JSON: '{\"time_budget_minutes\": 25}'",
    )
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = "quick" if args.quick else "full"

    if args.stage:
        figures = run_stage(args.stage, args.data_dir, size, args.scale, args.session_model_config)
        (args.data_dir / f"stage-{args.stage}.json").write_text(json.dumps(figures, default=str))
        return 0

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "size": size,
        "scale": args.scale if size == "full" else None,
        "session_model_config": args.session_model_config,
    }
    stages = STAGES[STAGES.index(args.from_stage) : STAGES.index(args.to_stage) + 1]
    for stage in STAGES[: STAGES.index(args.from_stage)]:  # measured by the earlier run
        results[stage] = json.loads((data_dir / f"measured-{stage}.json").read_text())
    try:
        for stage in stages:
            print(f"== {stage}", flush=True)
            results[stage] = measure(stage, data_dir, size, args.scale, args.session_model_config)
            (data_dir / f"measured-{stage}.json").write_text(json.dumps(results[stage]))
            print(json.dumps(results[stage], default=str)[:400], flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    measured = [stage for stage in STAGES if stage in results]
    graph = [stage for stage in measured if stage not in ("simulate", "serve")]
    results["graph_seconds"] = round(sum(results[stage]["seconds"] for stage in graph), 1)
    results["graph_minutes"] = round(results["graph_seconds"] / 60, 1)
    results["peak_rss_mb"] = max(results[stage]["peak_rss_mb"] for stage in measured)
    sys.path.insert(0, str(Path(__file__).parent))
    from report import save_and_print

    name = "scale_quick" if size == "quick" else f"scale_x{args.scale:g}"
    save_and_print(name, "The whole graph at a large shop's size", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
