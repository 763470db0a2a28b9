"""The inference server: SageMaker's container contract on a small ASGI app (uvicorn).

`GET /ping` answers 200 once a model is loaded (with which ones, by variant), 503 before.
`POST /invocations` answers the contract of `inference.py`. The same handler also answers
`POST /endpoints/<name>/invocations`, the path of the SageMaker runtime API, so boto3's
`sagemaker-runtime` client pointed at a local endpoint (`endpoint_url=`) works unchanged: its
`TargetVariant` (the `X-Amzn-SageMaker-Target-Variant` header) forces the variant of every
instance, and an answer from one variant names it in `X-Amzn-Invoked-Production-Variant`, which
boto3 reads as `InvokedProductionVariant`, as SageMaker's own routing does.

The models come from fixed sources (`--model`: a folder or an MLflow URI, and optionally
`--challenger` with its share of sessions) or from an endpoint folder, whose `current.json` names
the packaged champion to serve and, optionally, a challenger with its share. The server watches
that file; when it changes, the new models are loaded beside the old ones, which keep answering
until the swap (hitless); a package already loaded is reused (a new share reloads nothing). A
model that fails to load is logged and the old ones stay.

Under load, the requests that queue while the model scores are scored together in its next call
(`RequestBatcher`), and `recs-platform serve --workers N` runs N such processes on one port
(`app_from_environment`).

One process holding two models routes each instance as `inference.ServedModels` says (a session
id's hash, a forced `variant`, else the champion). A process holding one model answers as the
variant it is told (`ServerConfig.variant`, `recs-platform serve --variant`): what a SageMaker
production variant's container is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from pathlib import Path

import orjson

from recs_platform.asgi import BodyTooLarge, read_body
from recs_platform.serving.inference import (
    Instance,
    InvalidRequest,
    Limits,
    LoadedModel,
    ServedModels,
    Variant,
    check_share,
    load_model,
    parse_instances,
    predict,
    predict_requests,
)

log = logging.getLogger(__name__)

CURRENT_FILE = "current.json"
TARGET_VARIANT_HEADER = b"x-amzn-sagemaker-target-variant"
INVOKED_VARIANT_HEADER = b"x-amzn-invoked-production-variant"
_JSON = [(b"content-type", b"application/json")]
_ACCEPTED_TYPES = (b"application/json", b"text/plain", b"")


@dataclass(frozen=True)
class ServerConfig:
    model_source: str | None = None
    """A model folder or MLflow URI, served for the server's lifetime."""
    challenger_source: str | None = None
    """With `model_source`: a second model, the challenger, served beside it."""
    challenger_share: float = 0.0
    """With `challenger_source`: the share of sessions (0 to 1) the challenger answers."""
    variant: Variant = Variant.CHAMPION
    """With `model_source` alone: the variant its answers name (a SageMaker production
    variant's container serves one model, as the champion or as the challenger)."""
    endpoint_dir: Path | None = None
    """An endpoint folder: serve what its `current.json` names, following changes."""
    poll_seconds: float = 0.5
    limits: Limits = Limits()
    torch_threads: int | None = 1
    """torch's intra-op threads for torch models (None: torch's default, one per core).

    One request at a time is scored, on small matrices: a second thread gains little when the
    machine is idle, and when another process holds a core every op waits for it at OpenMP's
    barrier, so the throughput collapses on a shared machine (benchmarks/README.md, serving)."""
    max_batch_instances: int = 32
    """The most instances one model call scores for the requests that queued while the model
    was busy (`RequestBatcher`); 1: one request per call."""

    def __post_init__(self) -> None:
        if self.max_batch_instances < 1:
            raise ValueError(
                f"max_batch_instances must be at least 1, not {self.max_batch_instances}"
            )
        if (self.model_source is None) == (self.endpoint_dir is None):
            raise ValueError("give exactly one of a model source and an endpoint folder")
        if self.challenger_source is not None and self.model_source is None:
            raise ValueError("a challenger source goes with a model source (the champion)")
        object.__setattr__(self, "variant", Variant(self.variant))
        if self.challenger_source is not None and self.variant is not Variant.CHAMPION:
            raise ValueError("with a challenger beside it, the model source is the champion")
        object.__setattr__(self, "challenger_share", check_share(self.challenger_share))


