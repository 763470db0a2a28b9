"""`mlflow ui` on the same local store shows the runs, their metrics and the registry."""

import subprocess
import sys
from pathlib import Path

import httpx
import mlflow
import pytest

from recs_platform.models.markov import MarkovRecommender
from recs_platform.training import tracking
from recs_platform_tests.collection.servers import free_port
from recs_platform_tests.processes import stop, wait_until_answers

MLFLOW = Path(sys.executable).parent / "mlflow"


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
        wait_until_answers(f"{base}/health", server, timeout_s=90)
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
        stop(server)
