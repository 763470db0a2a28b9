"""The inference server's HTTP face: SageMaker's /ping and /invocations, never a 5xx for bad
input (a property-based test sends thousands of generated requests), models swapped in place."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from recs_platform.models.markov import MarkovRecommender
from recs_platform.models.popularity import PopularityRecommender
from recs_platform.serving.inference import LoadedModel, ServedModels, package_model
from recs_platform.serving.server import ServerConfig, create_app, write_current
from recs_platform_tests.serving.servers import running_inference_server, serving_in_a_thread

SESSIONS = [["a", "b"], ["a", "b"], ["a", "b", "c"], ["a", "c"], ["a", "c", "d"], ["d", "e"]]


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    return package_model(
        MarkovRecommender().fit(SESSIONS), folder, "session-recommender", "3", "models:/m/3"
    )


@pytest.fixture(scope="module")
def client(model_folder: Path):
    with TestClient(create_app(ServerConfig(model_source=str(model_folder)))) as test_client:
        yield test_client


def test_ping_names_the_model(client: TestClient) -> None:
    response = client.get("/ping")
    assert response.status_code == 200
    assert response.json()["model"]["version"] == "3"


def test_invocations_answers_the_contract(client: TestClient) -> None:
    response = client.post(
        "/invocations", json={"instances": [{"session": ["a"], "k": 2}, {"session": ["x"]}]}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    first, second = response.json()["predictions"]
    assert first["items"] == ["b", "c"]
    assert second["unknown"] == ["x"] and second["fallback"] == "popularity"
    # SageMaker runtime's own path answers the same (boto3's sagemaker-runtime client works).
    runtime = client.post("/endpoints/recs/invocations", json={"session": ["a"], "k": 2})
    assert runtime.json()["predictions"][0]["items"] == ["b", "c"]


@pytest.mark.parametrize(
    ("method", "path", "content", "headers", "status", "reason"),
    [
        ("POST", "/invocations", b"", {}, 400, "empty body"),
        ("POST", "/invocations", b"{", {}, 400, "not JSON"),
        ("POST", "/invocations", b'{"session": 5}', {}, 400, "must be a list"),
        ("POST", "/invocations", b"a,b", {"content-type": "text/csv"}, 415, "send JSON"),
        ("POST", "/invocations", b"x" * 1_100_000, {}, 413, "larger than"),
        ("GET", "/invocations", b"", {}, 405, "not allowed"),
        ("GET", "/predict", b"", {}, 404, "no route"),
    ],
)
def test_bad_requests_get_a_4xx_with_a_reason(
    client: TestClient, method, path, content, headers, status, reason
) -> None:
    response = client.request(method, path, content=content, headers=headers)
    assert response.status_code == status
    assert reason in response.json()["error"]


def test_a_ten_thousand_item_session_is_answered(client: TestClient) -> None:
    session = [f"unknown-{n}" for n in range(9_998)] + ["b", "a"]
    response = client.post("/invocations", json={"session": session, "k": 10})
    assert response.status_code == 200
    (prediction,) = response.json()["predictions"]
    assert prediction["items"] == ["c", "d", "e"]  # after a, never b or a
    assert len(prediction["unknown"]) == 9_998


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)
sessions = st.lists(st.sampled_from(["a", "b", "c", "d", "e", "x", ""]) | st.text(), max_size=30)
instances = st.fixed_dictionaries(
    {"session": sessions | json_values},
    optional={"k": st.integers(min_value=-5) | json_values},
)


def dumps(document) -> bytes:
    return json.dumps(document).encode()  # stdlib: huge integers and NaN too


bodies = (
    st.binary(max_size=200)
    | json_values.map(dumps)
    | instances.map(dumps)
    | st.lists(instances | json_values, max_size=4).map(lambda i: dumps({"instances": i}))
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies, content_type=st.sampled_from(["application/json", "text/plain", "x/y"]))
def test_no_generated_request_gets_a_5xx(client: TestClient, body: bytes, content_type) -> None:
    response = client.post("/invocations", content=body, headers={"content-type": content_type})
    assert response.status_code in (200, 400, 413, 415), response.text
    document = response.json()
    if response.status_code == 200:
        for prediction in document["predictions"]:
            assert len(prediction["items"]) == len(set(prediction["items"]))
            assert prediction["scores"] == sorted(prediction["scores"], reverse=True)
    else:
        assert document["error"]


def test_the_endpoint_folder_swaps_models_without_a_gap(tmp_path: Path) -> None:
    endpoint = tmp_path / "endpoint"
    (endpoint / "models").mkdir(parents=True)
    package_model(MarkovRecommender().fit(SESSIONS), endpoint / "models/v1", "m", "1", "u1")
    package_model(PopularityRecommender().fit(SESSIONS), endpoint / "models/v2", "m", "2", "u2")
    app = create_app(ServerConfig(endpoint_dir=endpoint, poll_seconds=0.05))
    with TestClient(app) as client:
        assert client.get("/ping").status_code == 503  # nothing deployed yet
        assert client.post("/invocations", json={"session": []}).status_code == 503
        write_current(endpoint, "models/v1", "1")
        _wait_for_version(client, "1")
        (endpoint / "models/broken").mkdir()
        write_current(endpoint, "models/broken", "9")  # fails to load: v1 keeps serving
        time.sleep(0.3)
        ping = client.get("/ping").json()
        assert ping["model"]["version"] == "1"
        write_current(endpoint, "models/v2", "2")
        _wait_for_version(client, "2")
        response = client.post("/invocations", json={"session": ["a"], "k": 2}).json()
        assert response["model"]["recommender"] == "popularity"
        assert response["predictions"][0]["items"] == ["b", "c"]


def _wait_for_version(client: TestClient, version: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = client.get("/ping")
        if response.status_code == 200 and response.json()["model"]["version"] == version:
            return
        time.sleep(0.02)
    raise AssertionError(f"version {version} never served; last /ping: {response.json()}")


def test_torch_models_are_served_with_one_thread(tmp_path: Path) -> None:
    import torch

    from recs_platform.models.gru4rec import GRU4RecRecommender

    model = GRU4RecRecommender(epochs=1, hidden_size=8, embedding_size=8, batch_size=2)
    folder = package_model(model.fit(SESSIONS), tmp_path / "gru", "m", "1", "u")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        app = create_app(ServerConfig(model_source=str(folder)))
        assert torch.get_num_threads() == 1  # a busy second core stalls every op otherwise
        with TestClient(app) as client:
            response = client.post("/invocations", json={"session": ["a"], "k": 2})
        assert response.status_code == 200 and len(response.json()["predictions"][0]["items"]) == 2
    finally:
        torch.set_num_threads(before)


class SlowMarkov(MarkovRecommender):
    """A Markov chain whose every call takes 50 ms and is recorded (how many prefixes), and
    which fails a call that holds the SKU "boom"."""

    def __init__(self):
        super().__init__()
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def score(self, prefixes):
        with self.lock:
            self.calls.append(len(prefixes))
        time.sleep(0.05)
        if any("boom" in prefix for prefix in prefixes):
            raise RuntimeError("boom")
        return super().score(prefixes)


def _serve_slowly(model_folder: Path, max_batch_instances: int):
    app = create_app(
        ServerConfig(model_source=str(model_folder), max_batch_instances=max_batch_instances)
    )
    slow = SlowMarkov().fit(SESSIONS + [["boom", "a"]])
    app.use(ServedModels.single(LoadedModel(slow, "session-recommender", "4", "memory")))
    slow.calls.clear()  # the popularity ranking computed on loading
    return app, slow


def _post_together(url: str, bodies: list[dict]) -> list[httpx.Response]:
    with ThreadPoolExecutor(len(bodies)) as pool, httpx.Client(base_url=url, timeout=10) as client:
        return list(pool.map(lambda body: client.post("/invocations", json=body), bodies))


@pytest.mark.parametrize("max_batch_instances", [1, 4])
def test_requests_that_queue_are_scored_together(model_folder: Path, max_batch_instances) -> None:
    """Twelve requests at once on a model that takes 50 ms a call: with batching the ones that
    queued behind the first share calls of at most four instances, each answered as if alone;
    with `max_batch_instances` 1 every request is its own call."""
    app, slow = _serve_slowly(model_folder, max_batch_instances)
    sessions = [["a"], ["a", "b"], ["c"], ["d"], ["a", "c"], ["b"]] * 2
    bodies = [{"session": session, "k": 3} for session in sessions]
    with serving_in_a_thread(app) as url:
        responses = _post_together(url, bodies)
        alone = [httpx.post(f"{url}/invocations", json=body, timeout=10) for body in bodies]
    assert [response.status_code for response in responses] == [200] * len(bodies)
    assert [r.json() for r in responses] == [r.json() for r in alone]
    together = slow.calls[: -len(bodies)]  # the lone requests made the last calls
    assert sum(together) == len(bodies) and max(together) <= max_batch_instances
    if max_batch_instances == 1:
        assert len(together) == len(bodies)
    else:
        assert len(together) < len(bodies)  # the requests that queued shared calls
    assert app.batcher.calls == len(slow.calls)


def test_a_request_that_breaks_its_batch_fails_alone(model_folder: Path) -> None:
    app, slow = _serve_slowly(model_folder, 32)
    bodies = [{"session": ["a"], "k": 2}] * 3 + [{"session": ["boom"], "k": 2}] * 2
    bodies += [{"session": ["c"], "k": 2}] * 3
    with serving_in_a_thread(app) as url:
        responses = _post_together(url, bodies)
    statuses = [response.status_code for response in responses]
    assert statuses == [200] * 3 + [500] * 2 + [200] * 3
    assert responses[0].json()["predictions"][0]["items"] == ["b", "c"]
    assert responses[-1].json()["predictions"][0]["items"][0] == "d"  # c was followed by d
    assert max(slow.calls) > 1  # they did share a call before the failing one was found


def _worker_processes(parent: int) -> list[int]:
    """The pids of `parent`'s children that run a multiprocessing worker (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == parent and b"spawn_main" in command:
            found.append(int(stat.parent.name))
    return found


def test_workers_answer_from_as_many_processes(model_folder: Path) -> None:
    started: list = []
    with running_inference_server(model_folder, "--workers", "2", started=started) as url:
        assert len(_worker_processes(started[0].pid)) == 2
        bodies = [{"session": ["a"], "k": 2}] * 8
        responses = _post_together(url, bodies)
    assert {r.status_code for r in responses} == {200}
    assert {tuple(r.json()["predictions"][0]["items"]) for r in responses} == {("b", "c")}


def test_workers_refuse_a_model_that_is_not_there(tmp_path: Path) -> None:
    from recs_platform_tests.collection.servers import BIN

    missing = tmp_path / "nothing-here"
    result = subprocess.run(
        [BIN / "recs-platform", "serve", "--model", str(missing), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "nothing-here" in result.stderr