def read_current(endpoint_dir: Path) -> dict | None:
    """What `current.json` says, if anything: `{"model": <champion's folder, relative to
    endpoint_dir>, "version": ..., "challenger": {"model": ..., "version": ..., "share": ...}}`,
    `challenger` only when one is deployed."""
    path = Path(endpoint_dir) / CURRENT_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def write_current(
    endpoint_dir: Path,
    model_folder: str,
    version: str,
    challenger: tuple[str, str] | None = None,
    challenger_share: float = 0.0,
) -> None:
    """Point the endpoint at the champion in `model_folder` (relative to it) and, when given,
    the challenger `(folder, version)` answering `challenger_share` of sessions; atomically."""
    endpoint_dir = Path(endpoint_dir)
    document: dict = {"model": model_folder, "version": str(version)}
    if challenger is not None:
        folder, challenger_version = challenger
        document["challenger"] = {
            "model": folder,
            "version": str(challenger_version),
            "share": check_share(challenger_share),
        }
    temporary = endpoint_dir / f".{CURRENT_FILE}.tmp"
    temporary.write_text(json.dumps(document))
    temporary.replace(endpoint_dir / CURRENT_FILE)


class ModelWatcher:
    """Loads what the endpoint folder's `current.json` names whenever it changes; `on_loaded`
    gets the `ServedModels`."""

    def __init__(self, endpoint_dir: Path, poll_seconds: float, on_loaded):
        self.endpoint_dir = Path(endpoint_dir)
        self.poll_seconds = poll_seconds
        self.on_loaded = on_loaded
        self.last_error: str | None = None
        self._seen: dict | None = None
        self._loaded: dict[str, LoadedModel] = {}
        """The packages loaded last time, by folder: reused when named again."""
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
        challenger = current.get("challenger")
        try:
            champion_model = self._load(current["model"])
            challenger_model = self._load(challenger["model"]) if challenger else None
            served = ServedModels.pair(
                champion_model, challenger_model, challenger["share"] if challenger else 0.0
            )
        except Exception as error:  # a broken package must not take the endpoint down
            self.last_error = f"could not serve {CURRENT_FILE} {current}: {error}"
            log.exception("could not serve %s; the previous models keep serving", current)
            return
        self._loaded = {model.package: model for model in served.models.values()}
        self.last_error = None
        for variant, model in served.models.items():
            log.info("%s: %s version %s from %s", variant, model.name, model.version, model.package)
        self.on_loaded(served)

    def _load(self, package: str) -> LoadedModel:
        if package in self._loaded:
            return self._loaded[package]
        model = load_model(self.endpoint_dir / package)
        model.package = package
        return model

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.check()


class RequestBatcher:
    """Scores the requests that queued while the model was busy in one model call.

    The model runs in one worker thread, one call at a time, so the event loop keeps reading and
    parsing requests meanwhile. A request that finds the worker free is scored at once, alone: no
    request waits for company. While a call runs, the requests that arrive queue, and the next
    call takes all of them (up to `max_instances` instances, at least one request): under a load
    one call per request cannot serve, the calls grow and each reads the model's large tables
    once for all of them (benchmarks/README.md, serving). A request whose batch fails is scored
    again alone, so one bad request fails no other."""

    def __init__(self, max_instances: int, limits: Limits):
        self.max_instances = max_instances
        self.limits = limits
        self._queue: deque[tuple[ServedModels, list[Instance], asyncio.Future]] = deque()
        self._draining: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self.calls = 0
        """Model calls made so far (each answers one request or more)."""

    async def predict(self, served: ServedModels, instances: list[Instance]):
        """`predict(served, instances, limits)`'s document, scored with whatever else queued."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((served, instances, future))
        if self._draining is None:
            self._draining = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch = self._next_batch()
                self.calls += 1
                outcomes = await loop.run_in_executor(
                    self._executor, _score_batch, batch, self.limits
                )
                for (*_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():  # the client went away
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self._draining = None

    def _next_batch(self) -> list:
        """The oldest request and those after it for the same models, up to `max_instances`."""
        batch = [self._queue.popleft()]
        size = len(batch[0][1])
        while self._queue:
            served, instances, _ = self._queue[0]
            if served is not batch[0][0]:
                break
            if size + len(instances) > self.max_instances:
                break
            batch.append(self._queue.popleft())
            size += len(instances)
        return batch

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _score_batch(batch: list, limits: Limits) -> list:
    """Each request's document (or the exception it raised), in the worker thread."""
    served = batch[0][0]
    if len(batch) > 1:
        try:
            return predict_requests(served, [instances for _, instances, _ in batch], limits)
        except Exception:
            log.exception("a batch of %d requests failed; scoring them one by one", len(batch))
    outcomes: list = []
    for _, instances, _ in batch:
        try:
            outcomes.append(predict(served, instances, limits))
        except Exception as error:
            outcomes.append(error)
    return outcomes


