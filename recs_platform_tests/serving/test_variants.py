"""Two models on the same traffic: one endpoint process holds a champion (Markov, version 5) and a
challenger (popularity, version 6), and answers each session with one of them, always the same.

After "b" the hand model's Markov chain ranks c first and popularity ranks a first, so the items
tell which model answered, beside the variant and version the answer names.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections import Counter
from pathlib import Path

import boto3
import pytest
from starlette.testclient import TestClient

from recs_platform.models.markov import MarkovRecommender
from recs_platform.models.popularity import PopularityRecommender
from recs_platform.serving.inference import (
    ChallengerPackage,
    Variant,
    package_model,
    session_bucket,
    variant_for_session,
)
from recs_platform.serving.local_endpoint import EndpointError, LocalEndpoint
from recs_platform.serving.sagemaker_runtime import invoke_sagemaker, sagemaker_runtime_client
from recs_platform.serving.server import ServerConfig, create_app, read_current, write_current
from recs_platform_tests.fakes import FAKE_AWS_REGION
from recs_platform_tests.serving.hand_model import HAND_SESSIONS
from recs_platform_tests.serving.servers import serving_in_a_thread

SHARE = 0.3
CHAMPION_TOP, CHALLENGER_TOP = "c", "a"  # after "b"
SESSION_IDS = [f"shopper-{n}" for n in range(400)]


def binomial_bound(sessions: int, share: float, sigmas: float = 4.5) -> float:
    """How far from `sessions * share` a count of challenger sessions may fall by chance: 4.5
    standard deviations (one run in ~150,000 of a truly random assignment would pass it)."""
    return sigmas * math.sqrt(sessions * share * (1 - share))


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("variants")
    return {
        "5": package_model(
            MarkovRecommender().fit(HAND_SESSIONS), root / "v5", "session-recommender", "5", "u5"
        ),
        "6": package_model(
            PopularityRecommender().fit(HAND_SESSIONS),
            root / "v6",
            "session-recommender",
            "6",
            "u6",
        ),
    }


@pytest.fixture(scope="module")
def two_models(packages) -> ServerConfig:
    return ServerConfig(
        model_source=str(packages["5"]),
        challenger_source=str(packages["6"]),
        challenger_share=SHARE,
    )


@pytest.fixture(scope="module")
def client(two_models: ServerConfig):
    with TestClient(create_app(two_models)) as test_client:
        yield test_client


def ask(client: TestClient, instances: list[dict], headers: dict | None = None) -> list[dict]:
    response = client.post("/invocations", json={"instances": instances}, headers=headers or {})
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def variants_of(client: TestClient, session_ids: list[str]) -> dict[str, str]:
    """The variant that answers each session id (256 instances per request at most)."""
    seen = {}
    for start in range(0, len(session_ids), 200):
        batch = session_ids[start : start + 200]
        instances = [{"session": ["b"], "k": 1, "session_id": sid} for sid in batch]
        for sid, prediction in zip(batch, ask(client, instances), strict=True):
            seen[sid] = prediction["variant"]
    return seen


# --- the split ---------------------------------------------------------------------------------


def test_a_session_id_falls_where_its_sha256_says() -> None:
    """The split is sha256, not Python's salted `hash`: a facade or Lambda in another process
    (or language) puts a session where the endpoint does. sha256("a") starts ca978112ca1bbdca."""
    assert session_bucket("a") == int("ca978112ca1bbdca", 16) / 2**64
    assert variant_for_session("a", 0.79) is Variant.CHAMPION  # 0.7914 is not below 0.79
    assert variant_for_session("a", 0.80) is Variant.CHALLENGER


def test_a_session_always_sees_the_same_variant(client, two_models) -> None:
    first = variants_of(client, SESSION_IDS)
    # Asked again, alone, in reverse order and by another process's worth of app: the same.
    assert variants_of(client, SESSION_IDS[::-1]) == first
    for sid in SESSION_IDS[:20]:
        (alone,) = ask(client, [{"session": ["b"], "session_id": sid}])
        assert alone["variant"] == first[sid]
    with TestClient(create_app(two_models)) as restarted:
        assert variants_of(restarted, SESSION_IDS) == first
    assert set(first.values()) == {"champion", "challenger"}


@pytest.mark.parametrize("share", [0.05, 0.3, 0.5, 0.9])
def test_the_challenger_gets_its_share_of_sessions(share: float) -> None:
    sessions = 20_000
    challengers = sum(
        variant_for_session(f"visitor-{n:06d}", share) is Variant.CHALLENGER
        for n in range(sessions)
    )
    assert abs(challengers - sessions * share) <= binomial_bound(sessions, share)


def test_the_endpoint_splits_sessions_by_the_configured_share(client) -> None:
    session_ids = [f"visitor-{n:05d}" for n in range(2_000)]
    counts = Counter(variants_of(client, session_ids).values())
    assert abs(counts["challenger"] - 2_000 * SHARE) <= binomial_bound(2_000, SHARE)


def test_raising_the_share_keeps_the_challengers_sessions() -> None:
    """A ramp-up (10 % then 30 %) moves sessions from the champion only, never back."""
    session_ids = [f"visitor-{n:05d}" for n in range(5_000)]
    at_10 = {sid for sid in session_ids if variant_for_session(sid, 0.1) is Variant.CHALLENGER}
    at_30 = {sid for sid in session_ids if variant_for_session(sid, 0.3) is Variant.CHALLENGER}
    assert at_10 and at_10 < at_30


def test_shares_zero_and_one_and_no_session_id() -> None:
    assert {variant_for_session(sid, 0.0) for sid in SESSION_IDS} == {Variant.CHAMPION}
    assert {variant_for_session(sid, 1.0) for sid in SESSION_IDS} == {Variant.CHALLENGER}
    assert variant_for_session(None, 1.0) is Variant.CHAMPION


# --- what the answer says ----------------------------------------------------------------------


def test_each_answer_names_its_variant_and_the_model_that_made_it(client) -> None:
    routed = variants_of(client, SESSION_IDS)
    on_champion = next(sid for sid in SESSION_IDS if routed[sid] == "champion")
    on_challenger = next(sid for sid in SESSION_IDS if routed[sid] == "challenger")
    response = client.post(
        "/invocations",
        json={
            "instances": [
                {"session": ["b"], "k": 1, "session_id": on_challenger},
                {"session": ["b"], "k": 1, "session_id": on_champion},
                {"session": ["b"], "k": 1},  # no session id: the champion
            ]
        },
    ).json()
    challenger, champion, anonymous = response["predictions"]
    assert (challenger["variant"], challenger["model"]["version"]) == ("challenger", "6")
    assert challenger["items"] == [CHALLENGER_TOP]
    assert challenger["model"]["recommender"] == "popularity"
    assert (champion["variant"], champion["model"]["version"]) == ("champion", "5")
    assert champion["items"] == [CHAMPION_TOP]
    assert (anonymous["variant"], anonymous["model"]["version"]) == ("champion", "5")
    # The first contract's top-level model: the first prediction's.
    assert response["model"] == challenger["model"]


def test_a_forced_variant_is_honoured(client) -> None:
    routed = variants_of(client, SESSION_IDS)
    on_champion = next(sid for sid in SESSION_IDS if routed[sid] == "champion")
    on_challenger = next(sid for sid in SESSION_IDS if routed[sid] == "challenger")
    forced = ask(
        client,
        [
            {"session": ["b"], "k": 1, "session_id": on_champion, "variant": "challenger"},
            {"session": ["b"], "k": 1, "session_id": on_challenger, "variant": "champion"},
            {"session": ["b"], "k": 1, "variant": "challenger"},
        ],
    )
    assert [(p["variant"], p["items"]) for p in forced] == [
        ("challenger", [CHALLENGER_TOP]),
        ("champion", [CHAMPION_TOP]),
        ("challenger", [CHALLENGER_TOP]),
    ]
    # SageMaker's TargetVariant (its runtime header) forces every instance of the request, and
    # the answer says which variant answered, as SageMaker does.
    response = client.post(
        "/invocations",
        json={"instances": [{"session": ["b"], "k": 1, "session_id": on_challenger}]},
        headers={"X-Amzn-SageMaker-Target-Variant": "champion"},
    )
    assert response.json()["predictions"][0]["variant"] == "champion"
    assert response.headers["x-amzn-invoked-production-variant"] == "champion"
    conflict = client.post(
        "/invocations",
        json={"instances": [{"session": ["b"], "variant": "challenger"}]},
        headers={"X-Amzn-SageMaker-Target-Variant": "champion"},
    )
    assert conflict.status_code == 400
    assert "targets variant champion" in conflict.json()["error"]


def test_ping_names_both_variants_and_their_shares(client) -> None:
    ping = client.get("/ping").json()
    assert ping["model"]["version"] == "5"  # the champion, as before
    variants = ping["variants"]
    assert {name: entry["model"]["version"] for name, entry in variants.items()} == {
        "champion": "5",
        "challenger": "6",
    }
    assert variants["challenger"]["share"] == SHARE
    assert variants["champion"]["share"] == pytest.approx(1 - SHARE)


@pytest.mark.parametrize(
    ("instance", "reason"),
    [
        ({"session": [], "session_id": 5}, "session_id must be a non-empty string"),
        ({"session": [], "session_id": ""}, "session_id must be a non-empty string"),
        ({"session": [], "session_id": "s" * 257}, "session_id is longer than 256"),
        ({"session": [], "variant": "blue"}, 'variant must be "champion" or "challenger"'),
        ({"session": [], "variant": 1}, "not a number"),
    ],
)
def test_a_bad_session_id_or_variant_is_a_400(client, instance: dict, reason: str) -> None:
    response = client.post("/invocations", json={"instances": [instance]})
    assert response.status_code == 400
    assert reason in response.json()["error"]


# --- one model ---------------------------------------------------------------------------------


def test_without_a_challenger_everything_goes_to_the_champion(packages) -> None:
    config = ServerConfig(model_source=str(packages["5"]), challenger_share=0.9)
    with TestClient(create_app(config)) as client:
        assert set(variants_of(client, SESSION_IDS).values()) == {"champion"}
        assert list(client.get("/ping").json()["variants"]) == ["champion"]
        refused = client.post(
            "/invocations", json={"session": ["b"], "session_id": "x", "variant": "challenger"}
        )
    assert refused.status_code == 400
    assert (
        "challenger, which this endpoint does not serve (it serves champion)"
        in (refused.json()["error"])
    )


def test_a_one_model_container_answers_as_the_variant_it_is_told(packages) -> None:
    """A SageMaker production variant's container: one model, told it is the challenger."""
    config = ServerConfig(model_source=str(packages["6"]), variant="challenger")
    with TestClient(create_app(config)) as client:
        response = client.post("/invocations", json={"session": ["b"], "session_id": "s-1"})
        (prediction,) = response.json()["predictions"]
        assert (prediction["variant"], prediction["model"]["version"]) == ("challenger", "6")
        assert response.headers["x-amzn-invoked-production-variant"] == "challenger"
        forced = client.post("/invocations", json={"session": ["b"], "variant": "champion"})
    assert forced.status_code == 400 and "does not serve" in forced.json()["error"]


