import datetime as dt

import dagster as dg
import duckdb
import pandas as pd
import pytest

from recs_platform.definitions import build_definitions
from recs_platform.settings import Settings

DAYS = [dt.date(2026, 11, day) for day in range(1, 5)]


def warehouse_with_training_sessions(data_dir, rows):
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as conn:
        conn.execute("CREATE SCHEMA analytics")
        conn.execute(
            "CREATE TABLE analytics.training_sessions "
            "(session_id VARCHAR, session_date DATE, items VARCHAR[])"
        )
        if rows:
            conn.executemany("INSERT INTO analytics.training_sessions VALUES (?, ?, ?)", rows)


def materialize_dataset(data_dir, **config):
    settings = Settings(env="local", data_dir=data_dir, partitions_start=dt.date(2026, 11, 1))
    definitions = build_definitions(settings)
    job = dg.define_asset_job("dataset_only", selection=["training_dataset"])
    merged = dg.Definitions.merge(definitions, dg.Definitions(jobs=[job]))
    return merged.resolve_job_def("dataset_only").execute_in_process(
        run_config={"ops": {"training_dataset": {"config": config}}}, raise_on_error=False
    )


GOOD_ROWS = [
    ("s1", DAYS[0], ["a", "b"]),
    ("s2", DAYS[1], ["b", "c", "a"]),
    ("s3", DAYS[2], ["c", "d"]),
    ("s4", DAYS[3], ["e", "a"]),
]


def test_the_dataset_is_split_written_and_described(tmp_path):
    warehouse_with_training_sessions(tmp_path, GOOD_ROWS)
    result = materialize_dataset(tmp_path, window_days=4)
    assert result.success
    metadata = result.asset_materializations_for_node("training_dataset")[0].metadata
    assert metadata["window"].value == "2026-11-01 .. 2026-11-05 (end exclusive)"
    assert metadata["vocabulary_size"].value == 5
    assert (metadata["train_sessions"].value, metadata["train_events"].value) == (2, 5)
    assert (metadata["validation_sessions"].value, metadata["test_sessions"].value) == (1, 1)
    folder = tmp_path / "datasets" / "training_dataset"
    assert pd.read_parquet(folder / "test.parquet")["session_id"].tolist() == ["s4"]


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        (("s9", DAYS[1], ["a", None]), "items must be a list of non-empty skus"),
        (("s9", DAYS[1], ["a"]), "greater_than_or_equal_to(2)"),
    ],
)
def test_a_corrupted_input_fails_the_type_check_with_the_rule_named(tmp_path, bad_row, message):
    warehouse_with_training_sessions(tmp_path, [*GOOD_ROWS, bad_row])
    result = materialize_dataset(tmp_path, window_days=4)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert message in str(failure.event_specific_data.error)
    assert not (tmp_path / "datasets" / "training_dataset").exists()


def test_an_empty_warehouse_is_a_clear_failure(tmp_path):
    warehouse_with_training_sessions(tmp_path, [])
    result = materialize_dataset(tmp_path)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "training_sessions is empty: build the warehouse first" in str(
        failure.event_specific_data.error
    )


def test_todays_unfinished_day_is_never_the_test_day(tmp_path):
    """The weekly retrain runs at 03:00: sessions of today are left for next week."""
    today = dt.datetime.now(dt.UTC).date()
    days = [today - dt.timedelta(days=back) for back in (3, 2, 1, 0)]
    rows = [(f"s{n}", day, ["a", "b"]) for n, day in enumerate(days)]
    warehouse_with_training_sessions(tmp_path, rows)
    result = materialize_dataset(tmp_path, window_days=3)
    assert result.success
    metadata = result.asset_materializations_for_node("training_dataset")[0].metadata
    assert metadata["window"].value == f"{days[0]} .. {today} (end exclusive)"
    assert metadata["test_sessions"].value == 1
