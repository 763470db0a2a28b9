"""Lineage, seen in a browser: a local Dagster deployment (code server, webserver, daemon) on the
definitions, its asset graph opened in Chromium, its edges asked through the GraphQL API, and one
partition of raw_events materialized by clicking in the UI, as a user would.

The three processes are started apart (not `dagster dev`, which sets DAGSTER_IS_DEV_CLI and so
re-parses the dbt project in every process it loads the code in, each run and step included):
one code server, which the webserver and the daemon share through a workspace file. Before the
daemon starts, every sensor and schedule is stopped through GraphQL, so nothing but the click can
launch a run (the landing sensor would otherwise load the day's file on its own).

Chromium is required: CI installs Debian's `chromium`. Without it this test fails, never skips.
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import httpx2 as httpx
import pytest
from playwright.sync_api import Page, expect

from recs_platform_tests.browser import ARTIFACTS, chromium
from recs_platform_tests.factories import DAY, make_event, write_good_file

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOCATION = "recs_platform.definitions"
REPOSITORY = "__repository__"
STARTUP_TIMEOUT_S = 120.0
RUN_TIMEOUT_S = 150.0
PARTITION = DAY.isoformat()
EVENTS = 12

# raw_events through the dbt models to the endpoint: every edge of this chain must exist.
CHAIN = [
    "raw_events",
    "stg_events",
    "int_session_events",
    "training_sessions",
    "training_dataset",
    "session_model",
    "recommendation_endpoint",
]
DBT_MODELS = [
    "stg_events",
    "stg_event_duplicates",
    "int_session_events",
    "sessions",
    "daily_session_stats",
    "item_stats",
    "training_sessions",
]
ASSETS = [
    "raw_events",
    *DBT_MODELS,
    "training_dataset",
    "shop_dashboard",
    "session_model",
    "recommendation_endpoint",
]
# The other edges among them (upstream, downstream): the rest of the warehouse and the dashboard.
OTHER_EDGES = {
    ("raw_events", "stg_event_duplicates"),
    ("stg_events", "stg_event_duplicates"),
    ("stg_events", "item_stats"),
    ("int_session_events", "sessions"),
    ("sessions", "daily_session_stats"),
    ("item_stats", "shop_dashboard"),
    ("daily_session_stats", "shop_dashboard"),
    ("sessions", "shop_dashboard"),
}

WORKSPACE = """
{ workspaceOrError { __typename ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""
ASSET_NODES = "{ assetNodes { assetKey { path } groupName dependencyKeys { path } } }"
AUTOMATION = """
query ($selector: RepositorySelector!) {
  repositoryOrError(repositorySelector: $selector) {
    __typename
    ... on Repository {
      sensors { name sensorState { id status } }
      schedules { name scheduleState { id status } }
    }
    ... on PythonError { message }
  }
}"""
STOP_SENSOR = """
mutation ($id: String!) {
  stopSensor(id: $id) {
    __typename
    ... on StopSensorMutationResult { instigationState { status } }
    ... on PythonError { message }
  }
}"""
STOP_SCHEDULE = """
mutation ($id: String!) {
  stopRunningSchedule(id: $id) {
    __typename
    ... on ScheduleStateResult { scheduleState { status } }
    ... on PythonError { message }
  }
}"""
RUNS = """
{ runsOrError { __typename ... on Runs { results { runId status jobName tags { key value } } } } }
"""
RUN = """
query ($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId status jobName tags { key value } }
  }
}"""
RUN_FAILURES = """
query ($runId: ID!) {
  logsForRun(runId: $runId) {
    ... on EventConnection { events { __typename ... on MessageEvent { message } } }
  }
}"""
MATERIALIZATIONS = """
query ($partition: String!) {
  assetOrError(assetKey: {path: ["raw_events"]}) {
    ... on Asset {
      assetMaterializations(partitions: [$partition]) {
        runId
        partition
        metadataEntries { label ... on IntMetadataEntry { intValue } }
      }
    }
  }
}"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def log_tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


@dataclass
class Deployment:
    url: str
    data_dir: Path
    logs: dict[str, Path]

    def graphql(self, query: str, **variables) -> dict:
        response = httpx.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=60
        )
        assert response.status_code == 200, response.text[:2000]
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]


class Processes:
    """Each process in a session (and so a process group) of its own, with everything it
    starts (run workers, step processes): stopping kills the whole group."""

    def __init__(self, environ: dict[str, str], log_dir: Path) -> None:
        self.environ = environ
        self.log_dir = log_dir
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, *args: str | Path) -> subprocess.Popen:
        log = self.log_dir / f"{name}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [str(a) for a in args],
                cwd=REPO,
                env=self.environ,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append((name, process))
        return process

    def check_alive(self) -> None:
        for name, process in self.started:
            if process.poll() is not None:
                pytest.fail(
                    f"{name} exited with {process.returncode}:\n"
                    f"{log_tail(self.log_dir / f'{name}.log')}"
                )

    def stop_all(self) -> None:
        # The daemon first (it launches runs), the code server (which runs them) last.
        for _, process in reversed(self.started):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for _, process in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for name, process in self.started:
            if living_in_group(process.pid):
                print(f"SIGKILL to what is left of {name}: {living_in_group(process.pid)}")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        deadline = time.monotonic() + 10
        for name, process in self.started:
            while living_in_group(process.pid):
                assert time.monotonic() < deadline, f"processes of {name} outlived SIGKILL"
                time.sleep(0.1)


def living_in_group(pgid: int) -> list[str]:
    """The processes of a process group that are not zombies (pid and command name)."""
    living = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            name, _, rest = text.partition(" (")[2].rpartition(") ")
            state, _ppid, group = rest.split()[:3]
            if int(group) == pgid and state not in ("Z", "X"):
                living.append(f"{stat.parent.name} {name}")
    return living


def wait_until(what: str, ready, processes: Processes, timeout: float = STARTUP_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        processes.check_alive()
        with contextlib.suppress(OSError, httpx.TransportError):
            if ready():
                return
        time.sleep(0.25)
    pytest.fail(f"{what} was not ready within {timeout:.0f} s")


def port_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def location_loaded(deployment: Deployment) -> bool:
    workspace = deployment.graphql(WORKSPACE)["workspaceOrError"]
    assert workspace["__typename"] == "Workspace", workspace
    (entry,) = workspace["locationEntries"]
    assert entry["name"] == LOCATION, entry
    loaded = entry["locationOrLoadError"]
    if loaded and loaded["__typename"] == "PythonError":
        pytest.fail(f"the code location did not load: {loaded['message']}")
    return entry["loadStatus"] == "LOADED" and loaded is not None


def stop_automation(deployment: Deployment) -> list[str]:
    """Every sensor and schedule stopped (before the daemon first ticks): nothing else runs."""
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}
    repository = deployment.graphql(AUTOMATION, selector=selector)["repositoryOrError"]
    assert repository["__typename"] == "Repository", repository
    stopped = []
    for sensor in repository["sensors"]:
        result = deployment.graphql(STOP_SENSOR, id=sensor["sensorState"]["id"])["stopSensor"]
        assert result["instigationState"]["status"] == "STOPPED", (sensor["name"], result)
        stopped.append(sensor["name"])
    for schedule in repository["schedules"]:
        result = deployment.graphql(STOP_SCHEDULE, id=schedule["scheduleState"]["id"])
        state = result["stopRunningSchedule"]
        assert state["scheduleState"]["status"] == "STOPPED", (schedule["name"], state)
        stopped.append(schedule["name"])
    assert "landing_zone_sensor" in stopped
    return stopped


@pytest.fixture
def deployment(tmp_path) -> Iterator[Deployment]:
    started = time.monotonic()
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "deployments" / "dagster" / "local.yaml", home / "dagster.yaml")
    data_dir = tmp_path / "data"
    (data_dir / "landing").mkdir(parents=True)
    code_port, ui_port = free_port(), free_port()
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n"
        "  - grpc_server:\n"
        "      host: 127.0.0.1\n"
        f"      port: {code_port}\n"
        f"      location_name: {LOCATION}\n"
    )
    environ = {
        **{k: v for k, v in os.environ.items() if k != "DAGSTER_IS_DEV_CLI"},
        "RECS_DATA_DIR": str(data_dir),
        "RECS_PARTITIONS_START": "2026-11-01",
        "DAGSTER_HOME": str(home),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    processes = Processes(environ, tmp_path)
    url = f"http://127.0.0.1:{ui_port}"
    deployment = Deployment(url, data_dir, {})
    try:
        processes.start(
            "code-server",
            BIN / "dagster",
            "api",
            "grpc",
            "-m",
            LOCATION,
            "-h",
            "127.0.0.1",
            "-p",
            str(code_port),
        )
        wait_until("the code server", lambda: port_open(code_port), processes)
        print(f"code server up after {time.monotonic() - started:.1f} s")
        processes.start(
            "webserver",
            BIN / "dagster-webserver",
            "-w",
            workspace,
            "-h",
            "127.0.0.1",
            "-p",
            str(ui_port),
        )
        wait_until(
            "the Dagster webserver",
            lambda: httpx.get(f"{url}/server_info", timeout=2).status_code == 200,
            processes,
        )
        wait_until("the code location", lambda: location_loaded(deployment), processes)
        print(f"webserver up, location loaded after {time.monotonic() - started:.1f} s")
        stopped = stop_automation(deployment)
        print(f"stopped before the daemon started: {', '.join(stopped)}")
        processes.start("daemon", BIN / "dagster-daemon", "run", "-w", workspace)
        deployment.logs = {name: tmp_path / f"{name}.log" for name, _ in processes.started}
        yield deployment
    finally:
        stopping = time.monotonic()
        processes.stop_all()
        print(f"stopped every process in {time.monotonic() - stopping:.1f} s")


def check_lineage_edges(deployment: Deployment) -> None:
    nodes = deployment.graphql(ASSET_NODES)["assetNodes"]
    upstream = {
        "/".join(n["assetKey"]["path"]): {"/".join(k["path"]) for k in n["dependencyKeys"]}
        for n in nodes
    }
    missing = [name for name in ASSETS if name not in upstream]
    assert not missing, f"assets missing from the definitions: {missing}"
    edges = {(up, down) for down, ups in upstream.items() for up in ups}
    chain = set(zip(CHAIN, CHAIN[1:], strict=False))
    assert chain <= edges, f"lineage edges missing: {sorted(chain - edges)}"
    assert edges >= OTHER_EDGES, f"lineage edges missing: {sorted(OTHER_EDGES - edges)}"
    assert upstream["raw_events"] == set(), "raw_events is where the lineage starts"


def check_asset_graph(page: Page, deployment: Deployment) -> None:
    nodes = deployment.graphql(ASSET_NODES)["assetNodes"]
    group_of = {node["assetKey"]["path"][-1]: node["groupName"] for node in nodes}
    groups = sorted(set(group_of.values()))
    # Groups are drawn collapsed in the global graph; `expanded` opens them (ids as the UI
    # writes them). One group open at a time: the whole graph no longer fits a screen at the
    # scale where the UI writes asset names whole, and it draws only the nodes in view. The
    # viewport is wide enough for each group's graph to be drawn at that scale.
    page.set_viewport_size({"width": 2560, "height": 1300})
    for group in groups:
        page.goto(f"{deployment.url}/asset-groups?expanded=global@global:{group}")
        expect(page.get_by_text("Global asset lineage")).to_be_visible()
        graph = page.locator("svg foreignObject")
        for name in ASSETS:
            if group_of[name] == group:
                expect(graph.get_by_text(name, exact=True)).to_be_visible(timeout=60_000)
        expect(graph.get_by_text(group, exact=True)).to_be_visible()
        page.wait_for_timeout(500)  # the edges fade in after the nodes
        page.screenshot(path=ARTIFACTS / f"dagster-asset-graph-{group}.png")


def materialize_by_clicking(page: Page, deployment: Deployment) -> str:
    """Materialize… on raw_events' page, one partition typed in, launched: the run id the UI
    shows in its toast."""
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{deployment.url}/assets/raw_events")
    page.get_by_role("button", name=re.compile(r"Materialize…$")).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Launch runs to materialize raw_events")
    partitions = dialog.locator("input[type=text]")
    partitions.fill(PARTITION)
    partitions.press("Enter")
    launch = dialog.get_by_role("button", name="Launch 1 run", exact=True)
    expect(launch).to_be_enabled()
    expect(dialog).to_contain_text("1 partition")
    page.screenshot(path=ARTIFACTS / "dagster-materialize-dialog.png")
    launch.click()
    toast = page.get_by_role("region", name=re.compile("Notifications")).get_by_role("listitem")
    expect(toast).to_contain_text("Launched run")
    view = toast.get_by_role("link", name="View", exact=True)
    href = view.get_attribute("href") or ""
    match = re.fullmatch(r"/runs/([0-9a-f-]{36})", href)
    assert match, f"the toast links to {href!r}, not to a run"
    run_id = match.group(1)
    expect(toast).to_contain_text(run_id[:8])
    expect(dialog).to_be_hidden()
    view.click()
    expect(page).to_have_url(re.compile(f"/runs/{run_id}"))
    return run_id


def wait_for_run(deployment: Deployment, run_id: str) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    status = None
    while time.monotonic() < deadline:
        run = deployment.graphql(RUN, runId=run_id)["runOrError"]
        assert run["__typename"] == "Run", run
        status = run["status"]
        if status == "SUCCESS":
            return run
        if status in ("FAILURE", "CANCELED", "CANCELING"):
            events = deployment.graphql(RUN_FAILURES, runId=run_id)["logsForRun"]["events"]
            messages = [e.get("message") for e in events if e.get("message")]
            pytest.fail(f"run {run_id} ended {status}:\n" + "\n".join(messages[-15:]))
        time.sleep(1)
    logs = "\n".join(f"--- {n}\n{log_tail(p, 2000)}" for n, p in deployment.logs.items())
    pytest.fail(f"run {run_id} still {status} after {RUN_TIMEOUT_S:.0f} s\n{logs}")


@pytest.mark.slow(minutes=1)
def test_the_ui_shows_the_lineage_and_materializes_a_partition_by_click(deployment):
    started = time.monotonic()

    def lap(what: str) -> None:
        print(f"{time.monotonic() - started:6.1f} s  {what}")

    ARTIFACTS.mkdir(exist_ok=True)
    check_lineage_edges(deployment)
    lap("lineage edges checked through GraphQL")
    deployment.graphql("mutation { setNuxSeen }")  # no "Join the community" dialog over the UI

    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        context.set_default_timeout(30_000)
        context.set_default_navigation_timeout(30_000)
        page = context.new_page()
        check_asset_graph(page, deployment)
        lap("asset graph rendered with every asset")

        events = [make_event(n) for n in range(EVENTS)]
        (landed,) = write_good_file(deployment.data_dir / "landing", events)
        assert f"date={PARTITION}/" in landed
        run_id = materialize_by_clicking(page, deployment)
        lap(f"run {run_id} launched from the materialize dialog")

        run = wait_for_run(deployment, run_id)
        lap("run succeeded (GraphQL)")
        # The run page updates itself: its status tag turns to Success, the log gets RUN_SUCCESS.
        expect(page.get_by_text("Success", exact=True).first).to_be_visible(timeout=30_000)
        expect(page.get_by_text("RUN_SUCCESS").first).to_be_visible(timeout=30_000)
        page.wait_for_timeout(500)
        page.screenshot(path=ARTIFACTS / "dagster-run.png")
        lap("run page shows success")
        context.close()

    # The run waited for is the click's: launched from the UI, for that one partition, and no
    # sensor or schedule launched anything (all were stopped before the daemon started).
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags.get("dagster/partition") == PARTITION, tags
    assert tags.get("dagster/from_ui") == "true", tags
    assert not {"dagster/sensor_name", "dagster/schedule_name", "dagster/backfill"} & set(tags)
    runs = deployment.graphql(RUNS)["runsOrError"]["results"]
    assert [r["runId"] for r in runs] == [run_id], runs

    (materialization,) = deployment.graphql(MATERIALIZATIONS, partition=PARTITION)["assetOrError"][
        "assetMaterializations"
    ]
    assert materialization["runId"] == run_id
    metadata = {e["label"]: e.get("intValue") for e in materialization["metadataEntries"]}
    assert metadata["rows"] == EVENTS, metadata
    with duckdb.connect(str(deployment.data_dir / "warehouse.duckdb"), read_only=True) as conn:
        loaded = conn.execute(
            "SELECT event_id FROM raw.events WHERE event_date = ? ORDER BY event_id", [DAY]
        ).fetchall()
        assert [row[0] for row in loaded] == sorted(e["event_id"] for e in events)
        assert conn.execute("SELECT count(*) FROM raw.events").fetchone() == (EVENTS,)
    lap("raw.events holds the file's rows for the day")