def test_server_config_refuses_what_cannot_be_served(packages) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        ServerConfig(model_source="m", challenger_source="c", challenger_share=1.5)
    with pytest.raises(ValueError, match="goes with a model source"):
        ServerConfig(endpoint_dir=Path("e"), challenger_source="c")
    with pytest.raises(ValueError, match="the model source is the champion"):
        ServerConfig(model_source="m", challenger_source="c", variant="challenger")


# --- the endpoint folder -----------------------------------------------------------------------


def _wait_for(client: TestClient, versions: dict[str, str], share: float | None = None) -> dict:
    deadline = time.monotonic() + 10
    ping = {}
    while time.monotonic() < deadline:
        ping = client.get("/ping").json()
        served = {name: v["model"]["version"] for name, v in ping.get("variants", {}).items()}
        if served == versions and (
            share is None or ping["variants"]["challenger"]["share"] == share
        ):
            return ping
        time.sleep(0.02)
    raise AssertionError(f"never served {versions} at share {share}; last /ping: {ping}")


def test_the_endpoint_folder_serves_both_and_a_new_share_reloads_nothing(
    tmp_path: Path, packages
) -> None:
    endpoint = tmp_path / "endpoint"
    for version in ("5", "6"):
        shutil.copytree(packages[version], endpoint / "models" / f"v{version}")
    app = create_app(ServerConfig(endpoint_dir=endpoint, poll_seconds=0.05))
    with TestClient(app) as client:
        write_current(endpoint, "models/v5", "5", ("models/v6", "6"), 0.3)
        _wait_for(client, {"champion": "5", "challenger": "6"}, 0.3)
        loaded = dict(app.served.models)
        assert len(set(variants_of(client, SESSION_IDS).values())) == 2

        write_current(endpoint, "models/v5", "5", ("models/v6", "6"), 0.0)
        _wait_for(client, {"champion": "5", "challenger": "6"}, 0.0)
        assert dict(app.served.models) == loaded  # the same loaded models, not reloaded ones
        assert all(loaded[v] is app.served.models[v] for v in loaded)
        assert set(variants_of(client, SESSION_IDS).values()) == {"champion"}

        write_current(endpoint, "models/v5", "5")  # the challenger retired
        _wait_for(client, {"champion": "5"})
        assert set(variants_of(client, SESSION_IDS).values()) == {"champion"}


