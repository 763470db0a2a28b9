"""The local endpoint: a `recs-platform serve` process following a folder under RECS_DATA_DIR.

Layout of the endpoint folder:

    current.json              which packaged model the server serves (it watches this file)
    models/v<version>-<id>/   packaged models (`inference.package_model`); the newest few kept
    server.json               pid, host and port of the process this folder started
    server.log                that process's output

Deploying packages the model, points `current.json` at it and, if no server of this folder is
running, starts one (detached, so it outlives the Dagster run); then waits until `/ping` says
the new package is loaded. A running server swaps models without dropping a request.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from recs_platform.pids import pid_is_running
from recs_platform.serving.server import read_current, write_current

MODELS_FOLDER = "models"
SERVER_FILE = "server.json"
LOG_FILE = "server.log"
KEEP_PACKAGES = 3


class EndpointError(RuntimeError):
    """The endpoint did not come up, or answered something unexpected; the message says what."""


@dataclass(frozen=True)
class Deployment:
    url: str
    version: str
    package: str
    action: str  # "started", "reloaded" or "unchanged"
    seconds: float


@dataclass(frozen=True)
class LocalEndpoint:
    endpoint_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    timeout_s: float = 120.0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def ping(self) -> dict | None:
        """What `/ping` answers (200 or 503), or None when nothing listens."""
        try:
            response = httpx.get(f"{self.url}/ping", timeout=2.0)
        except httpx.TransportError:
            return None
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict) or "status" not in document:
            raise EndpointError(
                f"{self.url}/ping answered {response.status_code} but not as a recs-platform "
                "endpoint: another program holds the port (set RECS_ENDPOINT_PORT)"
            )
        return document

    def invoke(self, payload: dict, timeout_s: float = 10.0) -> tuple[int, dict]:
        response = httpx.post(f"{self.url}/invocations", json=payload, timeout=timeout_s)
        return response.status_code, response.json()

    def deploy(self, package_folder: Path, version: str) -> Deployment:
        """Serve the packaged model in `package_folder` (`inference.package_model`)."""
        started = time.monotonic()
        endpoint_dir = Path(self.endpoint_dir)
        serving = self._serving_package()
        current = read_current(endpoint_dir)
        if (
            serving is not None
            and current is not None
            and current.get("version") == str(version)
            and serving == current["model"]
        ):
            return Deployment(self.url, str(version), serving, "unchanged", 0.0)
        package = f"{MODELS_FOLDER}/v{version}-{uuid.uuid4().hex[:8]}"
        scratch = endpoint_dir / MODELS_FOLDER / f".{uuid.uuid4().hex}.tmp"
        shutil.copytree(package_folder, scratch)
        scratch.rename(endpoint_dir / package)
        write_current(endpoint_dir, package, str(version))
        action = "reloaded"
        if serving is None:
            self._start_process()
            action = "started"
        try:
            self._wait_for(package)
        except EndpointError:
            if current is not None:  # the running server keeps (or goes back to) the old one
                write_current(endpoint_dir, current["model"], current["version"])
            raise
        self._prune(keep=package)
        return Deployment(self.url, str(version), package, action, time.monotonic() - started)

    def ensure_running(self) -> bool:
        """Start the server of this folder unless it runs; True when it was started here.

        It answers /ping with 503 until a model is deployed into the folder.
        """
        if self.ping() is not None:
            self._serving_package()  # raises unless it is this folder's server
            return False
        Path(self.endpoint_dir).mkdir(parents=True, exist_ok=True)
        self._start_process()
        deadline = time.monotonic() + self.timeout_s
        while self.ping() is None:
            info = self._server_info()
            if info is None or not _alive(info["pid"]) or time.monotonic() > deadline:
                raise EndpointError(f"the endpoint did not start; its log:\n{self._log_tail()}")
            time.sleep(0.1)
        return True

    def _serving_package(self) -> str | None:
        """The package our running server serves; None when no server of this folder runs."""
        document = self.ping()
        if document is None:
            return None
        info = self._server_info()
        if info is None or not _alive(info["pid"]):
            raise EndpointError(
                f"{self.url} is served by a process this endpoint folder did not start; "
                "stop it or set RECS_ENDPOINT_PORT"
            )
        return document.get("package")

    def _start_process(self) -> None:
        endpoint_dir = Path(self.endpoint_dir)
        log_path = endpoint_dir / LOG_FILE
        command = [
            sys.executable,
            "-m",
            "recs_platform.cli",
            "serve",
            "--endpoint-dir",
            str(endpoint_dir),
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        with open(log_path, "ab") as log_stream:
            process = subprocess.Popen(
                command,
                stdout=log_stream,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives the run that started it
            )
        info = {"pid": process.pid, "host": self.host, "port": self.port}
        (endpoint_dir / SERVER_FILE).write_text(json.dumps(info))

    def _wait_for(self, package: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        last = None
        while time.monotonic() < deadline:
            info = self._server_info()
            if info is not None and not _alive(info["pid"]):
                raise EndpointError(
                    f"the endpoint process exited; its log ({self.endpoint_dir / LOG_FILE}) "
                    f"ends with:\n{self._log_tail()}"
                )
            last = self.ping()
            if last is not None and last.get("package") == package:
                return
            time.sleep(0.1)
        raise EndpointError(
            f"{self.url} did not serve {package} within {self.timeout_s:.0f} s (last /ping: "
            f"{last}); the previous model, if any, still serves. Log:\n{self._log_tail()}"
        )

    def _prune(self, keep: str) -> None:
        folder = Path(self.endpoint_dir) / MODELS_FOLDER
        packages = sorted(
            (path for path in folder.iterdir() if not path.name.startswith(".")),
            key=lambda path: path.stat().st_mtime,
        )
        for path in packages[:-KEEP_PACKAGES]:
            if f"{MODELS_FOLDER}/{path.name}" != keep:
                shutil.rmtree(path, ignore_errors=True)

    def _server_info(self) -> dict | None:
        with contextlib.suppress(FileNotFoundError, ValueError):
            return json.loads((Path(self.endpoint_dir) / SERVER_FILE).read_text())
        return None

    def _log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(FileNotFoundError):
            return (Path(self.endpoint_dir) / LOG_FILE).read_text(errors="replace")[-chars:]
        return ""

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop the server this folder started; False when none was running."""
        info = self._server_info()
        if info is None or not _alive(info["pid"]):
            return False
        os.kill(info["pid"], signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _alive(info["pid"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(info["pid"]):
            os.kill(info["pid"], signal.SIGKILL)
        (Path(self.endpoint_dir) / SERVER_FILE).unlink(missing_ok=True)
        return True


def _alive(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)  # reaps it if it is our exited child
        if finished == pid:
            return False
    except ChildProcessError:
        pass  # not our child: ask the kernel
    return pid_is_running(pid)
