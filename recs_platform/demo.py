"""`make demo`: simulate the default shop and materialize the asset graph locally."""

from __future__ import annotations

import json
import os
import shlex
import time

import dagster as dg

from recs_platform.definitions import (
    DASHBOARD_JOB,
    DEPLOY_JOB,
    INGEST_JOB,
    TRAINING_JOB,
    WAREHOUSE_JOB,
    build_definitions,
)
from recs_platform.events.landing import list_local_dates, list_local_partition
from recs_platform.settings import Settings
from recs_platform.training.tracking import local_tracking

# Seconds of search per candidate when `search_trials` > 1.
SEARCH_SECONDS_PER_CANDIDATE = 120.0
TORCH_CANDIDATES = ("gru4rec", "sasrec", "gru_transition", "latent_intent")
# The demo's runs print their log from INFO up: Dagster's DEBUG events (run and step start,
# resource init, outputs; about 550 lines) buried the demo's own tables. Every event still goes
# to the run's log in the instance, which the Dagster UI shows (make dev).
CONSOLE_FROM_INFO = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def format_model_table(rows: list[dict], k: int = 20) -> str:
    """Model vs baselines vs oracle on the test days, as the demo prints it."""
    width = max([12, *(len(row["name"]) + 2 for row in rows)])
    lines = [f"{'model':<{width}}{'HR@' + str(k):>8}{'MRR@' + str(k):>8}{'cov@' + str(k):>8}"
             f"{'val MRR':>9}{'val 95% interval':>18}{'fit s':>8}"]  # fmt: skip
    for row in rows:
        validation = row.get("validation_mrr")
        low, high = row.get("validation_mrr_low"), row.get("validation_mrr_high")
        fit = row.get("fit_seconds")
        lines.append(
            f"{row['name']:<{width}}{row[f'hr_{k}']:>8.4f}{row[f'mrr_{k}']:>8.4f}"
            f"{row[f'coverage_{k}']:>8.4f}"
            f"{'' if validation is None else f'{validation:.4f}':>9}"
            f"{'' if low is None else f'{low:.4f}-{high:.4f}':>18}"
            f"{'' if fit is None else f'{fit:.1f}':>8}"
            + ("  <- chosen" if row.get("chosen") else "")
        )
    return "\n".join(lines)


def invocation_command(endpoint_url: str, session: list[str], k: int = 5) -> str:
    """A curl command asking the endpoint for `k` items after `session`. The endpoint takes
    JSON only; curl's `-d` alone would send a form's content type, answered with a 415."""
    body = json.dumps({"session": session, "k": k})
    return (
        f"curl -s {endpoint_url}/invocations -H 'Content-Type: application/json' "
        f"-d {shlex.quote(body)}"
    )


def _simulated_already(settings: Settings, seed: int) -> bool:
    marker = f"simulator-seed{seed}-"
    return any(
        landing_file.key.rsplit("/", 1)[-1].startswith(marker)
        for day in list_local_dates(settings.landing_dir)
        for landing_file in list_local_partition(settings.landing_dir, day)
    )


