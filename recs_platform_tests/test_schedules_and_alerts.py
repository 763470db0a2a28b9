"""Dagster decides when things run and says when they fail: the schedules, the freshness checks,
and the run-failure sensor posting to a Slack-compatible webhook (a real HTTP receiver on
127.0.0.1) or, locally, to a log line and a file."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import httpx
import pytest

from recs_platform.definitions import (
    DAILY_JOB,
    DEPLOY_JOB,
    INGEST_JOB,
    RETRAIN_JOB,
    build_definitions,
)
from recs_platform.resources import LocalFileNotifier, WebhookNotifier
from recs_platform.settings import Settings
from recs_platform_tests.factories import DAY, make_event, write_good_file


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        env="local",
        data_dir=tmp_path,
        partitions_start=dt.date(2026, 11, 1),
        dagster_url="http://127.0.0.1:3000",
    )


@pytest.fixture
def definitions(settings: Settings) -> dg.Definitions:
    return build_definitions(settings)


def test_the_daily_schedule_runs_yesterdays_partition_and_is_on(definitions) -> None:
    schedule = definitions.resolve_schedule_def("daily_warehouse_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == DAILY_JOB
    tick_time = dt.datetime(2026, 11, 10, 0, 30, tzinfo=dt.UTC)
    with dg.build_schedule_context(
        scheduled_execution_time=tick_time, repository_def=definitions.get_repository_def()
    ) as context:
        (request,) = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2026-11-09"
    job = definitions.resolve_job_def(DAILY_JOB)
    keys = {key.to_user_string() for key in job.asset_layer.executable_asset_keys}
    assert {"raw_events", "stg_events", "sessions", "training_sessions"} <= keys


def test_the_weekly_schedule_retrains_and_redeploys(definitions) -> None:
    schedule = definitions.resolve_schedule_def("weekly_retrain_schedule")
    assert (schedule.cron_schedule, schedule.default_status) == (
        "0 3 * * 1",
        dg.DefaultScheduleStatus.RUNNING,
    )
    job = definitions.resolve_job_def(schedule.job_name)
    assert schedule.job_name == RETRAIN_JOB
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} == {
        "training_dataset",
        "session_model",
        "recommendation_endpoint",
    }


def test_the_daily_ab_test_schedule_reports_after_the_warehouse_build(definitions) -> None:
    schedule = definitions.resolve_schedule_def("daily_ab_test_schedule")
    warehouse = definitions.resolve_schedule_def("daily_warehouse_schedule")
    # 02:30 UTC, two hours after the build of yesterday's marts it reads.
    assert (schedule.cron_schedule, warehouse.cron_schedule) == ("30 2 * * *", "30 0 * * *")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    job = definitions.resolve_job_def(schedule.job_name)
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} == {
        "ab_test_report"
    }


def test_freshness_checks_fail_until_raw_events_is_loaded(settings, definitions) -> None:
    checks = definitions.asset_checks
    job = dg.define_asset_job("freshness", selection=dg.AssetSelection.checks(*checks))
    merged = dg.Definitions.merge(definitions, dg.Definitions(jobs=[job]))
    instance = dg.DagsterInstance.ephemeral()

    def freshness() -> dict[str, bool]:
        result = merged.resolve_job_def("freshness").execute_in_process(instance=instance)
        return {
            check.asset_key.to_user_string(): check.passed
            for check in result.get_asset_check_evaluations()
        }

    assert freshness() == {"raw_events": False, "sessions": False}
    write_good_file(settings.landing_dir, [make_event(n) for n in range(3)])
    loaded = definitions.resolve_job_def(INGEST_JOB).execute_in_process(
        partition_key=DAY.isoformat(), instance=instance
    )
    assert loaded.success
    assert freshness() == {"raw_events": True, "sessions": False}


class Receiver(BaseHTTPRequestHandler):
    """A webhook receiver: keeps every JSON body it gets, answers with `status`."""

    bodies: list = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802 (the http.server API)
        length = int(self.headers["content-length"])
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[Receiver]]]:
    handler = type("ThisTestsReceiver", (Receiver,), {"bodies": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/recs", handler
    finally:
        server.shutdown()


def failed_run(definitions):
    """A real failed run: deploying with no champion in the registry."""
    instance = dg.DagsterInstance.ephemeral()
    result = definitions.resolve_job_def(DEPLOY_JOB).execute_in_process(
        instance=instance, raise_on_error=False
    )
    assert not result.success
    failure = next(
        event for event in result.all_events if event.event_type == dg.DagsterEventType.RUN_FAILURE
    )
    return instance, result.dagster_run, failure


def alert_sensor(definitions, notifier):
    instance, run, failure = failed_run(definitions)
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alerts",
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=failure,
        resources={"notifier": notifier},
    ).for_run_failure()
    definitions.resolve_sensor_def("run_failure_alerts")(context)
    return run


def test_a_failed_run_is_posted_to_the_webhook(definitions, receiver) -> None:
    url, handler = receiver
    sensor = definitions.resolve_sensor_def("run_failure_alerts")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    run = alert_sensor(definitions, WebhookNotifier(webhook_url=url))
    (body,) = handler.bodies
    assert body["text"] == f"Dagster run failed: {DEPLOY_JOB}"
    text = body["blocks"][0]["text"]["text"]
    assert run.run_id in text and "`recommendation_endpoint`" in text
    assert f"http://127.0.0.1:3000/runs/{run.run_id}" in text


def test_a_webhook_that_refuses_fails_the_tick_loudly(definitions, receiver) -> None:
    url, handler = receiver
    handler.status = 500
    with pytest.raises(httpx.HTTPStatusError, match="500"):
        alert_sensor(definitions, WebhookNotifier(webhook_url=url))


def test_locally_an_alert_is_a_line_in_a_file(definitions, settings, caplog) -> None:
    path = settings.data_dir / "alerts" / "alerts.jsonl"
    assert definitions.resources["notifier"] == LocalFileNotifier(path=str(path))
    run = alert_sensor(definitions, LocalFileNotifier(path=str(path)))
    (alert,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert (alert["run_id"], alert["job_name"]) == (run.run_id, DEPLOY_JOB)
    assert alert["failed_steps"] == ["recommendation_endpoint"]
    assert "recommendation_endpoint: dagster._core.definitions.events.Failure" in alert[
        "message"
    ] or ("materialize session_model first" in alert["message"])
    assert any("Dagster run failed" in record.getMessage() for record in caplog.records)
