"""`training_dataset`: the last N days of `training_sessions`, split by time, pandera-checked."""

import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd
from dagster_aws.s3 import S3Resource
from dagster_pandera import pandera_schema_to_dagster_type

from recs_platform.datasets.training import (
    SPLITS,
    DatasetStore,
    FolderStore,
    S3Store,
    TrainingSessionsSchema,
    TrainingWindow,
    build_training_dataset,
    load_training_dataset,
    save_training_dataset,
)
from recs_platform.resources import Warehouse

TrainingDatasetType = pandera_schema_to_dagster_type(TrainingSessionsSchema)


class TrainingDatasetConfig(dg.Config):
    window_days: int = 14
    validation_days: int = 1
    test_days: int = 1
    end_date: str | None = None
    """Exclusive end of the window (YYYY-MM-DD); default: the day after the newest session."""


def _store_output(store: DatasetStore, context: dg.OutputContext, dataset: pd.DataFrame) -> None:
    written = save_training_dataset(dataset, dataset.attrs["vocabulary"], store)
    context.add_output_metadata({"files": dg.MetadataValue.json(written)})


def _load_input(store: DatasetStore) -> pd.DataFrame:
    dataset, vocabulary = load_training_dataset(store)
    dataset.attrs["vocabulary"] = vocabulary
    return dataset


class TrainingDatasetIOManager(dg.ConfigurableIOManager):
    """One parquet file per split plus `vocabulary.json`, in a folder per asset."""

    base_dir: str

    def _folder(self, context) -> Path:
        return Path(self.base_dir) / "_".join(context.asset_key.path)

    def handle_output(self, context: dg.OutputContext, dataset: pd.DataFrame) -> None:
        _store_output(FolderStore(self._folder(context)), context, dataset)

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        return _load_input(FolderStore(self._folder(context)))


class S3TrainingDatasetIOManager(dg.ConfigurableIOManager):
    """The same files on S3, under `<prefix>datasets/<asset key path>/` of the bucket (beside the
    landing zone's `<prefix>events/` and the reports' `<prefix>reports/`)."""

    s3: dg.ResourceDependency[S3Resource]
    bucket: str
    prefix: str = ""

    def key_prefix(self, asset_key: dg.AssetKey) -> str:
        root = self.prefix.strip("/")
        return "/".join([*([root] if root else []), "datasets", *asset_key.path]) + "/"

    def _store(self, context) -> S3Store:
        return S3Store(self.s3.get_client(), self.bucket, self.key_prefix(context.asset_key))

    def handle_output(self, context: dg.OutputContext, dataset: pd.DataFrame) -> None:
        _store_output(self._store(context), context, dataset)

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        return _load_input(self._store(context))


def build_training_dataset_asset(
    pool: str | None, retry_policy: dg.RetryPolicy | None = None
) -> dg.AssetsDefinition:
    """`pool`: the DuckDB file takes one process at a time, readers included."""

    @dg.asset(
        deps=["training_sessions"],
        pool=pool,
        retry_policy=retry_policy,
        group_name="dataset",
        kinds={"python", "pandas", "parquet"},
        io_manager_key="dataset_io_manager",
        dagster_type=TrainingDatasetType,
        description=(
            "Product-view sessions of the last window_days days of training_sessions, split by "
            "time (train, then validation, then test days), items encoded with a vocabulary of "
            "every sku in the window. Checked with a pandera schema before anything downstream "
            "runs."
        ),
    )
    def training_dataset(
        context: dg.AssetExecutionContext, config: TrainingDatasetConfig, warehouse: Warehouse
    ) -> pd.DataFrame:
        if config.end_date:
            end = dt.date.fromisoformat(config.end_date)
        else:
            ((newest,),) = warehouse.query(
                "SELECT max(session_date) FROM analytics.training_sessions"
            )
            if newest is None:
                raise dg.Failure("analytics.training_sessions is empty: build the warehouse first")
            end = newest + dt.timedelta(days=1)
        window = TrainingWindow(end, config.window_days, config.validation_days, config.test_days)
        rows = warehouse.query(
            "SELECT session_id, session_date, items FROM analytics.training_sessions "
            "WHERE session_date >= ? AND session_date < ?",
            [window.start, window.end_exclusive],
        )
        sessions = pd.DataFrame(rows, columns=["session_id", "session_date", "items"])
        dataset, vocabulary = build_training_dataset(sessions, window)
        per_split = dataset.groupby("split")["length"].agg(["count", "sum"])
        metadata = {
            "window": f"{window.start} .. {window.end_exclusive} (end exclusive)",
            "vocabulary_size": len(vocabulary),
            "dagster/row_count": len(dataset),
        }
        for split in SPLITS:
            sessions_in_split, events = per_split.loc[split] if split in per_split.index else (0, 0)
            metadata[f"{split}_sessions"] = int(sessions_in_split)
            metadata[f"{split}_events"] = int(events)
        context.add_output_metadata(metadata)
        return dataset

    return training_dataset