# --- through boto3's sagemaker-runtime client --------------------------------------------------


def test_the_runtime_client_s_target_variant_reaches_the_local_endpoint(
    two_models: ServerConfig, fake_aws_env: None
) -> None:
    with serving_in_a_thread(create_app(two_models)) as url:
        runtime = sagemaker_runtime_client(
            timeout_s=5, region_name=FAKE_AWS_REGION, endpoint_url=url
        )
        payload = {"instances": [{"session": ["b"], "k": 1}]}  # no session id: the champion
        status, document = invoke_sagemaker(runtime, "recs", payload, "challenger")
        assert status == 200
        assert document["predictions"][0]["variant"] == "challenger"
        assert document["predictions"][0]["items"] == [CHALLENGER_TOP]
        raw = boto3.client(
            "sagemaker-runtime", region_name=FAKE_AWS_REGION, endpoint_url=url
        ).invoke_endpoint(
            EndpointName="recs",
            ContentType="application/json",
            Body=b'{"session": ["b"]}',
            TargetVariant="challenger",
        )
        assert raw["InvokedProductionVariant"] == "challenger"


def test_an_endpoint_process_from_before_two_variants_is_told_to_restart(
    tmp_path: Path, packages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A detached server started by an older recs-platform keeps running across an upgrade:
    its /ping names one package and no variants. A champion-only deploy still recognises what
    it serves; a deploy with a challenger fails at once saying how to restart it."""
    endpoint_dir = tmp_path / "endpoint"
    shutil.copytree(packages["5"], endpoint_dir / "models" / "v5-old")
    write_current(endpoint_dir, "models/v5-old", "5")
    (endpoint_dir / "server.json").write_text(json.dumps({"pid": os.getpid()}))  # alive
    old_ping = {"status": "ok", "model": {"version": "5"}, "package": "models/v5-old"}
    monkeypatch.setattr(LocalEndpoint, "ping", lambda self: old_ping)
    endpoint = LocalEndpoint(endpoint_dir, timeout_s=30)

    assert endpoint.deploy(packages["5"], "5").action == "unchanged"
    started = time.monotonic()
    with pytest.raises(EndpointError, match="serves one model: stop it"):
        endpoint.deploy(packages["5"], "5", ChallengerPackage(packages["6"], "6", 0.2))
    assert time.monotonic() - started < 5  # not the 30 s of the timeout
    assert read_current(endpoint_dir) == {"model": "models/v5-old", "version": "5"}
