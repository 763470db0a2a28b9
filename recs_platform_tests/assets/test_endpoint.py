"""`recommendation_endpoint` through Dagster on the local endpoint: the champion is deployed to a
real `recs-platform serve` process, probed by the blocking check, and replaced by the next
champion while a client keeps asking, without one failed request."""

from __future__ import annotations

import threading
from pathlib import Path

import dagster as dg
import httpx
import mlflow
import pytest

from recs_platform.assets.endpoint import SERVES_CHAMPION_CHECK
from recs_platform.definitions import DEPLOY_JOB, build_definitions
from recs_platform.models.markov import MarkovRecommender
from recs_platform.models.popularity import PopularityRecommender
from recs_platform.resources import LocalRecommendationEndpoint, local_mlflow, resources_for
from recs_platform.serving.local_endpoint import LocalEndpoint
from recs_platform.settings import Settings
from recs_platform.training import tracking
from recs_platform_tests.collection.servers import free_port
from recs_platform_tests.serving.hand_model import HAND_SESSIONS


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env(
        {"RECS_DATA_DIR": str(tmp_path), "RECS_ENDPOINT_PORT": str(free_port())}
    )


@pytest.fixture
def endpoint(settings: Settings):
    endpoint = LocalEndpoint(settings.endpoint_dir, port=settings.endpoint_port)
    yield endpoint
    endpoint.stop()


def register(settings: Settings, recommender, promote: bool = True) -> str:
    local_mlflow(settings).activate()
    with mlflow.start_run():
        logged = tracking.log_and_register(recommender, [["a", "b"], ["a"], ["c"]])
    if promote:
        tracking.promote(logged.version)
    return logged.version


def deploy(settings: Settings):
    return (
        build_definitions(settings)
        .resolve_job_def(DEPLOY_JOB)
        .execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    )


def failure_message(result) -> str:
    error = result.failure_data_for_node("recommendation_endpoint").error
    return error.message + (error.cause.message if error.cause else "")


def checks_of(result) -> dict:
    return {check.check_name: check for check in result.get_asset_check_evaluations()}


def test_the_champion_is_served_checked_and_replaced_without_a_dropped_request(
    settings: Settings, endpoint: LocalEndpoint
) -> None:
    first = register(settings, MarkovRecommender().fit(HAND_SESSIONS))
    result = deploy(settings)
    assert result.success
    metadata = result.asset_materializations_for_node("recommendation_endpoint")[0].metadata
    assert metadata["action"].value == "started"
    assert metadata["model_version"].value == first
    assert metadata["endpoint_url"].value == endpoint.url
    assert checks_of(result)[SERVES_CHAMPION_CHECK].passed

    # The process outlives the run: the shop can call it.
    answer = httpx.post(f"{endpoint.url}/invocations", json={"session": ["a"], "k": 2}).json()
    assert answer["predictions"][0]["items"] == ["b", "c"]
    assert answer["model"]["version"] == first

    second = register(settings, PopularityRecommender().fit(HAND_SESSIONS))
    seen_versions, failures = [], []
    stop = threading.Event()

    def keep_asking() -> None:
        with httpx.Client(base_url=endpoint.url, timeout=5) as client:
            while not stop.is_set():
                response = client.post("/invocations", json={"session": ["a"], "k": 2})
                if response.status_code != 200:
                    failures.append(response.status_code)
                else:
                    seen_versions.append(response.json()["model"]["version"])

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        redeployed = deploy(settings)
    finally:
        stop.set()
        asker.join(timeout=10)
    assert redeployed.success
    metadata = redeployed.asset_materializations_for_node("recommendation_endpoint")[0].metadata
    assert (metadata["action"].value, metadata["model_version"].value) == ("reloaded", second)
    assert checks_of(redeployed)[SERVES_CHAMPION_CHECK].passed
    assert failures == []
    # Old model until the swap, then the new one, never back.
    assert seen_versions and seen_versions[-1] == second
    switch = seen_versions.index(second)
    assert set(seen_versions[:switch]) <= {first} and set(seen_versions[switch:]) == {second}

    again = deploy(settings)
    metadata = again.asset_materializations_for_node("recommendation_endpoint")[0].metadata
    assert metadata["action"].value == "unchanged"
    assert checks_of(again)[SERVES_CHAMPION_CHECK].passed


def test_without_a_champion_the_run_fails_saying_what_to_do(settings: Settings) -> None:
    register(settings, MarkovRecommender().fit(HAND_SESSIONS), promote=False)
    result = deploy(settings)
    assert not result.success
    assert "materialize session_model first" in failure_message(result)


def test_a_port_held_by_another_program_fails_clearly(settings: Settings) -> None:
    register(settings, MarkovRecommender().fit(HAND_SESSIONS))

    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class NotAnEndpoint(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server API)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", settings.endpoint_port), NotAnEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = deploy(settings)
    finally:
        server.shutdown()
    assert not result.success
    assert "another program holds the port" in failure_message(result)


def test_the_local_resource_is_the_default_and_follows_the_settings(settings: Settings) -> None:
    endpoint = resources_for(settings)["endpoint"]
    assert isinstance(endpoint, LocalRecommendationEndpoint)
    assert Path(endpoint.endpoint_dir) == settings.endpoint_dir
    assert endpoint.port == settings.endpoint_port
