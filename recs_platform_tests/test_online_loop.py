"""The online loop end to end, every piece real: a champion and a challenger registered in MLflow
and deployed to one local endpoint (half the sessions each); simulated shoppers browse through
the collector's `/recommend`; their impressions and clicks land, load into raw.events and go
through dbt into the marts; `ab_test_report` decides. Checksums hold every stage to what the
simulator sent: nothing lost, nothing counted twice."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import dagster as dg
import duckdb
import mlflow
import pytest

from recs_platform.definitions import AB_TEST_JOB, DAILY_JOB, DEPLOY_JOB, build_definitions
from recs_platform.models.markov import MarkovRecommender
from recs_platform.models.popularity import PopularityRecommender
from recs_platform.resources import local_mlflow
from recs_platform.serving.local_endpoint import LocalEndpoint
from recs_platform.settings import Settings
from recs_platform.simulation import ShopConfig, simulate_sessions
from recs_platform.simulation.online import OnlineShopper, http_carousel, http_sender
from recs_platform.training import tracking
from recs_platform_tests.collection.servers import free_port, running_collector

pytestmark = pytest.mark.timeout(600)

SHOP = ShopConfig(days=4, sessions_per_day=300, n_items=200, n_categories=8, seed=11)
SHOPPERS = 300


def register(recommender, sessions) -> str:
    with mlflow.start_run():
        return tracking.log_and_register(recommender.fit(sessions), [sessions[0]]).version


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    today = dt.datetime.now(dt.UTC).date()
    return Settings.from_env(
        {
            "RECS_DATA_DIR": str(tmp_path / "data"),
            "RECS_ENDPOINT_PORT": str(free_port()),
            "RECS_CHALLENGER_SHARE": "0.5",
            "RECS_PARTITIONS_START": (today - dt.timedelta(days=2)).isoformat(),
        }
    )


def test_simulated_shoppers_reach_the_ab_test_report_with_nothing_lost(settings: Settings):
    sessions = [list(session.skus) for session in simulate_sessions(SHOP)]
    local_mlflow(settings).activate()
    champion = register(MarkovRecommender(), sessions)
    challenger = register(PopularityRecommender(), sessions)
    tracking.promote(champion)
    tracking.make_challenger(challenger)

    definitions = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    endpoint = LocalEndpoint(settings.endpoint_dir, port=settings.endpoint_port)
    try:
        deployed = definitions.resolve_job_def(DEPLOY_JOB).execute_in_process(instance=instance)
        assert deployed.success
        with running_collector(
            settings.data_dir, "--endpoint-url", endpoint.url, "--no-storefront"
        ) as collector:
            shopper = OnlineShopper(
                SHOP,
                http_carousel(collector),
                http_sender(collector),
                clock_ms=lambda: int(time.time() * 1000),
            )
            sent = shopper.browse(SHOPPERS)
    finally:
        endpoint.stop()

    # Every day that received events (one, unless the test ran across midnight UTC).
    days = sorted(
        path.name.removeprefix("date=") for path in (settings.landing_dir / "events").glob("date=*")
    )
    assert days
    for day in days:
        built = definitions.resolve_job_def(DAILY_JOB).execute_in_process(
            partition_key=day, instance=instance
        )
        assert built.success, day

    tallies = sent.variants
    assert set(tallies) == {"champion", "challenger"}
    assert tallies["champion"].sessions + tallies["challenger"].sessions == SHOPPERS
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        # The collector stamps its own `source`; the data folder holds nothing else.
        landed = {row[0] for row in conn.execute("select event_id from raw.events").fetchall()}
        assert landed == set(sent.event_ids) and len(sent.event_ids) == len(landed)
        by_variant = {
            variant: (sessions, impressions, clicks, adds)
            for variant, sessions, impressions, clicks, adds in conn.execute(
                "select variant, count(*), sum(impressions), sum(clicks), sum(add_to_carts) "
                "from analytics.recommendation_sessions group by variant"
            ).fetchall()
        }
        performance = {
            (variant, version): (impressions, clicks)
            for variant, version, impressions, clicks in conn.execute(
                "select variant, model_version, sum(impressions), sum(clicks) "
                "from analytics.recommendation_performance group by variant, model_version"
            ).fetchall()
        }
    for variant, version in (("champion", champion), ("challenger", challenger)):
        tally = tallies[variant]
        assert by_variant[variant] == (
            tally.sessions,
            tally.impressions,
            tally.clicks,
            tally.add_to_carts_after_click,
        ), variant
        assert performance[(variant, version)] == (tally.impressions, tally.clicks), variant

    reported = definitions.resolve_job_def(AB_TEST_JOB).execute_in_process(
        instance=instance,
        run_config={"ops": {"ab_test_report": {"config": {"min_sessions": 100}}}},
    )
    assert reported.success
    (materialization,) = reported.asset_materializations_for_node("ab_test_report")
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    assert metadata["champion_sessions"] == tallies["champion"].sessions
    assert metadata["challenger_sessions"] == tallies["challenger"].sessions
    assert (metadata["champion_version"], metadata["challenger_version"]) == (
        champion,
        challenger,
    )
    assert metadata["champion_ctr"] == pytest.approx(tallies["champion"].ctr)
    # The Markov chain earns several times popularity's clicks: the A/B test sees it.
    assert metadata["decision"] == "challenger loses"