class InferenceApp:
    def __init__(self, config: ServerConfig):
        self.config = config
        self.served: ServedModels | None = None
        self.watcher: ModelWatcher | None = None
        self.batcher = RequestBatcher(config.max_batch_instances, config.limits)
        if config.model_source is not None:
            champion = load_model(config.model_source)
            if config.challenger_source is None:
                self.use(ServedModels.single(champion, config.variant))
            else:
                challenger = load_model(config.challenger_source)
                self.use(ServedModels.pair(champion, challenger, config.challenger_share))

    @property
    def model(self) -> LoadedModel | None:
        """The champion (or the one model) served now."""
        return self.served.champion if self.served is not None else None

    def use(self, served: ServedModels) -> None:
        limit_torch_threads(self.config.torch_threads)
        for model in served.models.values():
            model.popularity_ranking()  # warm before the swap: the first request pays nothing
        self.served = served  # one reference assignment: requests see the old or the new models

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["method"] == "POST" and (
            scope["path"] == "/invocations" or _is_runtime_path(scope["path"])
        ):
            status, body, headers = await self._invocations(scope, receive)
        else:
            status, body = self._respond(scope)
            headers = _JSON
        await send({"type": "http.response.start", "status": status, "headers": headers})
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
                self.batcher.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _respond(self, scope) -> tuple[int, bytes]:
        """Everything but an invocation."""
        method, path = scope["method"], scope["path"]
        if path == "/ping" and method == "GET":
            return self._ping()
        if path == "/ping" or path == "/invocations":
            return 405, _error(f"{method} {path} is not allowed")
        return 404, _error(f"no route {method} {path}: the endpoint has /ping and /invocations")

    def _ping(self) -> tuple[int, bytes]:
        served = self.served
        if served is None:
            reason = self.watcher.last_error if self.watcher else None
            return 503, orjson.dumps({"status": "no model loaded", "error": reason})
        champion = served.champion
        return 200, orjson.dumps(
            {
                "status": "ok",
                "model": champion.describe(),
                "package": champion.package,
                "variants": served.describe(),
            }
        )

    async def _invocations(self, scope, receive) -> tuple[int, bytes, list]:
        """Status, body and headers of an invocation's answer."""
        content_type = _header(scope, b"content-type").split(b";")[0].strip().lower()
        if content_type not in _ACCEPTED_TYPES:
            reason = f"content type {content_type.decode('latin-1')!r}: send JSON"
            return 415, _error(reason), _JSON
        served = self.served
        if served is None:
            return 503, _error("no model loaded yet"), _JSON
        try:
            body = await read_body(receive, self.config.limits.max_body_bytes)
            instances = parse_instances(body, self.config.limits)
            target = _header(scope, TARGET_VARIANT_HEADER).decode("latin-1")
            if target:
                instances = _targeted(instances, target)
            for position, instance in enumerate(instances):  # a variant not served: a 400 now
                served.route(instance, f"instances[{position}]")
            answer = await self.batcher.predict(served, instances)
        except InvalidRequest as error:
            return 400, _error(str(error)), _JSON
        except BodyTooLarge as error:
            return 413, _error(str(error)), _JSON
        variants = {prediction["variant"] for prediction in answer["predictions"]}
        if len(variants) == 1:
            return (
                200,
                orjson.dumps(answer),
                [*_JSON, (INVOKED_VARIANT_HEADER, variants.pop().encode())],
            )
        return 200, orjson.dumps(answer), _JSON


def _targeted(instances: list[Instance], target: str) -> list[Instance]:
    """The instances, each forced to the request's target variant (SageMaker's TargetVariant)."""
    if target not in Variant.__members__.values():
        names = " or ".join(Variant)
        raise InvalidRequest(f"target variant {target[:40]!r} is not {names}")
    variant = Variant(target)
    for position, instance in enumerate(instances):
        if instance.variant not in (None, variant):
            raise InvalidRequest(
                f"instances[{position}].variant is {instance.variant}, but the request "
                f"targets variant {variant}"
            )
    return [replace(instance, variant=variant) for instance in instances]


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


# --- several worker processes --------------------------------------------------------------------
# uvicorn starts each worker of `--workers N` as a fresh process that imports the app by name: the
# command line passes its config through this variable, and each worker loads its own models.
WORKER_CONFIG_VARIABLE = "RECS_SERVE_WORKER_CONFIG"


def config_to_environment(config: ServerConfig) -> str:
    """`config` as the JSON `app_from_environment` reads (the default `limits`)."""
    if config.limits != Limits():
        raise ValueError("worker processes serve with the default limits")
    values = {field.name: getattr(config, field.name) for field in fields(config)}
    del values["limits"]
    return json.dumps(values, default=str)  # a Path as its text; the variant is a str


def app_from_environment() -> InferenceApp:
    """The app of one worker process, from the config the command line left in the environment."""
    raw = os.environ.get(WORKER_CONFIG_VARIABLE)
    if not raw:
        raise RuntimeError(
            f"{WORKER_CONFIG_VARIABLE} is not set: start workers with recs-platform serve"
        )
    values = json.loads(raw)
    if values["endpoint_dir"] is not None:
        values["endpoint_dir"] = Path(values["endpoint_dir"])
    return create_app(ServerConfig(**values))
