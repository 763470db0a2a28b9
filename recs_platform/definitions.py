"""The one Definitions object. Settings are read and resources chosen when Dagster loads it."""

from __future__ import annotations

import dagster as dg

from recs_platform.assets.dashboard import build_shop_dashboard_asset
from recs_platform.assets.dataset import build_training_dataset_asset
from recs_platform.assets.endpoint import build_recommendation_endpoint_asset
from recs_platform.assets.ingest import build_raw_events_asset
from recs_platform.assets.model import build_session_model_asset
from recs_platform.assets.transform import build_dbt_assets
from recs_platform.automation import build_landing_sensor
from recs_platform.partitions import daily_partitions
from recs_platform.resources import resources_for
from recs_platform.settings import Settings
from recs_platform.simulation.generator import SHOP_CONFIG_FILE

INGEST_JOB = "ingest_raw_events"
WAREHOUSE_JOB = "build_warehouse"
TRAINING_JOB = "train_session_model"
DASHBOARD_JOB = "refresh_shop_dashboard"
DEPLOY_JOB = "deploy_recommendation_endpoint"


def build_definitions(settings: Settings, resources: dict | None = None) -> dg.Definitions:
    """The definitions of one environment; `resources` replaces the environment's defaults."""
    daily = daily_partitions(settings.partitions_start)
    warehouse_kind = "duckdb" if settings.env == "local" else "snowflake"
    raw_events = build_raw_events_asset(daily, warehouse_kind)
    ingest_job = dg.define_asset_job(
        INGEST_JOB, selection=dg.AssetSelection.assets(raw_events), partitions_def=daily
    )
    dbt_assets = build_dbt_assets(settings.env, warehouse_kind, daily)
    training_dataset = build_training_dataset_asset(
        "duckdb_writer" if warehouse_kind == "duckdb" else None
    )
    shop_dashboard = build_shop_dashboard_asset(
        "duckdb_writer" if warehouse_kind == "duckdb" else None
    )
    # The simulator leaves its configuration beside the local landing files: the oracle's ceiling.
    shop_config = settings.landing_dir / SHOP_CONFIG_FILE if settings.env == "local" else None
    session_model = build_session_model_asset(shop_config)
    if settings.env == "local":
        recommendation_endpoint = build_recommendation_endpoint_asset({"mlflow", "python"})
    else:  # SageMaker calls fail transiently (throttling, capacity): retry with backoff
        recommendation_endpoint = build_recommendation_endpoint_asset(
            {"mlflow", "sagemaker"},
            dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL),
        )
    warehouse_job = dg.define_asset_job(
        WAREHOUSE_JOB,
        selection=dg.AssetSelection.assets(*dbt_assets[0].keys),
        partitions_def=daily,
        description="The daily dbt models of a range of days, in one run (dbt tests as checks).",
    )
    training_job = dg.define_asset_job(
        TRAINING_JOB,
        selection=dg.AssetSelection.assets(training_dataset, session_model),
        description="The training window's dataset, then the candidates trained, tracked, "
        "registered and (if they win) promoted.",
    )
    deploy_job = dg.define_asset_job(
        DEPLOY_JOB,
        selection=dg.AssetSelection.assets(recommendation_endpoint),
        description="The MLflow champion deployed to the endpoint, then probed.",
    )
    dashboard_job = dg.define_asset_job(
        DASHBOARD_JOB, selection=dg.AssetSelection.assets(shop_dashboard)
    )
    return dg.Definitions(
        assets=[
            raw_events,
            *dbt_assets,
            training_dataset,
            shop_dashboard,
            session_model,
            recommendation_endpoint,
        ],
        jobs=[ingest_job, warehouse_job, training_job, deploy_job, dashboard_job],
        sensors=[build_landing_sensor(INGEST_JOB, daily)],
        resources=resources if resources is not None else resources_for(settings),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Settings.from_env())
