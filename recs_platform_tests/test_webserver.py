"""What `dagster dev` shows: the webserver, started on the definitions, lists raw_events with its
daily partitions (asked through its GraphQL API on 127.0.0.1)."""

import os
import subprocess
import sys
from pathlib import Path

import httpx2 as httpx
import pytest

from recs_platform_tests.collection.servers import free_port
from recs_platform_tests.processes import stop, wait_until_answers

BIN = Path(sys.executable).parent
QUERY = """
{ assetNodes { assetKey { path } groupName kinds partitionKeys
               partitionDefinition { description } } }
"""


@pytest.fixture
def webserver(tmp_path):
    port = free_port()
    (tmp_path / "home").mkdir()
    environ = {
        **os.environ,
        "RECS_DATA_DIR": str(tmp_path),
        "DAGSTER_HOME": str(tmp_path / "home"),
        "RECS_PARTITIONS_START": "2026-11-01",
    }
    process = subprocess.Popen(
        [
            BIN / "dagster-webserver",
            "-m",
            "recs_platform.definitions",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(f"{url}/server_info", process, timeout_s=120)
        yield url
    finally:
        stop(process)


def test_the_ui_lists_raw_events_with_its_daily_partitions(webserver):
    response = httpx.post(f"{webserver}/graphql", json={"query": QUERY}, timeout=60)
    assert response.status_code == 200
    nodes = {tuple(n["assetKey"]["path"]): n for n in response.json()["data"]["assetNodes"]}
    raw_events = nodes[("raw_events",)]
    assert raw_events["groupName"] == "ingest"
    assert set(raw_events["kinds"]) == {"duckdb", "python"}
    assert raw_events["partitionKeys"][:2] == ["2026-11-01", "2026-11-02"]
    assert "Daily" in raw_events["partitionDefinition"]["description"]
