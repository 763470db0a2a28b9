"""deployments/dagster: the production dagster.yaml against a real PostgreSQL, the Helm values,
the user-code Dockerfile (hadolint) and the local instance config."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml

from recs_platform.definitions import INGEST_JOB, build_definitions
from recs_platform.settings import Settings
from recs_platform_tests.deployments.lint import assert_hadolint_passes
from recs_platform_tests.deployments.postgres import PostgresServer
from recs_platform_tests.factories import DAY, make_event, write_good_file

DAGSTER_DIR = Path(__file__).resolve().parents[2] / "deployments" / "dagster"
PRODUCTION_YAML = DAGSTER_DIR / "dagster.yaml"
VALUES_YAML = DAGSTER_DIR / "values.yaml"
LOCAL_YAML = DAGSTER_DIR / "local.yaml"


def production_instance(home: Path) -> dg.DagsterInstance:
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PRODUCTION_YAML, home / "dagster.yaml")  # byte for byte, as committed
    return dg.DagsterInstance.from_config(str(home))


def test_a_partition_materialized_with_the_production_instance_is_stored_in_postgres(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in postgres.env().items():
        monkeypatch.setenv(name, value)
    instance = production_instance(tmp_path / "dagster_home")
    try:
        from dagster_postgres import (
            PostgresEventLogStorage,
            PostgresRunStorage,
            PostgresScheduleStorage,
        )

        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert not instance.run_retries_retry_on_asset_or_op_failure
        concurrency = instance.get_concurrency_config()
        assert concurrency.run_queue_config.max_concurrent_runs == 10
        assert concurrency.pool_config.default_pool_limit == 1

        # The definitions as they load locally (DuckDB), run on the production instance.
        data_dir = tmp_path / "data"
        write_good_file(data_dir / "landing", [make_event(n) for n in range(12)])
        settings = Settings(env="local", data_dir=data_dir, partitions_start=dt.date(2026, 11, 1))
        job = build_definitions(settings).resolve_job_def(INGEST_JOB)
        result = job.execute_in_process(partition_key=DAY.isoformat(), instance=instance)
        assert result.success
        run_id = result.run_id

        # The same instance reads it back through its storage...
        stored = instance.get_run_by_id(run_id)
        assert stored is not None and stored.status == dg.DagsterRunStatus.SUCCESS
        materialization = instance.get_latest_materialization_event(dg.AssetKey("raw_events"))
        assert materialization is not None and materialization.run_id == run_id
        assert materialization.asset_materialization.partition == DAY.isoformat()
    finally:
        instance.dispose()

    # ...and it is really in Postgres's tables, not in files under DAGSTER_HOME.
    with postgres.connect() as conn, conn.cursor() as cursor:
        cursor.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
        assert cursor.fetchall() == [("SUCCESS",)]
        cursor.execute(
            "SELECT asset_key, partition FROM event_logs "
            "WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
            (run_id,),
        )
        assert cursor.fetchall() == [('["raw_events"]', DAY.isoformat())]
    conn.close()
    assert not list((tmp_path / "dagster_home").glob("**/*.db"))


def _values() -> dict:
    return yaml.safe_load(VALUES_YAML.read_text())


def test_the_helm_values_have_what_the_official_chart_reads() -> None:
    values = _values()
    # Postgres outside the cluster; its password from the chart's secret, never in the file.
    postgresql = values["postgresql"]
    assert postgresql["enabled"] is False
    assert postgresql["postgresqlHost"] and postgresql["postgresqlDatabase"]
    assert "postgresqlPassword" not in postgresql
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]

    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert values["dagster-user-deployments"]["enabled"] is True
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "recs_platform.definitions"]
    assert deployment["port"] == 3030
    assert set(deployment["image"]) == {"repository", "tag", "pullPolicy"}
    assert deployment["image"]["tag"] != "latest"
    env = deployment["env"]
    assert env["RECS_ENV"] == "prod"
    for secret in ("SNOWFLAKE_PASSWORD", "RECS_ALERT_WEBHOOK_URL", "DAGSTER_PG_PASSWORD"):
        assert secret not in env, f"{secret} belongs in a Kubernetes secret"
    for name in (
        "AWS_REGION",
        "RECS_LANDING_BUCKET",
        "SNOWFLAKE_ACCOUNT",
        "SNOWFLAKE_USER",
        "SNOWFLAKE_DATABASE",
        "SNOWFLAKE_WAREHOUSE",
        "SNOWFLAKE_ROLE",
        "MLFLOW_TRACKING_URI",
        "RECS_SAGEMAKER_ENDPOINT",
        "RECS_SAGEMAKER_IMAGE_URI",
        "RECS_SAGEMAKER_ROLE_ARN",
    ):
        assert name in env, name
    assert deployment["envSecrets"] == [{"name": "recs-platform-secrets"}]
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    assert deployment["securityContext"]["runAsNonRoot"] is True

    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    assert launcher["config"]["k8sRunLauncher"]["envSecrets"] == [{"name": "recs-platform-secrets"}]

    daemon = values["dagsterDaemon"]
    assert daemon["enabled"] is True
    assert daemon["runCoordinator"]["enabled"] is True
    assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert values["telemetry"] == {"enabled": False}
    assert values["computeLogManager"]["type"] == "S3ComputeLogManager"


def test_the_helm_values_and_the_production_dagster_yaml_agree() -> None:
    """The chart renders its own dagster.yaml: the same limits and retries as the file."""
    instance_config = yaml.safe_load(PRODUCTION_YAML.read_text())
    values = _values()
    runs = instance_config["concurrency"]["runs"]
    assert values["concurrency"]["enabled"] is True
    assert values["concurrency"]["runs"]["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    assert values["concurrency"]["runs"]["tagConcurrencyLimits"] == runs["tag_concurrency_limits"]
    assert (
        values["concurrency"]["pools"]["defaultLimit"]
        == instance_config["concurrency"]["pools"]["default_limit"]
    )
    # The chart refuses run limits in both places; they live under `concurrency`.
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert "maxConcurrentRuns" not in queued and "tagConcurrencyLimits" not in queued
    retries = values["dagsterDaemon"]["runRetries"]
    assert retries == {
        "enabled": instance_config["run_retries"]["enabled"],
        "maxRetries": instance_config["run_retries"]["max_retries"],
        "retryOnAssetOrOpFailure": instance_config["run_retries"]["retry_on_asset_or_op_failure"],
    }
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    assert monitoring["enabled"] is instance_config["run_monitoring"]["enabled"]
    assert (
        monitoring["startTimeoutSeconds"]
        == instance_config["run_monitoring"]["start_timeout_seconds"]
    )
    assert values["telemetry"]["enabled"] is instance_config["telemetry"]["enabled"]


def test_the_user_code_dockerfile_passes_hadolint_and_runs_the_code_server() -> None:
    dockerfile = DAGSTER_DIR / "Dockerfile"
    assert_hadolint_passes(dockerfile)
    text = dockerfile.read_text()
    assert '"dagster", "api", "grpc"' in text and '"recs_platform.definitions"' in text
    assert "-c constraints.txt" in text
    # The CPU build by default; the GPU nodes' image passes PyPI's (CUDA) index.
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text
    assert '--no-deps --index-url "${TORCH_INDEX_URL}" torch==2.13.0' in text


def test_the_local_instance_keeps_the_duckdb_pool_and_caps_concurrent_runs(
    tmp_path: Path,
) -> None:
    shutil.copyfile(LOCAL_YAML, tmp_path / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        concurrency = instance.get_concurrency_config()
        assert concurrency.pool_config.default_pool_limit == 1
        assert concurrency.run_queue_config.max_concurrent_runs == 2
    finally:
        instance.dispose()
