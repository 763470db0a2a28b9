"""`training_dataset`: the last N days of `training_sessions`, split by time, pandera-checked."""

import datetime as dt

import dagster as dg
import pandas as pd
from dagster_pandera import pandera_schema_to_dagster_type

from recs_platform.datasets.training import (
    SPLITS,
    TrainingSessionsSchema,
    TrainingWindow,
    build_training_dataset,
)
from recs_platform.resources import Warehouse

TrainingDatasetType = pandera_schema_to_dagster_type(TrainingSessionsSchema)


class TrainingDatasetConfig(dg.Config):
    window_days: int = 14
    validation_days: int = 1
    test_days: int = 1
    end_date: str | None = None
    """Exclusive end of the window (YYYY-MM-DD); default: the day after the newest session, but
    never later than today (UTC), whose partition is still incomplete."""


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
            # Today's partition is still filling (the weekly retrain runs at 03:00): a test day
            # of a few hours would judge the models on the night's shoppers alone.
            today = dt.datetime.now(dt.UTC).date()
            end = min(newest + dt.timedelta(days=1), today)
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
