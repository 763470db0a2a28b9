import datetime as dt
import json
import socket

import dagster as dg
import pytest

from recs_platform.assets.transform import dbt_project
from recs_platform.definitions import DAILY_JOB, INGEST_JOB, WAREHOUSE_JOB, build_definitions, defs
from recs_platform.settings import Settings, SettingsError


@pytest.fixture
def no_network(monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError(f"network access while loading definitions: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def load(monkeypatch, tmp_path, **environ) -> dg.Definitions:
    monkeypatch.setenv("RECS_DATA_DIR", str(tmp_path))
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    loaded = defs()
    dg.Definitions.validate_loadable(loaded)
    loaded.resolve_all_job_defs()
    return loaded


@pytest.mark.parametrize("env", ["local", "prod"])
def test_loading_the_definitions_touches_no_network(monkeypatch, tmp_path, no_network, env):
    loaded = load(monkeypatch, tmp_path, RECS_ENV=env)
    assert no_network == []
    assert not (tmp_path / "warehouse.duckdb").exists()
    assert dg.AssetKey("raw_events") in loaded.resolve_all_asset_keys()


def test_the_environment_picks_the_resources(monkeypatch, tmp_path):
    local = load(monkeypatch, tmp_path, RECS_ENV="local")
    assert type(local.resources["warehouse"]).__name__ == "DuckDBWarehouse"
    assert local.resources["landing"].root == str(tmp_path / "landing")
    prod = load(monkeypatch, tmp_path, RECS_ENV="prod", RECS_LANDING_PREFIX="shop")
    assert type(prod.resources["warehouse"]).__name__ == "SnowflakeWarehouse"
    assert type(prod.resources["landing"]).__name__ == "S3LandingZone"
    assert prod.resources["landing"].prefix == "shop/"
    assert type(prod.resources["dataset_io_manager"]).__name__ == "S3TrainingDatasetIOManager"
    assert type(local.resources["dataset_io_manager"]).__name__ == "TrainingDatasetIOManager"
    assert local.resources["mlflow_tracking"].tracking_uri == (
        f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    )
    assert not (tmp_path / "mlflow").exists(), "loading the definitions creates nothing"


def test_session_model_follows_training_dataset_behind_two_blocking_checks(tmp_path):
    settings = Settings(env="local", data_dir=tmp_path, partitions_start=dt.date(2026, 11, 1))
    definitions = build_definitions(settings)
    graph = definitions.resolve_asset_graph()
    node = graph.get(dg.AssetKey("session_model"))
    assert node.parent_keys == {dg.AssetKey("training_dataset")}
    assert node.group_name == "model"
    specs = definitions.resolve_assets_def("session_model").check_specs
    assert {spec.name: spec.blocking for spec in specs} == {
        "checklist_invariants": True,
        "beats_champion": True,
    }
    job = definitions.resolve_job_def("train_session_model")
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} >= {
        "training_dataset",
        "session_model",
    }


@pytest.mark.parametrize(("env", "kind"), [("local", "python"), ("prod", "sagemaker")])
def test_the_endpoint_follows_session_model_behind_a_blocking_check(tmp_path, env, kind):
    settings = Settings(env=env, data_dir=tmp_path, partitions_start=dt.date(2026, 11, 1))
    definitions = build_definitions(settings)
    node = definitions.resolve_asset_graph().get(dg.AssetKey("recommendation_endpoint"))
    assert node.parent_keys == {dg.AssetKey("session_model")}
    assert node.group_name == "serving"
    assert set(node.kinds) == {"mlflow", kind}
    specs = definitions.resolve_assets_def("recommendation_endpoint").check_specs
    assert {spec.name: spec.blocking for spec in specs} == {"serves_champion": True}
    retry = definitions.resolve_assets_def("recommendation_endpoint").op.retry_policy
    assert (retry is not None) == (env == "prod")  # SageMaker calls are retried with backoff
    job = definitions.resolve_job_def("deploy_recommendation_endpoint")
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} == {
        "recommendation_endpoint"
    }


@pytest.mark.parametrize("env", ["local", "prod"])
def test_network_bound_assets_retry_with_backoff_in_production(tmp_path, env):
    settings = Settings(env=env, data_dir=tmp_path, partitions_start=dt.date(2026, 11, 1))
    definitions = build_definitions(settings)
    for key in ("raw_events", "stg_events", "training_dataset", "shop_dashboard"):
        policy = definitions.resolve_assets_def(key).op.retry_policy
        if env == "local":
            assert policy is None, key  # a local failure is a bug to see, not to retry
        else:
            assert policy.max_retries == 3 and policy.backoff == dg.Backoff.EXPONENTIAL, key


