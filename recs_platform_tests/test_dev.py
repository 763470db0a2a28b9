"""`make dev` (`recs-platform dev`): one command starts the Dagster UI and daemon, the MLflow UI,
the local endpoint and the collector with the storefront; Ctrl-C stops every one of them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from recs_platform.simulation import SHOP_CONFIG_FILE, ShopConfig
from recs_platform_tests.collection.servers import free_port

pytestmark = pytest.mark.timeout(300)

BIN = Path(sys.executable).parent


def test_one_command_starts_the_stack_and_ctrl_c_stops_it_all(tmp_path: Path) -> None:
    shop = tmp_path / "landing" / SHOP_CONFIG_FILE
    shop.parent.mkdir(parents=True)
    shop.write_text(ShopConfig(n_items=50, n_categories=5, sessions_per_day=10, days=2).to_json())
    (tmp_path / "dagster_home").mkdir()
    ports = {name: free_port() for name in ("dagster", "mlflow", "collector", "endpoint")}
    environ = {
        **os.environ,
        "RECS_DATA_DIR": str(tmp_path),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "RECS_ENDPOINT_PORT": str(ports["endpoint"]),
        "NO_PROXY": "127.0.0.1",
    }
    process = subprocess.Popen(
        [BIN / "recs-platform", "dev", "--dagster-port", str(ports["dagster"]),
         "--mlflow-port", str(ports["mlflow"]), "--collector-port", str(ports["collector"])],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 240
        # Up to the table of services, the endpoint's line last: the services share the output,
        # so their own log lines may come between the table's.
        for last_line in ("The local stack is up", "/invocations ("):
            while not any(last_line in line for line in lines):
                assert time.monotonic() < deadline, "".join(lines)[-3000:]
                line = process.stdout.readline()
                assert line or process.poll() is None, "".join(lines)[-3000:]
                lines.append(line)
        printed = "".join(lines)
        # Keep reading what the stack prints (Dagster logs every run and tick): a full pipe
        # would block `dev` and its services in a write and hang them on Ctrl-C.
        threading.Thread(target=lines.extend, args=(process.stdout,), daemon=True).start()
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        for name in ("dagster", "mlflow", "collector"):
            assert re.search(re.escape(urls[name]), printed), (name, printed[-2000:])
        assert httpx.get(f"{urls['dagster']}/server_info", timeout=10).status_code == 200
        assert httpx.get(f"{urls['mlflow']}/health", timeout=10).status_code == 200
        shop_page = httpx.get(f"{urls['collector']}/shop", timeout=10)
        assert shop_page.status_code == 200 and "<html" in shop_page.text.lower()
        ping = httpx.get(f"{urls['endpoint']}/ping", timeout=10)
        assert ping.status_code == 503  # up, waiting for recommendation_endpoint to deploy
        assert "no model yet" in printed

        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert process.wait(timeout=90) == 0, "".join(lines)[-3000:]
    finally:
        # Killing `dev` itself would leave its services running (each in its own session):
        # Ctrl-C it (again, ignored while it stops them), and kill it only if that hangs.
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
    for name, url in urls.items():
        with pytest.raises(httpx.TransportError):
            httpx.get(url, timeout=2)
            pytest.fail(f"{name} still answers at {url}")
    assert not (tmp_path / "endpoint" / "server.json").exists()
