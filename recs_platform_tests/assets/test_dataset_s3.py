"""`training_dataset` through the production IO manager (S3 on moto): the same files as the local
manager, under `<prefix>datasets/training_dataset/`, read back identical; a clear error where none
was written."""

import datetime as dt

import dagster as dg
import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource

from recs_platform.assets.dataset import build_training_dataset_asset
from recs_platform.datasets.training import SPLITS, TrainingWindow, build_training_dataset
from recs_platform.resources import (
    DuckDBWarehouse,
    S3TrainingDatasetIOManager,
    TrainingDatasetIOManager,
)
from recs_platform_tests.assets.test_dataset import (
    DAYS,
    GOOD_ROWS,
    warehouse_with_training_sessions,
)
from recs_platform_tests.fakes import s3_resource_for

PREFIX = "shop/"
FOLDER = "shop/datasets/training_dataset/"


def materialize_and_read(data_dir, io_manager, selection=None):
    """`training_dataset` written through `io_manager` and read back by a downstream asset."""
    loaded = []

    @dg.asset
    def reads_the_dataset(training_dataset: pd.DataFrame) -> None:
        loaded.append(training_dataset)

    warehouse = DuckDBWarehouse(duckdb=DuckDBResource(database=str(data_dir / "warehouse.duckdb")))
    config = {"training_dataset": {"config": {"window_days": 4}}}
    result = dg.materialize(
        [build_training_dataset_asset(None), reads_the_dataset],
        resources={"warehouse": warehouse, "dataset_io_manager": io_manager},
        run_config={"ops": config if selection is None else {}},
        instance=dg.DagsterInstance.ephemeral(),
        selection=selection,
        raise_on_error=False,
    )
    return result, loaded


def expected_dataset():
    rows = pd.DataFrame(GOOD_ROWS, columns=["session_id", "session_date", "items"])
    return build_training_dataset(rows, TrainingWindow(DAYS[-1] + dt.timedelta(days=1), days=4))


def test_the_prod_manager_round_trips_the_dataset_through_s3(
    tmp_path, moto_endpoint, s3_client, s3_bucket
):
    warehouse_with_training_sessions(tmp_path, GOOD_ROWS)
    manager = S3TrainingDatasetIOManager(
        s3=s3_resource_for(moto_endpoint), bucket=s3_bucket, prefix=PREFIX
    )
    result, (loaded,) = materialize_and_read(tmp_path, manager)
    assert result.success

    names = [f"{split}.parquet" for split in SPLITS] + ["vocabulary.json"]
    listed = s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert sorted(entry["Key"] for entry in listed) == sorted(FOLDER + name for name in names)
    metadata = result.asset_materializations_for_node("training_dataset")[0].metadata
    assert metadata["files"].value == {
        **{split: f"s3://{s3_bucket}/{FOLDER}{split}.parquet" for split in SPLITS},
        "vocabulary": f"s3://{s3_bucket}/{FOLDER}vocabulary.json",
    }
    assert not (tmp_path / "datasets").exists(), "nothing on the local disk"

    expected, vocabulary = expected_dataset()
    pd.testing.assert_frame_equal(loaded, expected)
    assert loaded.attrs["vocabulary"] == vocabulary == ["a", "b", "c", "d", "e"]
    assert loaded.attrs["vocabulary_size"] == 5

    # The same bytes as the local manager writes: one serialization for both.
    local_dir = tmp_path / "local"
    local_dir.mkdir()
    warehouse_with_training_sessions(local_dir, GOOD_ROWS)
    local_result, (local_loaded,) = materialize_and_read(
        local_dir, TrainingDatasetIOManager(base_dir=str(local_dir / "datasets"))
    )
    assert local_result.success
    pd.testing.assert_frame_equal(loaded, local_loaded)
    for name in names:
        stored = s3_client.get_object(Bucket=s3_bucket, Key=FOLDER + name)["Body"].read()
        assert stored == (local_dir / "datasets" / "training_dataset" / name).read_bytes(), name


@pytest.mark.parametrize("where", ["local", "s3"])
def test_reading_a_dataset_never_written_names_where_it_looked(tmp_path, request, where):
    warehouse_with_training_sessions(tmp_path, GOOD_ROWS)
    if where == "s3":
        moto_endpoint = request.getfixturevalue("moto_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        manager = S3TrainingDatasetIOManager(
            s3=s3_resource_for(moto_endpoint), bucket=bucket, prefix=PREFIX
        )
        location = f"s3://{bucket}/{FOLDER}"
    else:
        manager = TrainingDatasetIOManager(base_dir=str(tmp_path / "datasets"))
        location = str(tmp_path / "datasets" / "training_dataset")
    result, loaded = materialize_and_read(tmp_path, manager, selection=["reads_the_dataset"])
    assert not result.success and loaded == []
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert f"no training dataset at {location}: materialize training_dataset first" in str(
        failure.event_specific_data.error
    )


def test_the_key_prefix_follows_the_landing_prefix():
    key = dg.AssetKey(["training_dataset"])
    for prefix, expected in [
        ("", "datasets/"),
        ("shop/", "shop/datasets/"),
        ("/a/b", "a/b/datasets/"),
    ]:
        manager = S3TrainingDatasetIOManager(
            s3=s3_resource_for("http://unused"), bucket="b", prefix=prefix
        )
        assert manager.key_prefix(key) == f"{expected}training_dataset/"
    nested = dg.AssetKey(["ml", "training_dataset"])
    manager = S3TrainingDatasetIOManager(s3=s3_resource_for("http://unused"), bucket="b")
    assert manager.key_prefix(nested) == "datasets/ml/training_dataset/"
