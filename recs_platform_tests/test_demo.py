"""`make demo` end to end: the default shop, every day loaded, runs recorded in the instance."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import httpx
import pytest

from recs_platform.serving.local_endpoint import LocalEndpoint
from recs_platform_tests.collection.servers import free_port

BIN = Path(sys.executable).parent
REPO = Path(__file__).parents[1]
DAY_LINE = re.compile(r"^(2026-11-\d\d)\s+(\d+)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)$", re.M)
MODEL_NAMES = "|".join(
    ["oracle", "popularity", "markov", "vsknn", "context_chains", "shopper_kinds", "gru4rec"]
    + ["sasrec", "gru_transition", "latent_intent", "blend"]
)
MODEL_LINE = re.compile(rf"^({MODEL_NAMES})\s+(0\.\d+\s+0\.\d+)", re.M)
TOTAL_LINE = re.compile(r"^total\s+(\d+)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)$", re.M)


def number(text: str) -> int:
    return int(text.replace(",", ""))


# Two demos, beside another test worker on a 2-core machine: 7 minutes measured.
@pytest.mark.timeout(1500)
@pytest.mark.slow(minutes=5)
def test_the_demo_loads_every_simulated_day_and_can_run_again(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deployments" / "dagster" / "local.yaml", home / "dagster.yaml")
    port = free_port()
    environ = {
        **os.environ,
        "RECS_DATA_DIR": str(tmp_path),
        "DAGSTER_HOME": str(home),
        "RECS_ENDPOINT_PORT": str(port),
    }
    environ.pop("RECS_ENV", None)
    endpoint = LocalEndpoint(tmp_path / "endpoint", port=port)
    try:
        run_the_demo_twice(tmp_path, home, environ, monkeypatch, endpoint)
    finally:
        endpoint.stop()


def run_the_demo_twice(tmp_path, home, environ, monkeypatch, endpoint):

    def demo(*options: str) -> str:
        result = subprocess.run(
            # The smallest search (defaults only) and one epoch keep the test short.
            [BIN / "recs-platform", "demo", "--search-trials", "1", "--epochs", "1", *options],
            capture_output=True,
            text=True,
            env=environ,
            timeout=900,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        # The runs' console shows INFO and up (dbt's command, the deployment), not Dagster's
        # DEBUG events, which buried the demo's tables; those stay in the runs' logs (below).
        printed = result.stdout + result.stderr
        assert " - dagster - INFO - build_warehouse - " in printed
        assert " - dagster - DEBUG - " not in printed
        return result.stdout

    first = demo()
    assert "gini of product views" in first
    days = DAY_LINE.findall(first)
    assert [day for day, *_ in days][:14] == [f"2026-11-{d:02d}" for d in range(1, 15)]
    files, events, rejected, _ = map(number, TOTAL_LINE.search(first).groups())
    assert events == sum(number(row[2]) for row in days) > 300_000
    assert rejected == 0
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM raw.events").fetchone() == (events,)
        assert conn.execute("SELECT count(DISTINCT event_date) FROM raw.events").fetchone() == (
            len(days),
        )
    models = dict(MODEL_LINE.findall(first))
    assert set(models) == {
        "oracle",
        "popularity",
        "markov",
        "vsknn",
        "context_chains",
        "shopper_kinds",
        "gru4rec",
        "sasrec",
        "gru_transition",
        "latent_intent",
        "blend",
    }
    mrr = {name: float(values.split()[1]) for name, values in models.items()}
    assert mrr["oracle"] > mrr["markov"] > mrr["popularity"]
    # The choice and what it cost: the rule, then the best candidate on the test day.
    chosen = re.search(r"^chosen: (\w+)", first, re.M).group(1)
    assert chosen in models and "(rule: one-standard-error rule" in first
    best_on_test = re.search(r"on the test day the best was (\w+), regret (\d+\.\d)%", first)
    assert mrr[best_on_test.group(1)] == max(v for name, v in mrr.items() if name != "oracle")
    assert "check checklist_invariants: passed" in first
    assert re.search(r"registered as session-recommender version 1, promoted to champion", first)
    report = re.search(r"^Open (\S+shop_dashboard\.html) in a browser\.$", first, re.M)
    assert Path(report.group(1)).read_text().startswith("<!DOCTYPE html>")
    passed, total = map(
        int, re.search(r"dbt tests as asset checks: (\d+) of (\d+) passed", first).groups()
    )
    manifest = json.loads((REPO / "dbt_project" / "target" / "manifest.json").read_text())
    dbt_tests = [node for node in manifest["nodes"].values() if node["resource_type"] == "test"]
    assert passed == total == len(dbt_tests) > 50, "every dbt test ran, as an asset check"
    assert re.search(r"analytics\.sessions\s+42,000 rows", first)
    assert "check serves_champion: passed" in first
    assert "Version 1 " in first and f"serves at {endpoint.url} (started)" in first
    summary = first[first.index("== Summary") :]
    assert re.search(r"MRR@20 0\.\d+, best baseline \w+ 0\.\d+, best torch model \w+", summary)
    assert f"champion: version 1, serving at {endpoint.url}" in summary
    assert "make dev" in summary and "shop_dashboard.html" in summary
    answer = httpx.post(f"{endpoint.url}/invocations", json={"session": []}).json()
    assert answer["model"]["version"] == "1" and len(answer["predictions"][0]["items"]) == 10
    # The command the demo prints works as printed (the endpoint answers only JSON requests).
    ask = re.search(r"^Ask it \(.*\): (curl .+)$", first, re.M).group(1)
    asked = subprocess.run(shlex.split(ask), capture_output=True, text=True, timeout=30)
    assert asked.returncode == 0, asked.stderr
    prediction = json.loads(asked.stdout)["predictions"][0]
    session = json.loads(shlex.split(ask)[-1])["session"]
    assert len(session) == 2 and prediction["unknown"] == [] and prediction["fallback"] is None
    assert len(prediction["items"]) == 5 and not set(session) & set(prediction["items"])

    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        ingest_runs = [run for run in runs if run.job_name == "ingest_raw_events"]
        assert {run.tags["dagster/partition"] for run in ingest_runs} == {day for day, *_ in days}
        (training_run,) = [run for run in runs if run.job_name == "train_session_model"]
        assert training_run.status == dg.DagsterRunStatus.SUCCESS
        step_starts = instance.all_logs(training_run.run_id, dg.DagsterEventType.STEP_START)
        assert {event.step_key for event in step_starts} >= {"training_dataset", "session_model"}
        (warehouse_run,) = [run for run in runs if run.job_name == "build_warehouse"]
        assert warehouse_run.tags["dagster/asset_partition_range_start"] == days[0][0]
        assert warehouse_run.tags["dagster/asset_partition_range_end"] == days[-1][0]

    # Again, training only the Markov chain: at best as good as the champion, so never promoted.
    second = demo("--candidates", "markov")
    assert "already holds the shop with seed 7; keeping it" in second
    assert TOTAL_LINE.search(second).groups() == TOTAL_LINE.search(first).groups()
    second_models = dict(MODEL_LINE.findall(second))
    assert set(second_models) == {"oracle", "markov"}
    assert second_models["markov"] == models["markov"], "same data, same evaluation"
    assert "check beats_champion: FAILED" in second
    assert re.search(
        r"version 2, not promoted; the champion stays champion \(version 1\); it is the challenger",
        second,
    )
    # The champion still serves; the challenger joins it (no share of sessions by default).
    assert "Version 1 " in second and f"serves at {endpoint.url} (reloaded)" in second
    assert "Challenger version 2 (markov) serves beside it to 0% of sessions" in second
