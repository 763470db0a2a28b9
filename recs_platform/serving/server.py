"""The inference server: SageMaker's container contract on a small ASGI app (uvicorn).

`GET /ping` answers 200 once a model is loaded (with which one), 503 before. `POST /invocations`
answers the contract of `inference.py`. The same handler also answers
`POST /endpoints/<name>/invocations`, the path of the SageMaker runtime API, so boto3's
`sagemaker-runtime` client pointed at a local endpoint (`endpoint_url=`) works unchanged.

The model comes from a fixed source (`--model`: a folder or an MLflow URI) or from an endpoint
folder, whose `current.json` names the packaged model to serve. The server watches that file;
when it changes, the new model is loaded beside the old one, which keeps answering until the
swap (hitless). A model that fails to load is logged and the old one stays.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import orjson

from recs_platform.asgi import BodyTooLarge, read_body
from recs_platform.serving.inference import (
    InvalidRequest,
    Limits,
    LoadedModel,
    load_model,
    parse_instances,
    predict,
)

log = logging.getLogger(__name__)

CURRENT_FILE = "current.json"
_JSON = [(b"content-type", b"application/json")]
_ACCEPTED_TYPES = (b"application/json", b"text/plain", b"")


@dataclass(frozen=True)
class ServerConfig:
    model_source: str | None = None
    """A model folder or MLflow URI, served for the server's lifetime."""
    endpoint_dir: Path | None = None
    """An endpoint folder: serve what its `current.json` names, following changes."""
    poll_seconds: float = 0.5
    limits: Limits = Limits()
    torch_threads: int | None = 1
    """torch's intra-op threads for torch models (None: torch's default, one per core).

    One request at a time is scored, on small matrices: a second thread gains little when the
    machine is idle, and when another process holds a core every op waits for it at OpenMP's
    barrier, so the throughput collapses on a shared machine (benchmarks/README.md, serving)."""

    def __post_init__(self) -> None:
        if (self.model_source is None) == (self.endpoint_dir is None):
            raise ValueError("give exactly one of a model source and an endpoint folder")


def read_current(endpoint_dir: Path) -> dict | None:
    """What `current.json` says (`{"model": <folder relative to endpoint_dir>, ...}`), if any."""
    path = Path(endpoint_dir) / CURRENT_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def write_current(endpoint_dir: Path, model_folder: str, version: str) -> None:
    """Point the endpoint at `model_folder` (relative to it), atomically."""
    endpoint_dir = Path(endpoint_dir)
    temporary = endpoint_dir / f".{CURRENT_FILE}.tmp"
    temporary.write_text(json.dumps({"model": model_folder, "version": str(version)}))
    temporary.replace(endpoint_dir / CURRENT_FILE)


class ModelWatcher:
    """Loads what the endpoint folder's `current.json` names whenever it changes."""

    def __init__(self, endpoint_dir: Path, poll_seconds: float, on_loaded):
        self.endpoint_dir = Path(endpoint_dir)
        self.poll_seconds = poll_seconds
        self.on_loaded = on_loaded
        self.last_error: str | None = None
        self._seen: dict | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)

    def start(self) -> None:
        self.check()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def check(self) -> None:
        try:
            current = read_current(self.endpoint_dir)
        except (OSError, ValueError) as error:
            self.last_error = f"{CURRENT_FILE} unreadable: {error}"
            return
        if current is None or current == self._seen:
            return
        self._seen = current
        folder = self.endpoint_dir / current["model"]
        try:
            model = load_model(folder)
        except Exception as error:  # a broken package must not take the endpoint down
            self.last_error = f"could not load {folder}: {error}"
            log.exception("could not load %s; the previous model keeps serving", folder)
            return
        model.package = current["model"]
        self.last_error = None
        log.info("serving %s version %s from %s", model.name, model.version, folder)
        self.on_loaded(model)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.check()


class InferenceApp:
    def __init__(self, config: ServerConfig):
        self.config = config
        self.model: LoadedModel | None = None
        self.watcher: ModelWatcher | None = None
        if config.model_source is not None:
            self.use(load_model(config.model_source))

    def use(self, model: LoadedModel) -> None:
        limit_torch_threads(self.config.torch_threads)
        model.popularity_ranking()  # warm before the swap: the first request pays nothing
        self.model = model  # one reference assignment: requests see the old or the new model

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        status, body = await self._respond(scope, receive)
        await send({"type": "http.response.start", "status": status, "headers": _JSON})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.config.endpoint_dir is not None:
                    self.watcher = ModelWatcher(
                        self.config.endpoint_dir, self.config.poll_seconds, self.use
                    )
                    self.watcher.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.watcher is not None:
                    self.watcher.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _respond(self, scope, receive) -> tuple[int, bytes]:
        method, path = scope["method"], scope["path"]
        if path == "/ping" and method == "GET":
            return self._ping()
        if method == "POST" and (path == "/invocations" or _is_runtime_path(path)):
            return await self._invocations(scope, receive)
        if path == "/ping" or path == "/invocations":
            return 405, _error(f"{method} {path} is not allowed")
        return 404, _error(f"no route {method} {path}: the endpoint has /ping and /invocations")

    def _ping(self) -> tuple[int, bytes]:
        model = self.model
        if model is None:
            reason = self.watcher.last_error if self.watcher else None
            return 503, orjson.dumps({"status": "no model loaded", "error": reason})
        return 200, orjson.dumps(
            {"status": "ok", "model": model.describe(), "package": model.package}
        )

    async def _invocations(self, scope, receive) -> tuple[int, bytes]:
        content_type = _header(scope, b"content-type").split(b";")[0].strip().lower()
        if content_type not in _ACCEPTED_TYPES:
            return 415, _error(f"content type {content_type.decode('latin-1')!r}: send JSON")
        model = self.model
        if model is None:
            return 503, _error("no model loaded yet")
        try:
            body = await read_body(receive, self.config.limits.max_body_bytes)
            instances = parse_instances(body, self.config.limits)
        except InvalidRequest as error:
            return 400, _error(str(error))
        except BodyTooLarge as error:
            return 413, _error(str(error))
        return 200, orjson.dumps(predict(model, instances, self.config.limits))


def _header(scope, name: bytes) -> bytes:
    return next((value for key, value in scope["headers"] if key == name), b"")


def _is_runtime_path(path: str) -> bool:
    parts = path.split("/")
    return len(parts) == 4 and parts[1] == "endpoints" and parts[3] == "invocations"


def _error(reason: str) -> bytes:
    return orjson.dumps({"error": reason})


def limit_torch_threads(threads: int | None) -> None:
    """Set torch's thread count if a loaded model brought torch in (Markov and co. do not)."""
    torch = sys.modules.get("torch")
    if threads is not None and torch is not None:
        torch.set_num_threads(threads)


def create_app(config: ServerConfig) -> InferenceApp:
    return InferenceApp(config)
