"""`make dev`: the local stack in one command, stopped together by Ctrl-C.

Starts the Dagster UI with its daemon (`dagster dev`: schedules, sensors, backfills, the run
queue), the MLflow UI on the local store, the local endpoint (the `recs-platform serve` process
the `recommendation_endpoint` asset deploys to; reused if one already runs) and the collector
with the storefront; waits until each answers and prints where they are.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from recs_platform.serving.local_endpoint import LocalEndpoint
from recs_platform.settings import Settings
from recs_platform.training.tracking import local_tracking

BIN = Path(sys.executable).parent
STARTUP_TIMEOUT_S = 180.0
# Seconds the services get to stop after SIGTERM (all at once) before they are killed.
STOP_GRACE_S = 30.0


@dataclass(frozen=True)
class DevPorts:
    dagster: int = 3000
    mlflow: int = 5000
    collector: int = 8000


@dataclass
class Service:
    name: str
    command: list[str]
    ready_url: str
    show_url: str
    process: subprocess.Popen | None = None


def services(settings: Settings, ports: DevPorts) -> list[Service]:
    host = "127.0.0.1"
    tracking_uri, artifacts = local_tracking(settings.data_dir)
    dagster = f"http://{host}:{ports.dagster}"
    mlflow = f"http://{host}:{ports.mlflow}"
    collector = f"http://{host}:{ports.collector}"
    return [
        Service(
            "Dagster UI and daemon",
            [str(BIN / "dagster"), "dev", "-m", "recs_platform.definitions", "-h", host,
             "-p", str(ports.dagster)],
            f"{dagster}/server_info",
            dagster,
        ),
        Service(
            "MLflow UI",
            [str(BIN / "mlflow"), "ui", "--backend-store-uri", tracking_uri,
             "--default-artifact-root", artifacts, "--host", host, "--port", str(ports.mlflow)],
            f"{mlflow}/health",
            mlflow,
        ),
        Service(
            "collector and storefront",
            [str(BIN / "recs-platform"), "collector", "--host", host, "--port",
             str(ports.collector), "--endpoint-url", settings.endpoint_url],
            f"{collector}/health",
            f"{collector}/shop (events: {collector}/collect, recommendations: "
            f"{collector}/recommend?session=...)",
        ),
    ]  # fmt: skip


def run_dev(settings: Settings, ports: DevPorts = DevPorts()) -> int:
    (settings.data_dir / "mlflow").mkdir(parents=True, exist_ok=True)
    endpoint = LocalEndpoint(settings.endpoint_dir, port=settings.endpoint_port)
    started_endpoint = endpoint.ensure_running()
    stack = services(settings, ports)
    stopping = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    # Started from a background job of a script (`cmd &`), the process inherits SIGINT ignored
    # and Python then never raises KeyboardInterrupt: Ctrl-C, or `kill -INT`, must stop it.
    previous_interrupt = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for service in stack:
            service.process = subprocess.Popen(
                service.command, env={**os.environ}, start_new_session=True
            )
        for service in stack:
            _wait_until_ready(service, stopping)
        print("\nThe local stack is up (Ctrl-C stops it all):")
        for service in stack:
            print(f"  {service.name:<26} {service.show_url}")
        state = "started" if started_endpoint else "already running"
        ping = endpoint.ping() or {}
        model = (ping.get("model") or {}).get("version")
        serving = (
            f"version {model}" if model else "no model yet: materialize recommendation_endpoint"
        )
        print(f"  {'endpoint (' + state + ')':<26} {endpoint.url}/invocations ({serving})")
        print(flush=True)
        while not stopping.is_set():
            for service in stack:
                if service.process.poll() is not None:
                    print(f"{service.name} exited with {service.process.returncode}; stopping.")
                    return 1
            stopping.wait(1.0)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        # A second Ctrl-C (or a SIGTERM) while stopping would leave the services running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("Stopping the local stack...", flush=True)
        try:
            _stop_all(stack)
            endpoint.stop()
        finally:
            signal.signal(signal.SIGINT, previous_interrupt)
            signal.signal(signal.SIGTERM, previous)


def _wait_until_ready(service: Service, stopping: threading.Event) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline and not stopping.is_set():
        if service.process.poll() is not None:
            raise RuntimeError(f"{service.name} exited with {service.process.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(service.ready_url, timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    if not stopping.is_set():
        raise RuntimeError(f"{service.name} did not answer {service.ready_url} in time")


def _stop_all(stack: list[Service], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM to every service's process group at once, then SIGKILL to those still running
    after `grace_s`: stopping takes the slowest service's time, not the sum of them all."""
    running = [s for s in stack if s.process is not None and s.process.poll() is None]
    for service in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for service in running:
        try:
            service.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{service.name} did not stop in {grace_s:.0f} s; killing it.", flush=True)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.process.pid, signal.SIGKILL)
            service.process.wait(timeout=10)
