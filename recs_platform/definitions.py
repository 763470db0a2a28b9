"""The one Definitions object. Settings are read and resources chosen when Dagster loads it."""

from __future__ import annotations

import datetime as dt
import warnings

import dagster as dg

from recs_platform.assets.ab_test import build_ab_test_report_asset
from recs_platform.assets.dashboard import build_shop_dashboard_asset
from recs_platform.assets.dataset import build_training_dataset_asset
from recs_platform.assets.endpoint import build_recommendation_endpoint_asset
from recs_platform.assets.ingest import build_raw_events_asset
from recs_platform.assets.model import build_session_model_asset
from recs_platform.assets.transform import build_dbt_assets
from recs_platform.automation import (
    build_ab_test_schedule,
    build_daily_schedule,
    build_failure_sensor,
    build_landing_sensor,
    build_weekly_retrain_schedule,
)
from recs_platform.execution import executor_for
from recs_platform.partitions import daily_partitions
from recs_platform.resources import resources_for
from recs_platform.settings import Settings
from recs_platform.simulation.generator import SHOP_CONFIG_FILE

INGEST_JOB = "ingest_raw_events"
WAREHOUSE_JOB = "build_warehouse"
DAILY_JOB = "daily_ingest_and_warehouse"
TRAINING_JOB = "train_session_model"
DEPLOY_JOB = "deploy_recommendation_endpoint"
RETRAIN_JOB = "retrain_and_deploy"
DASHBOARD_JOB = "refresh_shop_dashboard"
AB_TEST_JOB = "report_ab_test"
# An asset not updated for this long is stale: the daily schedule and the sensor update both.
FRESHNESS_LIMIT = dt.timedelta(hours=26)


def network_retry_policy(env: str) -> dg.RetryPolicy | None:
    """Production assets talk to S3, Snowflake, SageMaker: transient failures are retried."""
    if env == "local":
        return None
    return dg.RetryPolicy(
        max_retries=3, delay=15, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
    )


def build_definitions(settings: Settings, resources: dict | None = None) -> dg.Definitions:
    """The definitions of one environment; `resources` replaces the environment's defaults."""
    daily = daily_partitions(settings.partitions_start)
    warehouse_kind = "duckdb" if settings.env == "local" else "snowflake"
    duckdb_pool = "duckdb_writer" if warehouse_kind == "duckdb" else None
    retry = network_retry_policy(settings.env)
    raw_events = build_raw_events_asset(daily, warehouse_kind, retry)
    dbt_assets = build_dbt_assets(settings.env, warehouse_kind, daily, retry, settings.data_dir)
    training_dataset = build_training_dataset_asset(duckdb_pool, retry)
    shop_dashboard = build_shop_dashboard_asset(duckdb_pool, retry)
    ab_test_report = build_ab_test_report_asset(duckdb_pool, retry)
    # The simulator leaves its configuration beside the local landing files: the oracle's ceiling.
    shop_config = settings.landing_dir / SHOP_CONFIG_FILE if settings.env == "local" else None
    session_model = build_session_model_asset(shop_config)
    recommendation_endpoint = build_recommendation_endpoint_asset(
        {"mlflow", "python" if settings.env == "local" else "sagemaker"}, retry
    )
    with warnings.catch_warnings():
        # Superseded by FreshnessPolicy, whose state only the daemon computes; checks keep a
        # pass/fail history per asset in the UI and run (and are tested) like any other check.
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        freshness_checks = dg.build_last_update_freshness_checks(
            assets=[raw_events, dg.AssetKey("sessions")], lower_bound_delta=FRESHNESS_LIMIT
        )
        freshness_sensor = dg.build_sensor_for_freshness_checks(
            freshness_checks=freshness_checks,
            name="freshness_checks_sensor",
            # Hourly: a stale asset is seen within the hour; every 30 s (the default) fills
            # the runs list of a laptop where nothing has been loaded yet.
            minimum_interval_seconds=3600,
            default_status=dg.DefaultSensorStatus.RUNNING,
        )
    # The freshness checks run on their own sensor, not inside every run of their assets. The
    # dbt tests of the raw.events source are checks of raw_events that the dbt build runs: they
    # go with the models, so that loading a day never starts dbt.
    freshness = dg.AssetSelection.checks(*freshness_checks)
    ingest = dg.AssetSelection.assets(raw_events).without_checks() | dg.AssetSelection.checks(
        *raw_events.check_keys
    )
    daily_models = (
        dg.AssetSelection.assets(*dbt_assets[0].keys) - freshness
    ) | dg.AssetSelection.checks(*dbt_assets[0].check_keys)
    jobs = [
        dg.define_asset_job(
            INGEST_JOB,
            selection=ingest,
            description="One day's landing files into raw.events (what the sensor runs).",
        ),
        dg.define_asset_job(
            WAREHOUSE_JOB,
            selection=daily_models,
            description="The daily dbt models of a range of days in one run (dbt tests as checks).",
        ),
        dg.define_asset_job(
            DAILY_JOB,
            selection=ingest | daily_models,
            description="A day's raw_events, then its dbt models (what the daily schedule runs).",
        ),
        dg.define_asset_job(
            TRAINING_JOB,
            selection=dg.AssetSelection.assets(training_dataset, session_model),
            description="The training window's dataset, then the candidates trained, tracked, "
            "registered and (if they win) promoted.",
        ),
        dg.define_asset_job(
            DEPLOY_JOB,
            selection=dg.AssetSelection.assets(recommendation_endpoint),
            description="The MLflow champion deployed to the endpoint, then probed.",
        ),
        dg.define_asset_job(
            RETRAIN_JOB,
            selection=dg.AssetSelection.assets(
                training_dataset, session_model, recommendation_endpoint
            ),
            description="Retrain, promote a winner, deploy the champion (the weekly schedule).",
        ),
        dg.define_asset_job(DASHBOARD_JOB, selection=dg.AssetSelection.assets(shop_dashboard)),
        dg.define_asset_job(
            AB_TEST_JOB,
            selection=dg.AssetSelection.assets(ab_test_report),
            description="Champion against challenger on the carousel's traffic (the daily "
            "A/B schedule).",
        ),
    ]
    return dg.Definitions(
        assets=[
            raw_events,
            *dbt_assets,
            training_dataset,
            shop_dashboard,
            ab_test_report,
            session_model,
            recommendation_endpoint,
        ],
        asset_checks=freshness_checks,
        jobs=jobs,
        schedules=[
            build_daily_schedule(DAILY_JOB),
            build_weekly_retrain_schedule(RETRAIN_JOB),
            build_ab_test_schedule(AB_TEST_JOB),
        ],
        sensors=[
            build_landing_sensor(INGEST_JOB, daily),
            build_failure_sensor(settings.dagster_url),
            freshness_sensor,
        ],
        resources=resources if resources is not None else resources_for(settings),
        # Locally the steps of a run share its process: one DuckDB file, two cores, and a
        # process per step would cost seconds and hundreds of MB each for nothing.
        executor=executor_for(settings),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Settings.from_env())
