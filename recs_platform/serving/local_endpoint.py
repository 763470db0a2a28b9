"""The local endpoint: a `recs-platform serve` process following a folder under RECS_DATA_DIR.

Layout of the endpoint folder:

    current.json              which packaged models the server serves: the champion and, when
                              one is deployed, the challenger with its share of sessions (the
                              server watches this file)
    models/v<version>-<id>/   packaged models (`inference.package_model`); the newest few kept
    server.json               pid, host and port of the process this folder started
    server.log                that process's output

Deploying copies in the packaged models (a version already in the folder is reused), points
`current.json` at them and, if no server of this folder is running, starts one (detached, so it
outlives the Dagster run); then waits until `/ping` says the new packages and share are loaded.
A running server swaps models without dropping a request; a new share alone reloads nothing.
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
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from recs_platform.pids import pid_is_running
from recs_platform.serving.inference import ChallengerPackage, Variant
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
    challenger_version: str | None = None
    challenger_package: str | None = None
    challenger_share: float = 0.0


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

    def invoke(
        self, payload: dict, timeout_s: float = 10.0, target_variant: str | None = None
    ) -> tuple[int, dict]:
        """POST `payload` to /invocations; `target_variant` forces the variant of every
        instance, as SageMaker's TargetVariant does (the server reads the same header)."""
        headers = {"X-Amzn-SageMaker-Target-Variant": target_variant} if target_variant else {}
        response = httpx.post(
            f"{self.url}/invocations", json=payload, headers=headers, timeout=timeout_s
        )
        return response.status_code, response.json()

    def deploy(
        self, package_folder: Path, version: str, challenger: ChallengerPackage | None = None
    ) -> Deployment:
        """Serve the packaged model in `package_folder` (`inference.package_model`) as the
        champion and, when given, the challenger beside it with its share of sessions."""
        started = time.monotonic()
        version = str(version)
        if challenger is not None and challenger.version == version:
            raise ValueError(f"version {version} cannot be both the champion and the challenger")
        endpoint_dir = Path(self.endpoint_dir)
        serving = self._serving_variants()
        current = read_current(endpoint_dir)
        packaged = _packages_by_version(current, endpoint_dir)
        package = packaged.get(version) or self._copy_in(package_folder, version)
        challenger_package = None
        if challenger is not None:
            challenger_package = packaged.get(challenger.version) or self._copy_in(
                challenger.folder, challenger.version
            )
        wanted = _current_document(package, version, challenger_package, challenger)
        result = Deployment(
            self.url,
            version,
            package,
            "unchanged",
            0.0,
            challenger.version if challenger else None,
            challenger_package,
            challenger.share if challenger else 0.0,
        )
        if serving is not None and current == wanted and _serves(serving, wanted):
            return result
        write_current(
            endpoint_dir,
            package,
            version,
            (challenger_package, challenger.version) if challenger_package and challenger else None,
            challenger.share if challenger else 0.0,
        )
        action = "reloaded"
        if serving is None:
            self._start_process()
            action = "started"
        try:
            self._wait_for(wanted)
        except EndpointError:
            if current is not None:  # the running server keeps (or goes back to) the old ones
                _restore_current(endpoint_dir, current)
            raise
        self._prune(keep={package, challenger_package} - {None})
        return replace(result, action=action, seconds=time.monotonic() - started)

    def _copy_in(self, package_folder: Path, version: str) -> str:
        """Copy a package into the folder under a new name (atomically); its relative path."""
        endpoint_dir = Path(self.endpoint_dir)
        package = f"{MODELS_FOLDER}/v{version}-{uuid.uuid4().hex[:8]}"
        scratch = endpoint_dir / MODELS_FOLDER / f".{uuid.uuid4().hex}.tmp"
        shutil.copytree(package_folder, scratch)
        scratch.rename(endpoint_dir / package)
        return package

    def ensure_running(self) -> bool:
        """Start the server of this folder unless it runs; True when it was started here.

        It answers /ping with 503 until a model is deployed into the folder.
        """
        if self.ping() is not None:
            self._serving_variants()  # raises unless it is this folder's server
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

    def _serving_variants(self) -> dict | None:
        """What our running server serves, by variant (`/ping`'s `variants`, empty before a
        model is loaded); None when no server of this folder runs."""
        document = self.ping()
        if document is None:
            return None
        info = self._server_info()
        if info is None or not _alive(info["pid"]):
            raise EndpointError(
                f"{self.url} is served by a process this endpoint folder did not start; "
                "stop it or set RECS_ENDPOINT_PORT"
            )
        return _variants(document)

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

    def _wait_for(self, wanted: dict) -> None:
        """Until `/ping` says the server serves what `wanted` (a `current.json`) names."""
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
            if last is not None and _serves(_variants(last), wanted):
                return
            if last and "package" in last and "variants" not in last and wanted.get("challenger"):
                raise EndpointError(
                    f"{self.url} was started by a version of recs-platform that serves one "
                    "model: stop it (`recs-platform serve --stop`) and deploy again, which "
                    "starts one that serves the challenger too"
                )
            time.sleep(0.1)
        raise EndpointError(
            f"{self.url} did not serve {wanted} within {self.timeout_s:.0f} s (last /ping: "
            f"{last}); the previous models, if any, still serve. Log:\n{self._log_tail()}"
        )

    def _prune(self, keep: set[str]) -> None:
        folder = Path(self.endpoint_dir) / MODELS_FOLDER
        packages = sorted(
            (path for path in folder.iterdir() if not path.name.startswith(".")),
            key=lambda path: path.stat().st_mtime,
        )
        for path in packages[: -max(KEEP_PACKAGES, len(keep))]:
            if f"{MODELS_FOLDER}/{path.name}" not in keep:
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


