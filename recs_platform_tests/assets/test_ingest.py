import datetime as dt

import dagster as dg
import duckdb

from recs_platform.definitions import INGEST_JOB, build_definitions
from recs_platform.settings import Settings
from recs_platform_tests.factories import DAY, make_event, write_good_file, write_raw_file


def run_partition(tmp_path, day=DAY, **run_config):
    settings = Settings(env="local", data_dir=tmp_path, partitions_start=dt.date(2026, 11, 1))
    job = build_definitions(settings).resolve_job_def(INGEST_JOB)
    config = {"ops": {"raw_events": {"config": run_config}}} if run_config else None
    return job.execute_in_process(
        partition_key=day.isoformat(), instance=dg.DagsterInstance.ephemeral(), run_config=config
    )


def check_result(result):
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_materializing_a_day_loads_it_and_reports_what_it_did(tmp_path):
    write_good_file(tmp_path / "landing", [make_event(n) for n in range(40)])
    result = run_partition(tmp_path)
    assert result.success
    metadata = result.asset_materializations_for_node("raw_events")[0].metadata
    assert metadata["dagster/row_count"].value == 40
    assert metadata["rejected_rows"].value == 0
    assert metadata["files"].value == 1
    assert metadata["bytes"].value > 0
    assert check_result(result).passed
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM raw.events").fetchone() == (40,)


def test_the_check_warns_when_too_many_lines_are_rejected(tmp_path):
    write_good_file(tmp_path / "landing", [make_event(n) for n in range(18)])
    write_raw_file(tmp_path / "landing", DAY, "junk.jsonl", b"junk\nmore junk\n")
    result = run_partition(tmp_path, max_rejected_share=0.05)
    assert result.success
    evaluation = check_result(result)
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["rejected_share"].value == 0.1
    assert run_partition(tmp_path, max_rejected_share=0.2).get_asset_check_evaluations()[0].passed


def test_an_empty_day_succeeds_and_says_so(tmp_path):
    result = run_partition(tmp_path, day=dt.date(2026, 11, 5))
    assert result.success
    metadata = result.asset_materializations_for_node("raw_events")[0].metadata
    assert metadata["empty_day"].value is True
    assert metadata["dagster/row_count"].value == 0
