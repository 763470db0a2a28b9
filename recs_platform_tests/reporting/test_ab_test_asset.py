"""`ab_test_report` through Dagster on a DuckDB warehouse: the decision and its numbers in the
metadata, the check that warns when the challenger loses, the versions serving now only, and
the opt-in promotion of a winner."""

import datetime as dt

import dagster as dg
import duckdb
import mlflow
import numpy as np
import pytest

from recs_platform.assets.ab_test import DECISION_CHECK, build_ab_test_report_asset
from recs_platform.models.popularity import PopularityRecommender
from recs_platform.resources import local_mlflow, resources_for
from recs_platform.settings import Settings
from recs_platform.training import tracking

LAST_DAY = dt.date(2026, 3, 20)


def settings_for(data_dir) -> Settings:
    return Settings(env="local", data_dir=data_dir, partitions_start=dt.date(2026, 3, 1))


def write_sessions(settings: Settings, variants: dict[tuple[str, str], float], days=(0, 1, 2)):
    """analytics.recommendation_sessions with 2,000 sessions a day for each (variant, version)
    at its click-through rate, `days` days before LAST_DAY."""
    rng = np.random.default_rng(0)
    rows = []
    for (variant, version), ctr in variants.items():
        for back in days:
            for number in range(2000):
                impressions = int(rng.integers(1, 6))
                clicks = int(rng.binomial(impressions, ctr))
                rows.append(
                    (f"{variant}-{version}-{back}-{number}", LAST_DAY - dt.timedelta(days=back),
                     variant, version, impressions, clicks, int(rng.binomial(clicks, 0.3)))
                )  # fmt: skip
    settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(settings.warehouse_path)) as conn:
        conn.execute("create schema if not exists analytics")
        conn.execute(
            "create or replace table analytics.recommendation_sessions (session_id varchar, "
            "session_date date, variant varchar, model_version varchar, impressions integer, "
            "clicks integer, add_to_carts integer)"
        )
        if rows:
            conn.executemany(
                "insert into analytics.recommendation_sessions values (?,?,?,?,?,?,?)", rows
            )


def register_pair(settings: Settings) -> tuple[str, str]:
    local_mlflow(settings).activate()
    versions = []
    for _ in range(2):
        with mlflow.start_run():
            model = PopularityRecommender().fit([["a", "b"], ["c"]])
            versions.append(tracking.log_and_register(model, [["a"]]).version)
    tracking.promote(versions[0])
    tracking.make_challenger(versions[1])
    return versions[0], versions[1]


def materialize(settings: Settings, **config) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [build_ab_test_report_asset("duckdb_writer")],
        resources=resources_for(settings),
        run_config={"ops": {"ab_test_report": {"config": config}}},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def metadata_of(result) -> dict:
    (materialization,) = result.asset_materializations_for_node("ab_test_report")
    return {name: entry.value for name, entry in materialization.metadata.items()}


def test_a_better_challenger_wins_and_is_promoted_only_when_asked(tmp_path):
    settings = settings_for(tmp_path)
    champion, challenger = register_pair(settings)
    write_sessions(settings, {("champion", champion): 0.05, ("challenger", challenger): 0.08})

    reported = materialize(settings)
    assert reported.success
    metadata = metadata_of(reported)
    assert metadata["decision"] == "challenger wins"
    assert (metadata["champion_version"], metadata["challenger_version"]) == (champion, challenger)
    assert metadata["champion_sessions"] == metadata["challenger_sessions"] == 6000
    assert metadata["challenger_ctr"] > metadata["champion_ctr"]
    assert metadata["ctr_lift"] > 0.3 and metadata["promoted"] is False
    (check,) = reported.get_asset_check_evaluations()
    assert check.check_name == DECISION_CHECK and check.passed
    assert "challenger wins" in check.description
    client = mlflow.MlflowClient()
    assert tracking.serving_versions(client).champion == champion

    promoted = materialize(settings, promote_winner=True)
    assert metadata_of(promoted)["promoted"] is True
    versions = tracking.serving_versions(client)
    assert versions.champion == challenger and versions.challenger is None


def test_a_worse_challenger_loses_and_the_check_warns(tmp_path):
    settings = settings_for(tmp_path)
    champion, challenger = register_pair(settings)
    write_sessions(settings, {("champion", champion): 0.08, ("challenger", challenger): 0.04})
    result = materialize(settings, promote_winner=True)
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert metadata_of(result)["decision"] == "challenger loses"
    assert tracking.serving_versions(mlflow.MlflowClient()).champion == champion


def test_only_the_versions_serving_now_are_compared(tmp_path):
    settings = settings_for(tmp_path)
    champion, challenger = register_pair(settings)
    # Days 3-5 back an older challenger (version "0") did far better; it no longer serves.
    write_sessions(settings, {("challenger", "0"): 0.5}, days=(3, 4, 5))
    with duckdb.connect(str(settings.warehouse_path)) as conn:
        old = conn.execute("select * from analytics.recommendation_sessions").fetchall()
    write_sessions(settings, {("champion", champion): 0.06, ("challenger", challenger): 0.06})
    with duckdb.connect(str(settings.warehouse_path)) as conn:
        conn.executemany(
            "insert into analytics.recommendation_sessions values (?,?,?,?,?,?,?)", old
        )
    metadata = metadata_of(materialize(settings))
    assert metadata["challenger_version"] == challenger
    assert metadata["challenger_sessions"] == 6000
    assert metadata["decision"] == "not yet known"
    # A short window holds fewer sessions than a decision needs.
    short = metadata_of(materialize(settings, window_days=1, min_sessions=5000))
    assert short["challenger_sessions"] == 2000 and short["decision"] == "not yet known"


def test_no_sessions_yet_is_a_clear_failure(tmp_path):
    settings = settings_for(tmp_path)
    register_pair(settings)
    write_sessions(settings, {}, days=())
    result = materialize(settings)
    assert not result.success
    (failure,) = [event for event in result.all_events if event.is_step_failure]
    assert "no carousel was shown yet" in str(failure.step_failure_data.error.message)


@pytest.mark.parametrize("config", [{"window_days": 0}, {"confidence": 1.5}])
def test_bad_settings_are_refused(tmp_path, config):
    settings = settings_for(tmp_path)
    register_pair(settings)
    write_sessions(settings, {("champion", "1"): 0.05, ("challenger", "2"): 0.06})
    result = materialize(settings, **config)
    assert not result.success
