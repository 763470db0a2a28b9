"""One prediction contract: the registered MLflow model's `predict`, the endpoint's `/invocations`
and `mlflow models serve` answer the same requests with the same predictions; an endpoint holding
a champion and a challenger answers each instance as its variant's registered model does."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import mlflow
import pytest
from mlflow.exceptions import MlflowException
from starlette.testclient import TestClient

from recs_platform.models.markov import MarkovRecommender
from recs_platform.models.popularity import PopularityRecommender
from recs_platform.serving.inference import package_model
from recs_platform.serving.probe import probe_problems, probe_request
from recs_platform.serving.server import ServerConfig, create_app
from recs_platform.training import tracking
from recs_platform_tests.collection.servers import free_port
from recs_platform_tests.processes import wait_until_answers
from recs_platform_tests.serving.hand_model import HAND_SESSIONS

CHAMPION_URI = f"models:/{tracking.REGISTERED_MODEL}@{tracking.CHAMPION}"

REQUESTS = {
    "known, unknown, empty and a large k": [
        {"session": ["e", "a"], "k": 3},  # known: what followed a
        {"session": ["a", "zzz", "zzz", "yyy"], "k": 2},  # unknown SKUs ignored and listed
        {"session": []},  # empty: popularity, the default k
        {"session": ["nope"], "k": 1},  # nothing known: popularity
        {"session": ["a"], "k": 50},  # more than the catalogue has left
    ],
    "no k anywhere": [{"session": ["b"]}, {"session": ["c", "a"]}],
    "one instance": [{"session": ["d"], "k": 2}],
    "session ids and a forced champion": [
        {"session": ["a"], "k": 2, "session_id": "shopper-1"},
        {"session": ["b"], "variant": "champion"},
        {"session": ["c"], "k": 1},
    ],
}


class Store(NamedTuple):
    uri: str
    champion: tracking.LoggedRecommender
    challenger: tracking.LoggedRecommender

    def use(self) -> None:
        """Point MLflow here (the suite's conftest points it elsewhere after each test)."""
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A store of its own with the hand model logged, registered and promoted, and popularity
    registered as the challenger."""
    uri, artifacts = tracking.local_tracking(tmp_path_factory.mktemp("contract"))
    tracking.use_experiment(uri, tracking.EXPERIMENT, artifacts)
    with mlflow.start_run():
        logged = tracking.log_and_register(MarkovRecommender().fit(HAND_SESSIONS), [["a"]])
    tracking.promote(logged.version)
    with mlflow.start_run():
        challenger = tracking.log_and_register(PopularityRecommender().fit(HAND_SESSIONS), [["a"]])
    tracking.make_challenger(challenger.version)
    return Store(uri, logged, challenger)


@pytest.fixture
def champion(store: Store) -> tracking.LoggedRecommender:
    store.use()
    return store.champion


@pytest.fixture(scope="module")
def endpoint_from_the_registry(store: Store) -> Iterator[TestClient]:
    """`recs-platform serve --model models:/session-recommender@champion`, in process."""
    store.use()
    with TestClient(create_app(ServerConfig(model_source=CHAMPION_URI))) as client:
        yield client


@pytest.fixture(scope="module")
def endpoint_from_a_package(store: Store, tmp_path_factory) -> Iterator[TestClient]:
    """The endpoint as `recommendation_endpoint` deploys it: the champion's version, packaged."""
    store.use()
    package = package_model(
        tracking.load_registered(store.champion.model_uri),
        tmp_path_factory.mktemp("deployed") / "package",
        tracking.REGISTERED_MODEL,
        store.champion.version,
        store.champion.model_uri,
    )
    with TestClient(create_app(ServerConfig(model_source=str(package)))) as client:
        yield client


@contextlib.contextmanager
def mlflow_models_serve(model_uri: str, tracking_uri: str, timeout_s: float = 120) -> Iterator[str]:
    """`mlflow models serve --env-manager local` on 127.0.0.1 until /ping answers; its URL.

    It runs uvicorn from PATH, so the virtual environment's bin goes first; its own session, so
    stopping it stops the uvicorn it started."""
    port = free_port()
    bin_dir = Path(sys.executable).parent
    process = subprocess.Popen(
        [bin_dir / "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
         "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri,
             "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
             "NO_PROXY": "127.0.0.1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(f"{url}/ping", process, timeout_s)
        yield url
    finally:
        _stop_session(process)


def _stop_session(process: subprocess.Popen) -> None:
    for sent in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sent)
        try:
            process.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def mlflow_server(store: Store) -> Iterator[str]:
    with mlflow_models_serve(CHAMPION_URI, store.uri) as url:
        yield url


@pytest.mark.parametrize("instances", REQUESTS.values(), ids=REQUESTS.keys())
def test_the_pyfunc_the_endpoint_and_mlflow_models_serve_answer_the_same(
    champion,
    endpoint_from_the_registry: TestClient,
    endpoint_from_a_package: TestClient,
    mlflow_server: str,
    instances: list[dict],
) -> None:
    pyfunc = mlflow.pyfunc.load_model(CHAMPION_URI).predict(instances).to_dict("records")

    endpoint = endpoint_from_the_registry.post("/invocations", json={"instances": instances})
    deployed = endpoint_from_a_package.post("/invocations", json={"instances": instances})
    # MLflow's scoring server reads records under `inputs` (its `instances` is TF Serving's
    # column format, which sessions of different lengths do not fit); the endpoint takes both.
    served = httpx.post(f"{mlflow_server}/invocations", json={"inputs": instances}, timeout=30)
    endpoint_inputs = endpoint_from_the_registry.post("/invocations", json={"inputs": instances})

    for response in (endpoint, deployed, served, endpoint_inputs):
        assert response.status_code == 200, response.text
    assert served.json() == {"predictions": pyfunc}
    assert endpoint.json()["predictions"] == pyfunc
    assert deployed.json() == endpoint.json() == endpoint_inputs.json()
    # The endpoint's one extra field: the same model, once more at the top.
    assert endpoint.json()["model"] == pyfunc[0]["model"]
    assert pyfunc[0]["model"] == {
        "name": tracking.REGISTERED_MODEL,
        "version": champion.version,
        "recommender": "markov",
        "items": 5,
        "model_uri": champion.model_uri,
    }


CHALLENGER_URI = f"models:/{tracking.REGISTERED_MODEL}@{tracking.CHALLENGER}"
SESSION_IDS = [f"shopper-{n}" for n in range(40)]


@pytest.fixture(scope="module")
def endpoint_with_two_variants(store: Store) -> Iterator[TestClient]:
    """`recs-platform serve --model ...@champion --challenger ...@challenger
    --challenger-share 0.5`, in process."""
    store.use()
    config = ServerConfig(
        model_source=CHAMPION_URI, challenger_source=CHALLENGER_URI, challenger_share=0.5
    )
    with TestClient(create_app(config)) as client:
        yield client


def test_each_variant_answers_as_its_registered_model(
    store: Store, endpoint_with_two_variants: TestClient
) -> None:
    store.use()
    sessions = [["a"], ["b"], [], ["zzz", "c"]] * 10
    instances = [
        {"session": session, "k": 3, "session_id": session_id}
        for session_id, session in zip(SESSION_IDS, sessions, strict=True)
    ]
    instances.append({"session": ["a"], "k": 2, "variant": "challenger"})
    answer = endpoint_with_two_variants.post("/invocations", json={"instances": instances})
    assert answer.status_code == 200, answer.text
    unforced = [{key: value for key, value in i.items() if key != "variant"} for i in instances]
    by_variant = {
        variant: mlflow.pyfunc.load_model(uri).predict(unforced).to_dict("records")
        for variant, uri in (("champion", CHAMPION_URI), ("challenger", CHALLENGER_URI))
    }
    served = answer.json()["predictions"]
    assert {prediction["variant"] for prediction in served} == {"champion", "challenger"}
    for row, prediction in enumerate(served):
        # The pyfunc alone is an endpoint of one model, which answers as the champion.
        expected = by_variant[prediction["variant"]][row]
        assert prediction == {**expected, "variant": prediction["variant"]}
    versions = {p["variant"]: p["model"]["version"] for p in served}
    assert versions == {"champion": store.champion.version, "challenger": store.challenger.version}
    assert served[-1]["variant"] == "challenger"


def test_a_forced_challenger_is_refused_where_only_one_model_serves(
    champion, endpoint_from_the_registry: TestClient, mlflow_server: str
) -> None:
    request = [{"session": ["a"], "variant": "challenger"}]
    with pytest.raises(MlflowException, match="does not serve"):
        mlflow.pyfunc.load_model(CHAMPION_URI).predict(request)
    endpoint = endpoint_from_the_registry.post("/invocations", json={"instances": request})
    served = httpx.post(f"{mlflow_server}/invocations", json={"inputs": request}, timeout=30)
    assert endpoint.status_code == 400 and "does not serve" in endpoint.json()["error"]
    assert served.status_code == 400 and "does not serve" in served.json()["message"]


def test_the_answers_follow_the_contract_s_rules(champion) -> None:
    pyfunc = mlflow.pyfunc.load_model(CHAMPION_URI)
    known, unknown, empty, nothing_known, large_k = pyfunc.predict(
        REQUESTS["known, unknown, empty and a large k"]
    ).to_dict("records")
    assert known["items"] == ["b", "c", "d"] and known["fallback"] is None
    assert unknown["items"] == ["b", "c"] and unknown["unknown"] == ["zzz", "yyy"]
    assert empty["items"] == ["a", "b", "c", "d", "e"]  # k defaults to 10; 5 items exist
    assert empty["fallback"] == nothing_known["fallback"] == "popularity"
    assert nothing_known["items"] == ["a"] and nothing_known["unknown"] == ["nope"]
    assert sorted(large_k["items"]) == ["b", "c", "d", "e"]


def test_the_deployment_probe_passes_the_mlflow_server_s_answer(champion, mlflow_server) -> None:
    catalogue = tracking.load_registered(CHAMPION_URI).item_ids
    request = probe_request(catalogue)
    served = httpx.post(
        f"{mlflow_server}/invocations", json={"inputs": request["instances"]}, timeout=30
    )
    assert probe_problems(request, served.status_code, served.json(), "1", catalogue) == []