def _packages_by_version(current: dict | None, endpoint_dir: Path) -> dict[str, str]:
    """The packages `current.json` names, by version, that are still in the folder: a version
    deployed again (a challenger promoted to champion, a champion kept) is not copied twice."""
    if current is None:
        return {}
    named = [current, *([current["challenger"]] if current.get("challenger") else [])]
    return {
        str(entry["version"]): entry["model"]
        for entry in named
        if (Path(endpoint_dir) / entry["model"] / "model-info.json").is_file()
    }


def _current_document(
    package: str, version: str, challenger_package: str | None, challenger: ChallengerPackage | None
) -> dict:
    """The `current.json` that serves these packages (`server.write_current` writes it)."""
    document: dict = {"model": package, "version": version}
    if challenger is not None and challenger_package is not None:
        document["challenger"] = {
            "model": challenger_package,
            "version": challenger.version,
            "share": challenger.share,
        }
    return document


def _variants(ping: dict) -> dict:
    """`/ping`'s variants; a server from before variants named its one package at the top."""
    if "variants" in ping:
        return ping["variants"] or {}
    if ping.get("package") is not None:
        return {Variant.CHAMPION.value: {"package": ping["package"]}}
    return {}


def _serves(variants: dict, wanted: dict) -> bool:
    """Whether `/ping`'s `variants` are what the `current.json` document `wanted` names."""
    challenger = wanted.get("challenger")
    expected = {Variant.CHAMPION.value: wanted["model"]}
    if challenger:
        expected[Variant.CHALLENGER.value] = challenger["model"]
    if {name: entry.get("package") for name, entry in variants.items()} != expected:
        return False
    return not challenger or variants[Variant.CHALLENGER.value]["share"] == challenger["share"]


def _restore_current(endpoint_dir: Path, current: dict) -> None:
    challenger = current.get("challenger")
    write_current(
        endpoint_dir,
        current["model"],
        current["version"],
        (challenger["model"], challenger["version"]) if challenger else None,
        challenger["share"] if challenger else 0.0,
    )


def _alive(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)  # reaps it if it is our exited child
        if finished == pid:
            return False
    except ChildProcessError:
        pass  # not our child: ask the kernel
    return pid_is_running(pid)