def test_the_asset_graph(tmp_path):
    settings = Settings(env="local", data_dir=tmp_path, partitions_start=dt.date(2026, 11, 1))
    graph = build_definitions(settings)
    raw_events = graph.resolve_assets_def("raw_events")
    spec = next(iter(raw_events.specs))
    assert spec.group_name == "ingest"
    assert set(spec.kinds) == {"duckdb", "python"}
    partitions = raw_events.partitions_def
    assert isinstance(partitions, dg.DailyPartitionsDefinition)
    assert partitions.get_first_partition_key() == "2026-11-01"
    assert [check.name for check in raw_events.check_specs] == ["rejected_share_below_threshold"]
    assert graph.resolve_job_def(INGEST_JOB).partitions_def == partitions


def test_the_dbt_models_hang_off_raw_events_partitioned_by_day(tmp_path):
    settings = Settings(env="local", data_dir=tmp_path, partitions_start=dt.date(2026, 11, 1))
    graph = build_definitions(settings).resolve_asset_graph()
    assert graph.get(dg.AssetKey("stg_events")).parent_keys == {dg.AssetKey("raw_events")}
    for model in (
        "stg_events",
        "sessions",
        "daily_session_stats",
        "item_stats",
        "training_sessions",
    ):
        node = graph.get(dg.AssetKey(model))
        assert node.group_name == "warehouse"
        assert set(node.kinds) == {"dbt", "duckdb"}
        assert isinstance(node.partitions_def, dg.DailyPartitionsDefinition)
        assert node.backfill_policy == dg.BackfillPolicy.single_run()
    assert dg.AssetKey("training_sessions") in graph.get(dg.AssetKey("sessions")).child_keys or (
        dg.AssetKey("int_session_events") in graph.get(dg.AssetKey("training_sessions")).parent_keys
    )
    checks = graph.get(dg.AssetKey("sessions")).check_keys
    assert checks, "dbt tests appear as asset checks"


def test_every_dbt_test_is_an_asset_check_of_what_it_tests(tmp_path):
    manifest = json.loads(dbt_project("local").manifest_path.read_text())
    dbt_tests = {
        node["name"] for node in manifest["nodes"].values() if node["resource_type"] == "test"
    }
    settings = Settings(env="local", data_dir=tmp_path, partitions_start=dt.date(2026, 11, 1))
    definitions = build_definitions(settings)
    graph = definitions.resolve_asset_graph()
    checked_asset = {key.name: key.asset_key for key in graph.asset_check_keys}
    assert dbt_tests - set(checked_asset) == set()
    # The source's tests check raw_events; a singular test of three tables the one it names.
    assert checked_asset["source_not_null_raw_events_event_id"] == dg.AssetKey("raw_events")
    assert checked_asset["landed_rows_are_kept_or_duplicates"] == dg.AssetKey(
        "stg_event_duplicates"
    )
    # The dbt build runs them all; loading a day runs only its own check, never dbt.

    def checks_of(job: str) -> set[str]:
        return {
            key.name
            for key in definitions.resolve_job_def(job).asset_layer.asset_graph.asset_check_keys
        }

    assert dbt_tests <= checks_of(WAREHOUSE_JOB) and dbt_tests <= checks_of(DAILY_JOB)
    assert checks_of(INGEST_JOB) == {"rejected_share_below_threshold"}


def test_every_asset_touching_the_duckdb_file_shares_one_pool(tmp_path):
    settings = Settings(env="local", data_dir=tmp_path, partitions_start=dt.date(2026, 11, 1))
    definitions = build_definitions(settings)
    for key in ("raw_events", "stg_events", "training_sessions", "training_dataset"):
        assert definitions.resolve_assets_def(key).op.pool == "duckdb_writer", key


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RECS_ENV", "staging", "RECS_ENV='staging' is not one of local, prod"),
        ("RECS_PARTITIONS_START", "11/01/2026", "is not a date like 2026-11-01"),
        ("RECS_ENDPOINT_PORT", "80x", "RECS_ENDPOINT_PORT='80x' is not a port number"),
        ("RECS_ENDPOINT_PORT", "70000", "is not a port number"),
    ],
)
def test_a_wrong_setting_is_named(name, value, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({name: value})


@pytest.mark.parametrize(
    ("env", "executor", "expected"),
    [("local", None, dg.in_process_executor), ("prod", None, None)],
)
def test_the_executor_follows_the_settings(tmp_path, env, executor, expected):
    """Locally every step in the run's process; in production without RECS_EXECUTOR Dagster's
    default (a process per step)."""
    settings = Settings(
        env=env, data_dir=tmp_path, partitions_start=dt.date(2026, 11, 1), executor=executor
    )
    assert build_definitions(settings).executor is expected


def test_the_kubernetes_executor_needs_dagster_k8s(tmp_path):
    settings = Settings(
        env="prod", data_dir=tmp_path, partitions_start=dt.date(2026, 11, 1), executor="k8s"
    )
    try:
        import dagster_k8s
    except ImportError:
        with pytest.raises(SettingsError, match="dagster-k8s"):
            build_definitions(settings)
    else:
        assert build_definitions(settings).executor is dagster_k8s.k8s_job_executor
