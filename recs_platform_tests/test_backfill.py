"""A three-day backfill launched through Dagster's GraphQL API, run by the daemon under the repo's
dagster.yaml (the DuckDB writer pool limited to 1, a cap on concurrent runs): every run
succeeds (no DuckDB lock errors) and the warehouse equals the one built day by day."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import httpx
import pytest

from recs_platform.definitions import DAILY_JOB, build_definitions
from recs_platform.settings import Settings
from recs_platform.simulation import ShopConfig, simulate_to_landing
from recs_platform_tests.collection.servers import free_port
from recs_platform_tests.processes import wait_until_answers

pytestmark = pytest.mark.timeout(600)

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
SHOP = ShopConfig(days=3, sessions_per_day=120, n_items=150, n_categories=8, seed=5)
DAYS = [(SHOP.start + dt.timedelta(days=n)).isoformat() for n in range(SHOP.days)]
TABLES = [
    "raw.events",
    "raw.rejected_events",
    "analytics.stg_events",
    "analytics.sessions",
    "analytics.daily_session_stats",
    "analytics.item_stats",
    "analytics.training_sessions",
]
LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
  }
}"""
STATUS = """
query Status($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    ... on PartitionBackfill { status }
    ... on PythonError { message }
  }
}"""
RUNS = """
{ runsOrError { ... on Runs { results { runId jobName status tags { key value } } } } }
"""


def data_dir_with_the_shop(root: Path) -> Path:
    simulate_to_landing(SHOP, root / "landing")
    return root


