"""Sensors and schedules: Dagster itself decides when assets run."""

import datetime as dt
import json

import dagster as dg

from recs_platform.assets.ingest import FILES_LOADED_METADATA, RAW_EVENTS_KEY
from recs_platform.events.landing import files_fingerprint
from recs_platform.resources import LandingZone, Notifier


def changed_partitions(
    seen: dict[str, str], current: dict[str, str], partition_keys: set[str]
) -> tuple[list[tuple[str, str]], list[str], dict[str, str]]:
    """Which days to load again: (key, fingerprint) to request, days outside the partitions,
    and the new cursor (days outside the partitions stay out of it, so they are requested once
    their partition exists)."""
    to_request, outside = [], []
    cursor = dict(seen)
    for key, fingerprint in sorted(current.items()):
        if seen.get(key) == fingerprint:
            continue
        if key not in partition_keys:
            outside.append(key)
            continue
        to_request.append((key, fingerprint))
        cursor[key] = fingerprint
    return to_request, outside, cursor


def loaded_fingerprint(instance: dg.DagsterInstance, partition_key: str) -> str | None:
    """files_fingerprint() of the files the latest materialization of this raw_events partition
    loaded (by the sensor, a backfill, the demo or a user), None if it has none."""
    partition = dg.AssetRecordsFilter(asset_key=RAW_EVENTS_KEY, asset_partitions=[partition_key])
    latest = instance.fetch_materializations(partition, limit=1).records
    if not latest:
        return None
    loaded = latest[0].asset_materialization.metadata.get(FILES_LOADED_METADATA)
    return None if loaded is None else loaded.value.get(partition_key)


def build_landing_sensor(
    job_name: str, partitions_def: dg.PartitionsDefinition
) -> dg.SensorDefinition:
    @dg.sensor(
        name="landing_zone_sensor",
        job_name=job_name,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Requests the raw_events partition of every day whose finalized landing files changed "
            "since the last tick (late files for old days included), unless its latest "
            "materialization loaded these files already; the run key names the files, so the "
            "same files are never loaded twice."
        ),
    )
    def landing_zone_sensor(context: dg.SensorEvaluationContext, landing: LandingZone):
        seen = json.loads(context.cursor) if context.cursor else {}
        current = {
            day.isoformat(): files_fingerprint(files)
            for day in landing.list_dates()
            if (files := landing.list_partition(day))
        }
        partition_keys = set(partitions_def.get_partition_keys())
        to_request, outside, cursor = changed_partitions(seen, current, partition_keys)
        if outside:
            context.log.warning(f"landing days outside the raw_events partitions: {outside}")
        context.update_cursor(json.dumps(cursor, sort_keys=True))
        # A fresh cursor (a new deployment, a reset) sees every day as changed: the days whose
        # latest materialization loaded these very files are not loaded again.
        loaded = [key for key, fp in to_request if loaded_fingerprint(context.instance, key) == fp]
        if loaded:
            context.log.info(f"already loaded with the files they hold now: {loaded}")
        to_request = [(key, fp) for key, fp in to_request if key not in loaded]
        if not to_request:
            return dg.SkipReason("no new landing files")
        return [
            dg.RunRequest(partition_key=key, run_key=f"raw_events:{key}:{fingerprint}")
            for key, fingerprint in to_request
        ]

    return landing_zone_sensor


def build_daily_schedule(job_name: str) -> dg.ScheduleDefinition:
    """Yesterday's partition of the daily job (raw_events, then the daily dbt models), 00:30 UTC.

    The landing sensor has loaded most of yesterday's files already; this run loads the day
    once more with every file that arrived before midnight and builds its models.
    """

    @dg.schedule(
        name="daily_warehouse_schedule",
        job_name=job_name,
        cron_schedule="30 0 * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="At 00:30 UTC: yesterday's raw_events partition and its dbt models.",
    )
    def daily_warehouse_schedule(context: dg.ScheduleEvaluationContext):
        yesterday = (context.scheduled_execution_time.date() - dt.timedelta(days=1)).isoformat()
        return dg.RunRequest(run_key=f"daily:{yesterday}", partition_key=yesterday)

    return daily_warehouse_schedule


def build_weekly_retrain_schedule(job_name: str) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="weekly_retrain_schedule",
        job_name=job_name,
        cron_schedule="0 3 * * 1",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Mondays 03:00 UTC: training_dataset, session_model (which promotes only a "
        "winner, behind its blocking checks), then recommendation_endpoint deploys the champion.",
    )


def build_ab_test_schedule(job_name: str) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="daily_ab_test_schedule",
        job_name=job_name,
        cron_schedule="30 2 * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="At 02:30 UTC, after the daily warehouse build: ab_test_report on the "
        "test's sessions so far (promotes a winner only when configured to).",
    )


def failure_alert(run: dg.DagsterRun, message: str, failed_steps: list[str], base_url: str | None):
    from recs_platform.notifications import Alert

    return Alert(
        title="Dagster run failed",
        message=message,
        run_id=run.run_id,
        job_name=run.job_name,
        failed_steps=failed_steps,
        run_url=f"{base_url.rstrip('/')}/runs/{run.run_id}" if base_url else None,
    )


def build_failure_sensor(dagster_url: str | None) -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name="run_failure_alerts",
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Every failed run of this code location goes to the `notifier` resource "
        "(a Slack-compatible webhook in production; a log line and alerts.jsonl locally).",
    )
    def run_failure_alerts(context: dg.RunFailureSensorContext, notifier: Notifier):
        step_failures = context.get_step_failure_events()
        failed_steps = sorted({event.step_key for event in step_failures if event.step_key})
        # What went wrong in each step (the run's own message only lists the steps).
        errors = [
            f"{event.step_key}: {event.step_failure_data.error.message.strip()}"
            for event in step_failures
            if event.step_failure_data.error is not None
        ]
        message = "\n".join([context.failure_event.message or "", *errors])
        alert = failure_alert(context.dagster_run, message, failed_steps, dagster_url)
        where = notifier.notify(alert)
        context.log.info(f"alert for run {context.dagster_run.run_id} sent to {where}")

    return run_failure_alerts