def run_demo(
    settings: Settings,
    search_trials: int = 2,
    epochs: int | None = 3,
    candidates: list[str] | None = None,
) -> int:
    from recs_platform.simulation import ShopConfig, simulate_to_landing

    started = time.monotonic()
    if settings.env != "local":
        print("The demo runs on the embedded defaults: unset RECS_ENV or set it to local.")
        return 2
    config = ShopConfig()
    print(f"== 1. Simulating the default shop into {settings.landing_dir}")
    if _simulated_already(settings, config.seed):
        print(f"The landing zone already holds the shop with seed {config.seed}; keeping it.")
    else:
        print(simulate_to_landing(config, settings.landing_dir).format_table())

    print(
        f"\n== 2. Materializing raw_events, one partition per day, into {settings.warehouse_path}"
    )
    defs = build_definitions(settings)
    job = defs.resolve_job_def(INGEST_JOB)
    partition_keys = set(job.partitions_def.get_partition_keys())
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else None
    if instance is None:
        print("DAGSTER_HOME is not set: runs go to a temporary instance the UI will not show.")
        instance = dg.DagsterInstance.ephemeral()
    rows = []
    for day in list_local_dates(settings.landing_dir):
        if day.isoformat() not in partition_keys:
            print(
                f"{day}: outside the partitions (RECS_PARTITIONS_START={settings.partitions_start})"
            )
            continue
        result = job.execute_in_process(
            partition_key=day.isoformat(), instance=instance, run_config=CONSOLE_FROM_INFO
        )
        metadata = result.asset_materializations_for_node("raw_events")[0].metadata
        rows.append((day, *(metadata[name].value for name in ("files", "rows", "rejected_rows"))))

    warehouse = defs.resources["warehouse"]
    sessions_by_day = dict(
        warehouse.query(
            "SELECT event_date, count(DISTINCT session_id) FROM raw.events GROUP BY event_date"
        )
    )
    table = [
        (day.isoformat(), files, events, rejected, sessions_by_day.get(day, 0))
        for day, files, events, rejected in rows
    ]
    ((all_sessions,),) = warehouse.query("SELECT count(DISTINCT session_id) FROM raw.events")
    table.append(
        ("total", *(sum(row[column] for row in table) for column in range(1, 4)), all_sessions)
    )
    print(f"\n{'day':<12}{'files':>7}{'events':>10}{'rejected':>10}{'sessions':>10}")
    for day, files, events, rejected, sessions in table:
        print(f"{day:<12}{files:>7}{events:>10,}{rejected:>10,}{sessions:>10,}")
    loaded_days = [row[0].isoformat() for row in rows]
    if loaded_days:
        print(
            f"\n== 3. Building the warehouse with dbt: {loaded_days[0]} .. {loaded_days[-1]}, "
            "one run"
        )
        result = defs.resolve_job_def(WAREHOUSE_JOB).execute_in_process(
            instance=instance,
            run_config=CONSOLE_FROM_INFO,
            tags={
                "dagster/asset_partition_range_start": loaded_days[0],
                "dagster/asset_partition_range_end": loaded_days[-1],
            },
        )
        checks = result.get_asset_check_evaluations()
        print(f"dbt tests as asset checks: {sum(c.passed for c in checks)} of {len(checks)} passed")
        for model in ("sessions", "daily_session_stats", "item_stats", "training_sessions"):
            ((count,),) = warehouse.query(f"SELECT count(*) FROM analytics.{model}")
            print(f"  analytics.{model:<22}{count:>10,} rows")

    print("\n== 4. Training: training_dataset, then session_model (search, MLflow, champion)")
    training = {
        "search_trials": search_trials,
        "search_timeout_s": SEARCH_SECONDS_PER_CANDIDATE,
        # The demo's shop trains in minutes: no time budget, so no probe of each candidate.
        "time_budget_minutes": None,
    }
    if candidates:
        training["candidates"] = candidates
    if epochs:
        chosen = candidates or TORCH_CANDIDATES
        training["overrides"] = {
            name: {"epochs": epochs} for name in TORCH_CANDIDATES if name in chosen
        }
    result = defs.resolve_job_def(TRAINING_JOB).execute_in_process(
        instance=instance,
        run_config={**CONSOLE_FROM_INFO, "ops": {"session_model": {"config": training}}},
        raise_on_error=False,
    )
    materialized = result.asset_materializations_for_node("session_model")
    if not materialized:
        print("session_model did not materialize; see the run in the Dagster UI (make dev).")
        return 1
    metadata = {key: value.value for key, value in materialized[0].metadata.items()}
    print(format_model_table(metadata["evaluation_rows"]))
    print(
        f"chosen: {metadata['selection']}\n(rule: {metadata['selection_rule']}; on the test "
        f"day the best was {metadata['best_on_test']}, regret {metadata['selection_regret']:.1%})"
    )
    for check in result.get_asset_check_evaluations():
        print(f"check {check.check_name}: {'passed' if check.passed else 'FAILED'}"
              + (f" ({check.description})" if check.description else ""))  # fmt: skip
    verdict = "promoted to" if metadata["promoted"] else "not promoted; the champion stays"
    print(
        f"{metadata['chosen_candidate']} registered as session-recommender version "
        f"{metadata['model_version']}, {verdict} champion (version {metadata['champion_version']})"
        + ("; it is the challenger" if metadata.get("became_challenger") else "")
    )
    mlflow_uri, _ = local_tracking(settings.data_dir)
    print(f"MLflow UI: .venv/bin/mlflow ui --backend-store-uri {mlflow_uri}")

    print("\n== 5. Deploying the champion to the local endpoint")
    result = defs.resolve_job_def(DEPLOY_JOB).execute_in_process(
        instance=instance, run_config=CONSOLE_FROM_INFO, raise_on_error=False
    )
    deployed = result.asset_materializations_for_node("recommendation_endpoint")
    if not deployed:
        print("recommendation_endpoint did not materialize; see the run in the Dagster UI.")
        return 1
    endpoint = {key: value.value for key, value in deployed[0].metadata.items()}
    for check in result.get_asset_check_evaluations():
        print(f"check {check.check_name}: {'passed' if check.passed else 'FAILED'}")
    most_viewed = [
        sku
        for (sku,) in warehouse.query(
            "SELECT product_sku FROM analytics.item_stats GROUP BY product_sku "
            "ORDER BY sum(view_count) DESC, product_sku LIMIT 2"
        )
    ]
    print(
        f"Version {endpoint['model_version']} ({endpoint['recommender']}) serves at "
        f"{endpoint['endpoint_url']} ({endpoint['action']}); it keeps running after the demo.\n"
        f"Ask it (a session that viewed the shop's two most viewed products): "
        f"{invocation_command(endpoint['endpoint_url'], most_viewed)}\n"
        "Stop it: .venv/bin/recs-platform serve --stop"
    )
    if endpoint.get("challenger_version"):
        print(
            f"Challenger version {endpoint['challenger_version']} "
            f"({endpoint['challenger_recommender']}) serves beside it to "
            f"{endpoint['challenger_share']:.0%} of sessions (RECS_CHALLENGER_SHARE), and to "
            'any instance that asks for it ("variant": "challenger").'
        )

    print("\n== 6. The shop dashboard")
    result = defs.resolve_job_def(DASHBOARD_JOB).execute_in_process(
        instance=instance, run_config=CONSOLE_FROM_INFO
    )
    report = result.asset_materializations_for_node("shop_dashboard")[0].metadata["report"]
    print(f"Open {report.value} in a browser.")

    rows = {row["name"]: row for row in metadata["evaluation_rows"]}
    chosen = rows[metadata["chosen_candidate"]]
    baselines = [rows[name] for name in ("popularity", "markov", "vsknn") if name in rows]
    best_baseline = max(baselines, key=lambda row: row["mrr_20"]) if baselines else None
    print(f"\n== Summary ({time.monotonic() - started:.0f} s)")
    line = (
        f"model (new version {metadata['model_version']}, {chosen['name']}): "
        f"MRR@20 {chosen['mrr_20']:.4f}"
    )
    if best_baseline is not None:
        line += f", best baseline {best_baseline['name']} {best_baseline['mrr_20']:.4f}"
    torch_rows = [rows[name] for name in TORCH_CANDIDATES if name in rows]
    if torch_rows:
        best_torch = max(torch_rows, key=lambda row: row["mrr_20"])
        line += f", best torch model {best_torch['name']} {best_torch['mrr_20']:.4f}"
    if "oracle" in rows:
        line += f", oracle {rows['oracle']['mrr_20']:.4f} (the ceiling)"
    print(line)
    print(
        f"champion: version {metadata['champion_version']}, serving at {endpoint['endpoint_url']}"
    )
    print(f"dashboard: {report.value}")
    print(
        "Next: make dev (Dagster UI http://127.0.0.1:3000, MLflow UI http://127.0.0.1:5000, the "
        "storefront http://127.0.0.1:8000/shop whose carousel asks the endpoint).\n"
        f'Query the warehouse: .venv/bin/python -c "import duckdb; '
        f"print(duckdb.connect('{settings.warehouse_path}', read_only=True)"
        ".sql('from raw.events limit 5'))\""
    )
    return 0