def day_by_day(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference: each day's raw_events, then that day's dbt models, one after another.

    The Settings name the data folder; the environment names another, which dbt must not use."""
    decoy = data_dir.parent / "not-this-data-dir"
    monkeypatch.setenv("RECS_DATA_DIR", str(decoy))
    settings = Settings(env="local", data_dir=data_dir, partitions_start=SHOP.start)
    definitions = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    for day in DAYS:
        result = definitions.resolve_job_def(DAILY_JOB).execute_in_process(
            partition_key=day, instance=instance
        )
        assert result.success, day
    assert not decoy.exists(), "dbt built a warehouse outside the Settings' data folder"


def graphql(url: str, query: str, **variables) -> dict:
    response = httpx.post(
        f"{url}/graphql", json={"query": query, "variables": variables}, timeout=60
    )
    assert response.status_code == 200, response.text[:2000]
    document = response.json()
    assert "errors" not in document, document["errors"]
    return document["data"]


@pytest.mark.slow(minutes=3)
def test_days_backfilled_through_the_daemon_equal_day_by_day_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = data_dir_with_the_shop(tmp_path / "reference")
    day_by_day(reference, monkeypatch)

    backfilled = tmp_path / "backfilled"
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deployments/dagster/local.yaml", home / "dagster.yaml")
    port = free_port()
    environ = {
        **os.environ,
        "RECS_DATA_DIR": str(backfilled),
        "DAGSTER_HOME": str(home),
        "RECS_PARTITIONS_START": SHOP.start.isoformat(),
        "NO_PROXY": "127.0.0.1",
    }
    log = open(tmp_path / "dagster-dev.log", "wb")  # noqa: SIM115 (closed in the finally below)
    process = subprocess.Popen(
        [
            BIN / "dagster",
            "dev",
            "-m",
            "recs_platform.definitions",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env=environ,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(f"{url}/server_info", process, timeout_s=120)
        # The sensor would load the landing days by itself; this test is about the backfill. The
        # shop lands only once the sensor is stopped and no tick of it is still listing files.
        stop_landing_sensor(url)
        data_dir_with_the_shop(backfilled)
        assets = ["raw_events", "stg_events", "stg_event_duplicates", "int_session_events",
                  "sessions", "daily_session_stats", "item_stats", "training_sessions"]  # fmt: skip
        launched = graphql(
            url,
            LAUNCH,
            params={
                "partitionNames": DAYS,
                "assetSelection": [{"path": [name]} for name in assets],
            },
        )["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_id = launched["backfillId"]

        def finished() -> bool:
            status = graphql(url, STATUS, id=backfill_id)["partitionBackfillOrError"]["status"]
            assert status not in ("FAILED", "CANCELED", "COMPLETED_FAILED"), status
            return status in ("COMPLETED", "COMPLETED_SUCCESS")

        wait_for(finished, 300, "the backfill to complete")
        runs = graphql(url, RUNS)["runsOrError"]["results"]
        backfill_runs = [
            run for run in runs if {"key": "dagster/backfill", "value": backfill_id} in run["tags"]
        ]
        landing_runs = [
            run
            for run in runs
            if {"key": "dagster/sensor_name", "value": "landing_zone_sensor"} in run["tags"]
        ]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        log.close()

    # The landing sensor loaded nothing behind the backfill's back, and raw_events and the dbt
    # models share the single-run backfill policy: the days are one run.
    assert landing_runs == []
    (run,) = backfill_runs
    assert run["status"] == "SUCCESS"
    tags = {tag["key"]: tag["value"] for tag in run["tags"]}
    assert (
        tags["dagster/asset_partition_range_start"],
        tags["dagster/asset_partition_range_end"],
    ) == (DAYS[0], DAYS[-1])
    output = (tmp_path / "dagster-dev.log").read_text(errors="replace")
    assert "Could not set lock" not in output and "Conflicting lock" not in output
    for table in TABLES:
        assert table_rows(backfilled, table) == table_rows(reference, table), table


def table_rows(data_dir: Path, table: str) -> list[tuple]:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as conn:
        columns = [
            name
            for (name,) in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                table.split("."),
            ).fetchall()
            # Where the files were read from differs between the two data folders.
            if name not in ("source_file", "loaded_at")
        ]
        assert columns, table
        listed = ", ".join(f'"{name}"' for name in columns)
        return sorted(conn.execute(f"SELECT {listed} FROM {table}").fetchall(), key=repr)


def stop_landing_sensor(url: str) -> None:
    query = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }"  # noqa: E501
    (repository,) = graphql(url, query)["repositoriesOrError"]["nodes"]
    selector = {
        "repositoryName": repository["name"],
        "repositoryLocationName": repository["location"]["name"],
        "sensorName": "landing_zone_sensor",
    }
    query = "query S($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { ... on Sensor { id } } }"  # noqa: E501
    sensor = graphql(url, query, s=selector)["sensorOrError"]
    mutation = (
        "mutation Stop($id: String) { stopSensor(id: $id) { __typename "
        "... on PythonError { message } } }"
    )
    for _ in range(5):
        # Where no state of the sensor is stored yet, Dagster adds a stopped one; the daemon's
        # first tick may be adding its own at that moment (a unique key, a PythonError). The
        # next try finds the state stored and updates it.
        response = httpx.post(
            f"{url}/graphql",
            json={"query": mutation, "variables": {"id": sensor["id"]}},
            timeout=60,
        )
        stopped = response.json()["data"]["stopSensor"]
        if stopped["__typename"] != "PythonError":
            break
        time.sleep(1)
    assert stopped["__typename"] == "StopSensorMutationResult", stopped
    # A tick the daemon began before the stop still runs to its end (on a busy machine, long
    # enough to list a landing zone being filled); wait until none is in flight.
    query = (
        "query T($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { ... on Sensor { "
        "sensorState { status ticks(limit: 1) { status } } } } }"
    )

    def no_tick_in_flight() -> bool:
        state = graphql(url, query, s=selector)["sensorOrError"]["sensorState"]
        assert state["status"] == "STOPPED", state
        return all(tick["status"] != "STARTED" for tick in state["ticks"])

    wait_for(no_tick_in_flight, 60, "the landing sensor's last tick to end")


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    pytest.fail(f"timed out after {seconds} s waiting for {what}")
