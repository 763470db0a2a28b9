"""`make demo`: simulate the default shop and materialize the asset graph locally."""

from __future__ import annotations

import os

import dagster as dg

from recs_platform.definitions import INGEST_JOB, WAREHOUSE_JOB, build_definitions
from recs_platform.events.landing import list_local_dates, list_local_partition
from recs_platform.settings import Settings


def _simulated_already(settings: Settings, seed: int) -> bool:
    marker = f"simulator-seed{seed}-"
    return any(
        landing_file.key.rsplit("/", 1)[-1].startswith(marker)
        for day in list_local_dates(settings.landing_dir)
        for landing_file in list_local_partition(settings.landing_dir, day)
    )


def run_demo(settings: Settings) -> int:
    from recs_platform.simulation import ShopConfig, simulate_to_landing

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
        result = job.execute_in_process(partition_key=day.isoformat(), instance=instance)
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

    from recs_platform.evaluation.protocol import metric_key, shop_headroom

    print("\n== 4. The shop's ceiling: its exact oracle against the simple baselines")
    headroom = shop_headroom(config)
    # Accuracy at the main k only; `recs-platform headroom` shows every metric.
    print(headroom.format_table([metric_key("hr", headroom.k), metric_key("mrr", headroom.k)]))
    print(
        "\nDone. See raw_events, its partitions and runs in the Dagster UI: make dev\n"
        f'Query the warehouse: .venv/bin/python -c "import duckdb; '
        f"print(duckdb.connect('{settings.warehouse_path}', read_only=True)"
        ".sql('from raw.events limit 5'))\""
    )
    return 0
