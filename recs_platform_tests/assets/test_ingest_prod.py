"""`raw_events` with the production resources (S3 on moto, Snowflake on fakesnow) gives the same
table as the local path for the same landing files."""

import datetime as dt

import dagster as dg
import duckdb

from recs_platform.definitions import INGEST_JOB, build_definitions
from recs_platform.events.landing import list_local_partition
from recs_platform.events.s3_landing import upload_landing_folder
from recs_platform.resources import S3LandingZone, SnowflakeWarehouse, resources_for
from recs_platform.settings import Settings
from recs_platform.warehouse.duckdb_raw import load_raw_events_partition
from recs_platform_tests.factories import (
    BAD_LINES,
    DAY,
    make_event,
    truncated_gzip,
    write_good_file,
    write_raw_file,
)
from recs_platform_tests.fakes import s3_resource_for

ROWS = (
    "SELECT event_id, session_id, user_id, event_type, product_action, product_sku, url,"
    " client_ts, server_ts, source, event_date, source_file, line_number"
    " FROM raw.events ORDER BY source_file, line_number"
)
REJECTED = (
    "SELECT event_date, source_file, line_number, reason FROM raw.rejected_events"
    " ORDER BY source_file, line_number"
)


def test_the_production_path_loads_the_same_table_as_the_local_one(
    tmp_path, moto_endpoint, s3_client, s3_bucket, snowflake_resource, snowflake_conn
):
    landing = tmp_path / "landing"
    write_good_file(landing, [make_event(n, note={"a": n}) for n in range(30)])
    write_raw_file(landing, DAY, "bad.jsonl", b"\n".join(line for line, _ in BAD_LINES) + b"\n")
    write_raw_file(landing, DAY, "cut.jsonl.gz", truncated_gzip([make_event(n) for n in range(50)]))
    upload_landing_folder(s3_client, landing, s3_bucket, "shop/")

    settings = Settings(env="prod", data_dir=tmp_path, partitions_start=dt.date(2026, 11, 1))
    resources = {
        **resources_for(settings),
        "landing": S3LandingZone(
            s3=s3_resource_for(moto_endpoint), bucket=s3_bucket, prefix="shop/"
        ),
        "warehouse": SnowflakeWarehouse(snowflake=snowflake_resource),
    }
    job = build_definitions(settings, resources).resolve_job_def(INGEST_JOB)
    result = job.execute_in_process(
        partition_key=DAY.isoformat(), instance=dg.DagsterInstance.ephemeral()
    )
    assert result.success
    metadata = result.asset_materializations_for_node("raw_events")[0].metadata
    assert metadata["files"].value == 3
    assert metadata["corrupt_files"].value == ["events/date=2026-11-03/cut.jsonl.gz"]

    with duckdb.connect() as local:
        local_load = load_raw_events_partition(
            local, landing, DAY, list_local_partition(landing, DAY)
        )
        local_rows = local.execute(ROWS).fetchall()
        local_rejected = local.execute(REJECTED).fetchall()
    assert metadata["dagster/row_count"].value == local_load.rows == len(local_rows)
    assert metadata["rejected_rows"].value == local_load.rejected_rows == len(BAD_LINES) + 1

    cursor = snowflake_conn.cursor()
    cursor.execute(ROWS)
    prod_rows = [tuple(row) for row in cursor.fetchall()]
    cursor.execute(REJECTED)
    prod_rejected = [tuple(row) for row in cursor.fetchall()]
    assert prod_rows == local_rows
    assert prod_rejected == local_rejected
