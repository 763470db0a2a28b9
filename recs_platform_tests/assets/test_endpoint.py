"""`recommendation_endpoint` through Dagster on the local endpoint: the champion is deployed to a
real `recs-platform serve` process, probed by the blocking check, and replaced by the next
champion while a client keeps asking, without one failed request; a challenger is deployed
beside it to the configured share of sessions (RECS_CHALLENGER_SHARE)."""

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
from recs_platform.settings import Settings, SettingsError
from recs_platform.training import tracking
from recs_platform_tests.collection.servers import free_port
from recs_platform_tests.serving.hand_model import HAND_SESSIONS


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env(
        {"RECS_DATA_DIR": str(tmp_path), "RECS_ENDPOINT_PORT": str(free_port())}
    )


def with_share(settings: Settings, share: str) -> Settings:
    """The same settings with RECS_CHALLENGER_SHARE set (what an operator changes)."""
    return Settings.from_env(
        {
            "RECS_DATA_DIR": str(settings.data_dir),
            "RECS_ENDPOINT_PORT": str(settings.endpoint_port),
            "RECS_CHALLENGER_SHARE": share,
        }
    )


@pytest.fixture
def endpoint(settings: Settings):
    endpoint = LocalEndpoint(settings.endpoint_dir, port=settings.endpoint_port)
    yield endpoint
    endpoint.stop()


def register(
    settings: Settings, recommender, promote: bool = True, challenger: bool = False
) -> str:
    local_mlflow(settings).activate()
    with mlflow.start_run():
        logged = tracking.log_and_register(recommender, [["a", "b"], ["a"], ["c"]])
    if challenger:
        tracking.make_challenger(logged.version)
    elif promote:
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


SESSION_IDS = [f"shopper-{n}" for n in range(200)]  # one request: 256 at most


def variants_served(url: str, session_ids: list[str]) -> dict[str, tuple[str, str]]:
    """Each session id's (variant, version), asked of the running endpoint after "b": Markov
    answers c, popularity a."""
    instances = [{"session": ["b"], "k": 1, "session_id": sid} for sid in session_ids]
    answer = httpx.post(f"{url}/invocations", json={"instances": instances}, timeout=10).json()
    return {
        sid: (prediction["variant"], prediction["model"]["version"])
        for sid, prediction in zip(session_ids, answer["predictions"], strict=True)
    }


def test_the_champion_and_the_challenger_are_deployed_to_their_shares(
    settings: Settings, endpoint: LocalEndpoint
) -> None:
    champion = register(settings, MarkovRecommender().fit(HAND_SESSIONS))
    challenger = register(settings, PopularityRecommender().fit(HAND_SESSIONS), challenger=True)
    settings = with_share(settings, "0.5")
    result = deploy(settings)
    assert result.success
    metadata = {
        key: value.value
        for key, value in result.asset_materializations_for_node("recommendation_endpoint")[
            0
        ].metadata.items()
    }
    assert (metadata["model_version"], metadata["challenger_version"]) == (champion, challenger)
    assert metadata["challenger_share"] == 0.5 and metadata["action"] == "started"
    check = checks_of(result)[SERVES_CHAMPION_CHECK]
    assert check.passed  # both variants probed
    assert set(check.metadata["probe_answers"].value) == {"champion", "challenger"}

    served = variants_served(endpoint.url, SESSION_IDS)
    assert set(served.values()) == {("champion", champion), ("challenger", challenger)}
    assert variants_served(endpoint.url, SESSION_IDS) == served  # sessions keep their variant
    ping = endpoint.ping()
    packages = {name: entry["package"] for name, entry in ping["variants"].items()}

    # A new share is configuration: redeployed, the same packages serve, to new shares.
    reshared = deploy(with_share(settings, "0"))
    assert reshared.success and checks_of(reshared)[SERVES_CHAMPION_CHECK].passed
    metadata = reshared.asset_materializations_for_node("recommendation_endpoint")[0].metadata
    assert metadata["challenger_share"].value == 0.0
    assert {name: entry["package"] for name, entry in endpoint.ping()["variants"].items()} == (
        packages
    )
    assert set(variants_served(endpoint.url, SESSION_IDS).values()) == {("champion", champion)}
    forced = endpoint.invoke({"session": ["b"], "k": 1}, target_variant="challenger")[1]
    assert forced["predictions"][0]["model"]["version"] == challenger

    # The challenger promoted by hand: the champion alone serves, its package reused.
    tracking.promote(challenger)
    promoted = deploy(settings)
    assert promoted.success
    metadata = promoted.asset_materializations_for_node("recommendation_endpoint")[0].metadata
    assert metadata["model_version"].value == challenger
    assert "challenger_version" not in metadata
    assert endpoint.ping()["variants"]["champion"]["package"] == packages["challenger"]
    assert set(variants_served(endpoint.url, SESSION_IDS).values()) == {("champion", challenger)}


def test_the_challenger_share_is_configuration(settings: Settings) -> None:
    assert resources_for(settings)["endpoint"].challenger_share == 0.0
    assert resources_for(with_share(settings, "0.25"))["endpoint"].challenger_share == 0.25
    prod = Settings.from_env({"RECS_ENV": "prod", "RECS_CHALLENGER_SHARE": "0.1"})
    assert resources_for(prod)["endpoint"].challenger_share == 0.1
    for bad in ("1.5", "-0.1", "ten percent", "nan"):
        with pytest.raises(SettingsError, match="RECS_CHALLENGER_SHARE"):
            with_share(settings, bad)
