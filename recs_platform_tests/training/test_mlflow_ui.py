"""`mlflow ui` on the same local store shows the runs, their metrics and the registry."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import mlflow
import pytest

from recs_platform.models.markov import MarkovRecommender
from recs_platform.training import tracking

MLFLOW = Path(sys.executable).parent / "mlflow"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def store_with_a_champion(tmp_path):
    uri, artifacts = tracking.local_tracking(tmp_path)
    tracking.use_experiment(uri, tracking.EXPERIMENT, artifacts)
    model = MarkovRecommender().fit([["a", "b", "c"], ["b", "c"]])
    with mlflow.start_run(run_name="ui-check") as run:
        mlflow.log_metric("markov.mrr_20", 0.42)
        logged = tracking.log_and_register(model, [["a"], ["b"], ["c"]])
    tracking.promote(logged.version)
    return uri, run.info.run_id


def test_the_ui_serves_runs_metrics_and_the_champion(store_with_a_champion):
    uri, run_id = store_with_a_champion
    port = free_port()
    server = subprocess.Popen(
        [MLFLOW, "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, "mlflow ui exited"
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "mlflow ui did not come up in 90 s"
            time.sleep(0.5)
        assert "<html" in httpx.get(base, timeout=10).text.lower()
        run = httpx.get(f"{base}/api/2.0/mlflow/runs/get", params={"run_id": run_id}).json()
        metrics = {m["key"]: m["value"] for m in run["run"]["data"]["metrics"]}
        assert metrics["markov.mrr_20"] == 0.42
        model = httpx.get(
            f"{base}/api/2.0/mlflow/registered-models/get",
            params={"name": tracking.REGISTERED_MODEL},
        ).json()["registered_model"]
        assert {"alias": "champion", "version": "1"} in model["aliases"]
    finally:
        server.terminate()
        server.wait(timeout=30)
