"""Serving: `POST /invocations` against the in-process model call, in the same run (issue 6 §6).

A 20,000-item catalogue (`--items`: 50,000 for the goal of issue 22), prefixes of 10 SKUs, k=20,
one instance per request, one uvicorn worker (`recs-platform serve --model <folder>`). Per model
(GRU4Rec, Markov; SASRec and the latent-intent chains on request):

- in-process reference: `orjson.dumps(predict(load_model(folder), parse_instances(body)))` per
  request, the server's own work minus HTTP, timed call by call after a warm-up;
- HTTP at a fixed rate (default 200 requests/s for 20 s), open loop: a Python asyncio client
  sends each request on its schedule over a pool of keep-alive connections, without waiting for
  earlier answers, and measures latency from the *scheduled* send time, so queueing counts;
- maximum throughput: `wrk -t1 -c8 -d10s --latency`, closed loop, POSTs via a Lua script.

The same fixed-rate load and wrk run against `bare_pixel_app.py` (an ASGI app that drains the body
and answers a GIF) first: the floor of client + uvicorn here, and a check that the client is not
the bottleneck (its send lag, actual send time minus scheduled, is reported, and the latency from
the actual send beside the one from the schedule). The client runs with garbage collection off
and the simulated sessions frozen out of it (a full collection stalled it ~90 ms).

Torch models are also served a second time with `OMP_NUM_THREADS=1` (`<model>_1thread`; the
in-process reference then runs with one thread too): `recs-platform serve` leaves torch at its
default of one intra-op thread per core, which collapses as soon as the other core is busy (see
benchmarks/README.md). `--background-load N` runs N busy loops beside the measurements, to
reproduce a shared machine on purpose. `--no-one-thread-variant` skips the second serving.

Models are built in about 15 s: a 7-day, 3,000 sessions/day simulated shop of 20,000 items in
memory (days 0-5 train; day 6 is held out and gives the probe prefixes: the first 10 SKUs of its
sessions of 10 or more, 383, topped up to 500 with random catalogue SKUs), plus sessions of 5
made of the SKUs never viewed in training (12,054 of the 20,000), so every model knows the whole
catalogue. GRU4Rec trains 1 epoch with the sampled softmax and one thread (about 10 s); the
latent-intent chains (on request) 1 epoch.
Quality is not measured here, only speed: these models are not the ones bench_models.py reports.

Two variants (issue 24 §5: "serving two variants keeps /invocations p99 < 25 ms at 200
requests/s"): `--variants 2` serves the two models of `--pair` (default: the Markov chain as the
champion, GRU4Rec as the challenger) from one process, `recs-platform serve --model <champion>
--challenger <challenger> --challenger-share 0.5`, instead of the models one by one. Every request
then carries its own `session_id` (`bench-session-000000`, ...), so the endpoint's hash of it sends
about half of them to each variant; the in-process reference is the same pair
(`ServedModels.pair`) on the same bodies. Latency is reported overall and per variant, from the
`variant` each answer names; the split is checked against the share (within 3 binomial standard
deviations) and every answer's variant against `variant_for_session` of its session id.

Goals: HTTP p50 <= 1.5 x in-process p50 + 2 ms; HTTP p99 < 25 ms at 200 requests/s.
Needs `wrk` (apt-get install wrk). Talks only to 127.0.0.1; every server is stopped on exit.
Usage: .venv/bin/python benchmarks/bench_serving.py [--seconds 20] [--rate 200]
       [--wrk-seconds 10] [--models gru4rec markov] [--calls 3000] [--background-load 0]
       [--items 20000] [--variants 2 [--pair markov gru4rec] [--challenger-share 0.5]] [--quick]
About 2.5 minutes on the 2-core machine (5 when the default-thread GRU4Rec collapses).
`--quick`: a smoke run, a 5,000-item shop of 1,000 sessions a day, 5 s at the fixed rate, 3 s of
wrk, 500 timed in-process calls (any of them set explicitly wins); results saved as `*_quick.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httptools
import numpy as np
import orjson
import torch
from local_servers import free_port
from report import RESULTS, save_and_print

from recs_platform.models.gru4rec import GRU4RecRecommender
from recs_platform.models.latent_intent import LatentIntentRecommender
from recs_platform.models.markov import MarkovRecommender
from recs_platform.models.popularity import PopularityRecommender
from recs_platform.models.sasrec import SASRecRecommender
from recs_platform.models.torch_common import torch_threads
from recs_platform.serving.inference import (
    LoadedModel,
    ServedModels,
    Variant,
    load_model,
    package_model,
    parse_instances,
    predict,
    variant_for_session,
)
from recs_platform.serving.server import ServerConfig
from recs_platform.simulation import ShopConfig, simulate_sessions
from recs_platform.simulation.catalogue import build_catalogue

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
DEFAULT_ITEMS = 20_000
PREFIX = 10
K = 20
PROBES = 500
WARMUP_CALLS = 200
IN_PROCESS_LIMIT_S = 300.0  # the timed calls stop there, however many are left
WRK_CONNECTIONS = 8
POOL_CONNECTIONS = 64
REQUEST_TIMEOUT_S = 5.0
STARTUP_TIMEOUT_S = 120.0
GOAL_P50_FACTOR, GOAL_P50_PLUS_MS, GOAL_P99_MS = 1.5, 2.0, 25.0
MODELS = {
    "gru4rec": lambda: GRU4RecRecommender(loss="sampled", epochs=1, num_threads=1),
    "sasrec": lambda: SASRecRecommender(loss="sampled", epochs=1, num_threads=1),
    "markov": lambda: MarkovRecommender(),
    "latent_intent": lambda: LatentIntentRecommender(epochs=1, num_threads=1),
    "popularity": lambda: PopularityRecommender(),
}
TORCH_MODELS = ("gru4rec", "sasrec", "latent_intent")
SERVER_TORCH_THREADS = ServerConfig(model_source="-").torch_threads
NO_ANSWER = ("p50_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms")
DEFAULT_PAIR = ("markov", "gru4rec")  # --variants 2: the champion, then the challenger
DEFAULT_SHARE = 0.5
SPLIT_SIGMAS = 3.0  # the split is near the share within this many binomial standard deviations
# --quick: a smoke run of the whole script (each still overridden by its own option)
QUICK = {"items": 5_000, "sessions_per_day": 1_000, "seconds": 5, "wrk_seconds": 3, "calls": 500}
FULL = {
    "items": DEFAULT_ITEMS,
    "sessions_per_day": 3_000,
    "seconds": 20,
    "wrk_seconds": 10,
    "calls": 3_000,
}


# --- models and probes -------------------------------------------------------------------------


def shop_config(items: int, sessions_per_day: int = 3_000) -> ShopConfig:
    """The simulated shop: 7 days of 3,000 sessions (`--quick`: fewer) over `items` products."""
    return ShopConfig(seed=11, n_items=items, sessions_per_day=sessions_per_day, days=7)


def shop_sessions(
    shop: ShopConfig, rng: np.random.Generator
) -> tuple[list[tuple[str, ...]], list[list[str]]]:
    """Training sessions covering every SKU of the shop, and the probe prefixes (held-out day)."""
    sessions = simulate_sessions(shop)
    last_day = shop.days - 1
    train = [session.skus for session in sessions if session.day < last_day]
    seen = {sku for session in train for sku in session}
    unseen = [sku for sku in build_catalogue(shop).skus if sku not in seen]
    rng.shuffle(unseen)
    train += [tuple(unseen[start : start + 5]) for start in range(0, len(unseen), 5)]
    held_out = [list(s.skus[:PREFIX]) for s in sessions if s.day == last_day and len(s.skus) >= 10]
    catalogue = build_catalogue(shop).skus
    while len(held_out) < PROBES:  # topped up with random catalogue SKUs if too few
        held_out.append([catalogue[i] for i in rng.choice(len(catalogue), PREFIX, replace=False)])
    return train, held_out[:PROBES]


def package_probes(
    item_ids: list[str], probes: Path | None, rng: np.random.Generator
) -> list[list[str]]:
    """`--package`'s probe prefixes: the first `PREFIX` SKUs of the sessions of two or more of
    `probes` (a `training_dataset` split's parquet, its `items`) that the model knows, else
    random prefixes of its catalogue; `PROBES` of them."""
    if probes is None:
        return [[item_ids[i] for i in rng.choice(len(item_ids), PREFIX, replace=False)]
                for _ in range(PROBES)]  # fmt: skip
    import pyarrow.parquet as pq

    known = set(item_ids)
    sessions = pq.read_table(probes, columns=["items"]).column("items").to_pylist()
    prefixes = [
        [sku for sku in session if sku in known][:PREFIX]
        for session in sessions
        if sum(sku in known for sku in session) >= 2
    ]
    if len(prefixes) < PROBES:
        raise SystemExit(f"{probes}: {len(prefixes)} sessions of two known SKUs, need {PROBES}")
    return [prefixes[i] for i in np.sort(rng.choice(len(prefixes), PROBES, replace=False))]


def request_body(prefix: list[str]) -> bytes:
    return orjson.dumps({"instances": [{"session": prefix, "k": K}]})


def session_id(position: int) -> str:
    return f"bench-session-{position:06d}"


def session_bodies(prefixes: list[list[str]], count: int) -> list[bytes]:
    """`count` bodies, each with its own session id (the probe prefixes in turn): the fixed-rate
    run sends each once, so every request is a new session for the endpoint's hash."""
    return [
        orjson.dumps(
            {
                "instances": [
                    {
                        "session": prefixes[position % len(prefixes)],
                        "k": K,
                        "session_id": session_id(position),
                    }
                ]
            }
        )
        for position in range(count)
    ]


# --- in-process reference ----------------------------------------------------------------------


def percentiles_ms(seconds: list[float] | np.ndarray) -> dict:
    values = np.asarray(seconds, dtype=np.float64) * 1000
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p95_ms": round(float(np.percentile(values, 95)), 3),
        "p99_ms": round(float(np.percentile(values, 99)), 3),
        "max_ms": round(float(values.max()), 3),
        "mean_ms": round(float(values.mean()), 3),
    }


def in_process(folder: Path, bodies: list[bytes], calls: int, threads: int | None) -> dict:
    """What the server does per request, minus HTTP: parse, predict, serialise.

    `threads`: torch's intra-op threads, as the server gets them (None: torch's default).
    """
    with torch_threads(threads):
        return _in_process(load_model(folder), bodies, calls)


def in_process_pair(
    folders: tuple[Path, Path], share: float, bodies: list[bytes], calls: int, threads: int | None
) -> dict:
    """The same for an endpoint holding a champion and a challenger (`ServedModels.pair`), timed
    overall and by the variant that answered; `first_answers`: the first body each variant
    answers (its position) and that answer, to check the server's against."""
    with torch_threads(threads):
        served = ServedModels.pair(load_model(folders[0]), load_model(folders[1]), share)
        for model in served.models.values():
            model.popularity_ranking()  # as the server does before serving
        result = _in_process(served, bodies, calls, by_variant=True)
        result.pop("first_answer")
        first_answers = {}
        for position, body in enumerate(bodies):
            answer = predict(served, parse_instances(body))["predictions"][0]
            first_answers.setdefault(answer["variant"], (position, answer))
            if len(first_answers) == len(Variant):
                break
        result["first_answers"] = first_answers
        return result


def _in_process(
    model: LoadedModel | ServedModels, bodies: list[bytes], calls: int, by_variant: bool = False
) -> dict:
    for position in range(WARMUP_CALLS):
        orjson.dumps(predict(model, parse_instances(bodies[position % len(bodies)])))
    timings = []
    variants = []  # by_variant: the variant that answered each timed call
    deadline = time.perf_counter() + IN_PROCESS_LIMIT_S
    for position in range(calls):
        body = bodies[position % len(bodies)]
        started = time.perf_counter()
        answer = predict(model, parse_instances(body))
        orjson.dumps(answer)
        timings.append(time.perf_counter() - started)
        if by_variant:
            variants.append(answer["predictions"][0]["variant"])
        if started > deadline:
            break
    answer = predict(model, parse_instances(bodies[0]))["predictions"][0]
    result = {
        "calls": len(timings),
        **percentiles_ms(timings),
        "calls_per_s": round(len(timings) / sum(timings), 1),
        "torch_threads": torch.get_num_threads(),
        "first_answer": answer,
    }
    if by_variant:
        timed, answered = np.asarray(timings), np.asarray(variants)
        result["by_variant"] = {}
        for variant in Variant:
            mine = timed[answered == variant.value]
            if len(mine):
                result["by_variant"][variant.value] = {
                    "calls": len(mine),
                    **percentiles_ms(mine),
                    "calls_per_s": round(float(len(mine) / mine.sum()), 1),
                }
    return result


# --- servers -----------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child: SIGTERM when this benchmark dies, even by SIGKILL (Linux prctl)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Server:
    """A uvicorn server process on 127.0.0.1:port; stopped (then killed) on leaving."""

    def __init__(
        self, command: list[str], port: int, log: Path, ready_path: str, environ: dict | None = None
    ):
        self.command, self.port, self.log, self.ready_path = command, port, log, ready_path
        self.environ = {**os.environ, **(environ or {})}
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=HERE,
                env=self.environ,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        try:
            self._wait_until_up()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _wait_until_up(self, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{tail}")
            try:
                connection = http.client.HTTPConnection(HOST, self.port, timeout=2)
                connection.request("GET", self.ready_path)
                if connection.getresponse().status == 200:
                    connection.close()
                    return
                connection.close()
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server did not answer {self.ready_path} in {timeout_s:.0f} s")

    def drain(self) -> None:
        """Wait until the server answers again: an overloaded one may still hold a backlog."""
        self._wait_until_up(timeout_s=60)
        time.sleep(1)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def inference_server(
    folder: Path,
    port: int,
    log: Path,
    threads: int | None,
    challenger: tuple[Path, float] | None = None,
    max_batch_instances: int | None = None,
    workers: int | None = None,
) -> Server:
    """`recs-platform serve` as it is; `threads` sets OMP_NUM_THREADS (torch's intra-op threads);
    `challenger`: a second model folder served beside it, and its share of sessions;
    `max_batch_instances`, `workers`: the server's options of those names (else its defaults)."""
    command = [str(BIN / "recs-platform"), "serve", "--model", str(folder)]
    if max_batch_instances is not None:
        command += ["--max-batch-instances", str(max_batch_instances)]
    if workers is not None:
        command += ["--workers", str(workers)]
    if challenger is not None:
        command += ["--challenger", str(challenger[0]), "--challenger-share", f"{challenger[1]}"]
    environ = {} if threads is None else {"OMP_NUM_THREADS": str(threads)}
    return Server([*command, "--host", HOST, "--port", str(port)], port, log, "/ping", environ)


def bare_server(port: int, log: Path) -> Server:
    command = [str(BIN / "python"), "-m", "uvicorn", "bare_pixel_app:app", "--host", HOST]
    command += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    return Server(command, port, log, "/")


def post_once(port: int, body: bytes) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_S)
    try:
        connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# --- fixed-rate open-loop client ---------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection; `exchange` sends a request and reads its response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.complete = False

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 5)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    def on_message_complete(self) -> None:  # httptools callback
        self.complete = True

    async def exchange(self, request: bytes) -> int:
        parser = httptools.HttpResponseParser(self)
        self.complete = False
        self.writer.write(request)
        while not self.complete:
            chunk = await self.reader.read(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            parser.feed_data(chunk)
        return parser.get_status_code()

    def close(self) -> None:
        self.writer.close()


class BodyConnection(Connection):
    """A connection that also keeps each response's body (to read the variant that answered)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        super().__init__(reader, writer)
        self.chunks: list[bytes] = []

    def on_body(self, chunk: bytes) -> None:  # httptools callback
        self.chunks.append(chunk)

    async def exchange(self, request: bytes) -> int:
        self.chunks = []
        return await super().exchange(request)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


def answered_variant(body: bytes) -> str:
    """The variant an `/invocations` answer of one instance names."""
    return orjson.loads(body)["predictions"][0]["variant"]


def raw_request(path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _fixed_rate(
    port: int, path: str, bodies: list[bytes], rate: float, seconds: float, by_variant: bool
):
    requests = [raw_request(path, body) for body in bodies]
    count = int(rate * seconds)
    # by_variant: keep each answer's body and read its variant (after its latency is taken)
    kind = BodyConnection if by_variant else Connection
    variants: list[str | None] = [None] * count
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    opened = await asyncio.gather(*(kind.open(port) for _ in range(POOL_CONNECTIONS)))
    for connection in opened:
        pool.put_nowait(connection)
    latency = np.full(count, np.nan)
    send_lag = np.full(count, np.nan)
    statuses: dict[str, int] = {}

    async def one(position: int, scheduled: float) -> None:
        connection = await pool.get()  # waiting for a free connection is queueing: it counts
        send_lag[position] = time.perf_counter() - scheduled
        try:
            status = await asyncio.wait_for(
                connection.exchange(requests[position % len(requests)]), REQUEST_TIMEOUT_S
            )
        except (TimeoutError, OSError, ConnectionError) as error:
            statuses[type(error).__name__] = statuses.get(type(error).__name__, 0) + 1
            connection.close()
            with contextlib.suppress(TimeoutError, OSError):
                pool.put_nowait(await kind.open(port))
            return
        latency[position] = time.perf_counter() - scheduled
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if by_variant and status == 200:
            variants[position] = answered_variant(connection.body)
        pool.put_nowait(connection)

    # The schedule is kept by a thread: time.sleep is precise to ~0.1 ms, where the event loop's
    # timers round to whole milliseconds (epoll), which would add up to 1 ms of lag per request.
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task] = []
    start = time.perf_counter() + 0.05
    stop = threading.Event()

    def launch(position: int, scheduled: float) -> None:
        tasks.append(loop.create_task(one(position, scheduled)))

    def schedule() -> None:
        for position in range(count):
            scheduled = start + position / rate
            delay = scheduled - time.perf_counter()
            if delay > 0 and stop.wait(delay):
                return
            loop.call_soon_threadsafe(launch, position, scheduled)

    sender = threading.Thread(target=schedule, name="fixed-rate-sender", daemon=True)
    sender.start()
    try:
        while sender.is_alive():
            await asyncio.sleep(0.05)
    finally:
        stop.set()
    await asyncio.sleep(0.01)  # the last call_soon_threadsafe callbacks run
    sending_s = time.perf_counter() - start
    _, pending = await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_S * 2)
    for task in pending:
        task.cancel()
    while not pool.empty():
        pool.get_nowait().close()
    answered = latency[~np.isnan(latency)]
    ok = statuses.get("200", 0)
    result = {
        "rate": rate,
        "requests": count,
        "achieved_send_rate": round(count / sending_s, 1),
        "ok": ok,
        "errors": count - ok,
        "statuses": statuses,
        "unfinished": len(pending),
        **(percentiles_ms(answered) if len(answered) else dict.fromkeys(NO_ANSWER, float("inf"))),
        "over_25_ms": int((answered > 0.025).sum()),
        # Lateness of the client (actual send minus scheduled; includes waiting for a free
        # connection), and the latency from the actual send: what the server and the network
        # stack took, without the client's own stalls.
        "send_lag": percentiles_ms(send_lag[~np.isnan(send_lag)]),
        "from_send": percentiles_ms(answered - send_lag[~np.isnan(latency)])
        if len(answered)
        else {},
    }
    if by_variant:
        result["by_variant"] = latency_by_variant(latency, send_lag, variants)
        result["variants"] = variants  # per request; the caller checks and drops them
    return result


def latency_by_variant(latency: np.ndarray, send_lag: np.ndarray, variants: list) -> dict:
    """The fixed-rate percentiles of the requests each variant answered."""
    named = np.asarray([variant or "" for variant in variants])
    by_variant = {}
    for variant in Variant:
        chosen = (named == variant.value) & ~np.isnan(latency)
        if not chosen.any():
            continue
        by_variant[variant.value] = {
            "requests": int(chosen.sum()),
            **percentiles_ms(latency[chosen]),
            "over_25_ms": int((latency[chosen] > 0.025).sum()),
            "from_send": percentiles_ms(latency[chosen] - send_lag[chosen]),
        }
    return by_variant


def fixed_rate(
    port: int, path: str, bodies: list[bytes], rate: float, seconds: float, by_variant=False
) -> dict:
    """The open-loop run, with the client's own pauses kept short: no garbage collection (a
    full collection over this process's simulated sessions stalled it ~90 ms) and a 0.5 ms GIL
    switch interval (the sender thread waits less for the event loop's thread). `by_variant`:
    also the latency of each variant's answers (`by_variant`) and the variant per request
    (`variants`)."""
    switch_interval = sys.getswitchinterval()
    gc.disable()
    sys.setswitchinterval(0.0005)
    try:
        return asyncio.run(_fixed_rate(port, path, bodies, rate, seconds, by_variant))
    finally:
        sys.setswitchinterval(switch_interval)
        gc.enable()


# --- wrk ---------------------------------------------------------------------------------------


def wrk_script(bodies: list[bytes], folder: Path) -> Path:
    script = folder / "invocations.lua"
    listed = ",\n".join(f"  [==[{body.decode()}]==]" for body in bodies)
    script.write_text(
        f"local bodies = {{\n{listed}\n}}\n"
        "local next_body = 0\n"
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        "request = function()\n"
        "  next_body = next_body % #bodies + 1\n"
        "  return wrk.format(nil, nil, nil, bodies[next_body])\n"
        "end\n"
    )
    return script


def wrk(url: str, seconds: int, script: Path) -> dict:
    command = ["wrk", "-t1", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s", "--latency"]
    command += ["-s", str(script), url]
    output = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)

    def latency_ms(percentile: str) -> float:
        found = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s|m|h)$", output, re.M)
        if found is None:  # no answer at all within wrk's 2 s timeout: nothing to report
            return float("inf")
        value, unit = found.groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}[unit]

    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    result = {
        "connections": WRK_CONNECTIONS,
        "seconds": seconds,
        "requests_per_s": float(rate.group(1)) if rate else 0.0,
        "p50_ms": latency_ms("50"),
        "p99_ms": latency_ms("99"),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(1) if errors else "",
    }
    if rate is None or result["p99_ms"] == float("inf"):
        result["output"] = output[-2000:]
    return result


# --- the run -----------------------------------------------------------------------------------


@contextlib.contextmanager
def background_load(processes: int):
    """`processes` busy loops (each wants a whole core) for the block's duration."""
    spinners = [
        subprocess.Popen(
            [sys.executable, "-c", "while True: pass"],
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        for _ in range(processes)
    ]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait(timeout=10)


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def load_phase(server: Server, path: str, bodies, args, script: Path, by_variant=False) -> dict:
    port = server.port
    before = load_average()
    result = {"fixed_rate": fixed_rate(port, path, bodies, args.rate, args.seconds, by_variant)}
    server.drain()
    result["wrk"] = wrk(f"http://{HOST}:{port}{path}", args.wrk_seconds, script)
    result["load_average_before_after"] = [before, load_average()]
    return result


def verdicts(model: dict, rate: float) -> dict:
    reference, http = model["in_process"], model["http"]["fixed_rate"]
    bound = GOAL_P50_FACTOR * reference["p50_ms"] + GOAL_P50_PLUS_MS
    return {
        "http_p50_p95_p99_ms": [http[key] for key in ("p50_ms", "p95_ms", "p99_ms")],
        "p50_bound_ms (1.5 x in-process p50 + 2 ms)": round(bound, 3),
        "goal_p50_met": http["p50_ms"] <= bound,
        "http_p50_over_in_process_p50": round(http["p50_ms"] / reference["p50_ms"], 2),
        f"http_p99_ms_at_{rate:g}_per_s": http["p99_ms"],
        "http_p99_ms_from_actual_send": http["from_send"].get("p99_ms"),
        "client_send_lag_p99_max_ms": [http["send_lag"]["p99_ms"], http["send_lag"]["max_ms"]],
        "goal_p99_met (< 25 ms, no errors)": http["p99_ms"] < GOAL_P99_MS and http["errors"] == 0,
        "max_throughput_per_s": model["http"]["wrk"]["requests_per_s"],
        "max_throughput_over_in_process_calls_per_s": round(
            model["http"]["wrk"]["requests_per_s"] / reference["calls_per_s"], 3
        ),
    }


def print_table(result: dict, names: list[str], rate: float) -> None:
    bare = result["bare"]["fixed_rate"]
    print(
        "\np99 sent: from the actual send (without the client's own lateness); goals: p50 <= "
        f"{GOAL_P50_FACTOR:g} x in-process p50 + {GOAL_P50_PLUS_MS:g} ms, p99 < {GOAL_P99_MS:g} ms"
    )
    print(
        f"bare ASGI app at {rate:g}/s: p50 {bare['p50_ms']:.2f} ms, p99 {bare['p99_ms']:.2f} "
        f"ms, max {bare['max_ms']:.1f} ms, errors {bare['errors']}; client's send lag p99 "
        f"{bare['send_lag']['p99_ms']:.2f} ms (max {bare['send_lag']['max_ms']:.1f}); "
        f"wrk {result['bare']['wrk']['requests_per_s']:,.0f} req/s"
    )
    print(
        f"{'':<16} {'in-process (ms)':>19} {f'HTTP at {rate:g}/s (ms)':>50} {'goals':>21} "
        f"{'wrk -c8 (closed loop)':>24} {'in-proc':>9}"
    )
    print(
        f"{'model':<16} {'p50':>11} {'p99':>7} {'p50':>9} {'p95':>7} {'p99':>7} {'max':>7} "
        f"{'p99 sent':>8} "
        f"{'err':>4} {'p50 bound':>9} {'p50':>5} {'p99':>5} {'req/s':>9} {'p50':>6} "
        f"{'p99':>6} {'calls/s':>9}"
    )
    for name in names:
        model = result[name]
        reference, http = model["in_process"], model["http"]["fixed_rate"]
        closed = model["http"]["wrk"]
        goals = model["goals"]
        print(
            f"{name:<16} {reference['p50_ms']:>11.2f} {reference['p99_ms']:>7.2f} "
            f"{http['p50_ms']:>9.2f} {http['p95_ms']:>7.2f} {http['p99_ms']:>7.2f} "
            f"{http['max_ms']:>7.1f} "
            f"{http['from_send'].get('p99_ms', float('inf')):>8.2f} "
            f"{http['errors']:>4} {goals['p50_bound_ms (1.5 x in-process p50 + 2 ms)']:>9.2f} "
            f"{'met' if goals['goal_p50_met'] else 'NOT':>5} "
            f"{'met' if goals['goal_p99_met (< 25 ms, no errors)'] else 'NOT':>5} "
            f"{closed['requests_per_s']:>9,.0f} {closed['p50_ms']:>6.2f} {closed['p99_ms']:>6.2f} "
            f"{reference['calls_per_s']:>9,.0f}"
        )


def serve_and_measure(
    label, folder, threads, bodies, args, script: Path, log: Path, server_options=(None, None)
) -> dict:
    """`server_options`: the server's `--max-batch-instances` and `--workers` (None: default)."""
    max_batch_instances, workers = server_options
    model: dict = {
        "torch_threads_set": threads,
        "max_batch_instances": max_batch_instances,
        "workers": workers,
    }
    # The in-process reference runs with the threads the server gives torch (its default when
    # OMP_NUM_THREADS is not set): the same sums in the same order, the same scores.
    served_threads = threads if threads is not None else SERVER_TORCH_THREADS
    model["in_process"] = in_process(folder, bodies, args.calls, served_threads)
    expected = model["in_process"].pop("first_answer")
    if expected["unknown"] or expected["fallback"] or len(expected["items"]) != K:
        raise RuntimeError(f"{label}: unexpected answer {expected}")
    port = free_port()
    with inference_server(folder, port, log, threads, None, max_batch_instances, workers) as server:
        status, answer = post_once(port, bodies[0])
        if status != 200 or orjson.loads(answer)["predictions"][0] != expected:
            raise RuntimeError(f"{label}: the server's answer differs: {status} {answer[:500]}")
        model["http"] = load_phase(server, "/invocations", bodies, args, script)
    model["goals"] = verdicts(model, args.rate)
    print(
        f"{label}: in-process {model['in_process']}; HTTP {json.dumps(model['http'])}",
        flush=True,
    )
    return model


def fit_and_package(name: str, train, shop: ShopConfig, scratch: Path) -> tuple[Path, float]:
    """`name` fitted on the training sessions and packaged as an endpoint loads it."""
    fit_started = time.perf_counter()
    recommender = MODELS[name]().fit(train)
    fit_seconds = time.perf_counter() - fit_started
    folder = package_model(recommender, scratch / name, name, "bench", f"bench:{name}")
    if len(recommender.item_ids) != shop.n_items:
        raise RuntimeError(f"{name} knows {len(recommender.item_ids)} items")
    return folder, round(fit_seconds, 1)


def server_options(args) -> list[tuple[int | None, int | None]]:
    """Every (`--max-batch-instances`, `--workers`) pair the run serves each model with."""
    return [
        (batch, workers)
        for batch in args.max_batch_instances or [None]
        for workers in args.workers or [None]
    ]


def options_label(options: tuple[int | None, int | None]) -> str:
    batch, workers = options
    return ("" if batch is None else f"_batch{batch}") + ("" if workers is None else f"_w{workers}")


def split_check(answered: list[str | None], share: float) -> dict:
    """How the answered requests split between the variants, against the challenger's share
    (within SPLIT_SIGMAS binomial standard deviations) and against the variant each request's
    session id hashes to (`variant_for_session`): every answer must name that one."""
    hashed = [
        variant_for_session(session_id(position), share).value for position in range(len(answered))
    ]
    counts = {variant.value: answered.count(variant.value) for variant in Variant}
    total = sum(counts.values())
    observed = counts[Variant.CHALLENGER] / total if total else float("nan")
    tolerance = SPLIT_SIGMAS * math.sqrt(share * (1 - share) / total) if total else 0.0
    mismatches = sum(
        got is not None and got != expected for got, expected in zip(answered, hashed, strict=True)
    )
    return {
        "requests_by_variant": counts,
        "unanswered": len(answered) - total,
        "challenger_share_answered": round(observed, 4),
        "challenger_share_by_hash_of_sent": round(
            hashed.count(Variant.CHALLENGER) / len(hashed), 4
        ),
        "tolerance": round(tolerance, 4),
        "routing_mismatches": mismatches,
        "near_share": bool(abs(observed - share) <= tolerance and mismatches == 0),
    }


def variant_verdicts(model: dict) -> dict:
    """Per variant: the HTTP latency of the answers it gave against its in-process calls."""
    reference = model["in_process"]["by_variant"]
    http = model["http"]["fixed_rate"]["by_variant"]
    verdict = {}
    for variant in Variant:
        if variant.value not in reference or variant.value not in http:
            continue
        mine, served = reference[variant.value], http[variant.value]
        verdict[variant.value] = {
            "requests": served["requests"],
            "in_process_p50_p99_ms": [mine["p50_ms"], mine["p99_ms"]],
            "http_p50_p95_p99_ms": [served[key] for key in ("p50_ms", "p95_ms", "p99_ms")],
            "http_p50_over_in_process_p50": round(served["p50_ms"] / mine["p50_ms"], 2),
            "http_p99_over_in_process_p99": round(served["p99_ms"] / mine["p99_ms"], 2),
            "http_p99_ms_from_actual_send": served["from_send"]["p99_ms"],
            "over_25_ms": served["over_25_ms"],
            "goal_p99_met (< 25 ms)": served["p99_ms"] < GOAL_P99_MS,
        }
    return verdict


def serve_pair_and_measure(label, folders, bodies, args, script: Path, log: Path) -> dict:
    """The champion and the challenger from one `recs-platform serve`, each request routed by
    its session id: the in-process pair, the server's answers checked, then the load."""
    share = args.challenger_share
    model: dict = {
        "torch_threads_set": None,
        "champion": args.pair[0],
        "challenger": args.pair[1],
        "challenger_share": share,
    }
    model["in_process"] = in_process_pair(folders, share, bodies, args.calls, SERVER_TORCH_THREADS)
    expected = model["in_process"].pop("first_answers")
    for variant, (_, answer) in expected.items():
        if answer["unknown"] or answer["fallback"] or len(answer["items"]) != K:
            raise RuntimeError(f"{label} ({variant}): unexpected answer {answer}")
    port = free_port()
    with inference_server(folders[0], port, log, None, (folders[1], share)) as server:
        for variant, (position, answer) in expected.items():
            status, body = post_once(port, bodies[position])
            if status != 200 or orjson.loads(body)["predictions"][0] != answer:
                raise RuntimeError(
                    f"{label} ({variant}): the server's answer differs: {status} {body[:500]}"
                )
        model["http"] = load_phase(server, "/invocations", bodies, args, script, by_variant=True)
    model["split"] = split_check(model["http"]["fixed_rate"].pop("variants"), share)
    model["goals"] = verdicts(model, args.rate)
    model["goals_by_variant"] = variant_verdicts(model)
    print(
        f"{label}: in-process {model['in_process']}; HTTP {json.dumps(model['http'])}; "
        f"split {model['split']}",
        flush=True,
    )
    return model


def print_variants(model: dict, pair: tuple[str, str]) -> None:
    """The two-variant run's lines per variant, and its split."""
    names = dict(zip((Variant.CHAMPION.value, Variant.CHALLENGER.value), pair, strict=True))
    for variant, goals in model["goals_by_variant"].items():
        reference, served = goals["in_process_p50_p99_ms"], goals["http_p50_p95_p99_ms"]
        print(
            f"  {variant} ({names[variant]}): {goals['requests']:,} requests; in-process p50 "
            f"{reference[0]:.2f} / p99 {reference[1]:.2f} ms; HTTP p50 {served[0]:.2f} / p95 "
            f"{served[1]:.2f} / p99 {served[2]:.2f} ms (sent p99 "
            f"{goals['http_p99_ms_from_actual_send']:.2f}), {goals['over_25_ms']} over 25 ms; "
            f"HTTP / in-process p50 {goals['http_p50_over_in_process_p50']:.2f}, p99 "
            f"{goals['http_p99_over_in_process_p99']:.2f}; p99 goal "
            f"{'met' if goals['goal_p99_met (< 25 ms)'] else 'NOT met'}"
        )
    split = model["split"]
    print(
        f"  split: {split['requests_by_variant']}, challenger share "
        f"{split['challenger_share_answered']:.4f} (share {model['challenger_share']:g} +/- "
        f"{split['tolerance']:.4f}; by the hash of the sent ids "
        f"{split['challenger_share_by_hash_of_sent']:.4f}), {split['routing_mismatches']} answers "
        f"from the wrong variant, {split['unanswered']} unanswered: "
        f"{'near the share' if split['near_share'] else 'NOT near the share'}"
    )


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, help="fixed-rate phase length (default 20)")
    parser.add_argument("--rate", type=float, default=200, help="fixed rate, requests/s")
    parser.add_argument(
        "--items", type=int, help=f"products in the simulated catalogue (default {DEFAULT_ITEMS})"
    )
    parser.add_argument("--wrk-seconds", type=int, help="default 10")
    parser.add_argument("--calls", type=int, help="timed in-process calls (default 3000)")
    parser.add_argument("--models", nargs="+", choices=MODELS, help="default: gru4rec markov")
    parser.add_argument(
        "--background-load",
        type=int,
        default=0,
        help="CPU-bound processes to run beside the measurements (another tenant's job on a "
        "shared machine, made reproducible); default none",
    )
    parser.add_argument(
        "--one-thread-variant",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also serve each torch model with OMP_NUM_THREADS=1 (torch's default: one thread "
        "per core), and time its in-process call with one thread",
    )
    parser.add_argument(
        "--variants",
        type=int,
        choices=(1, 2),
        default=1,
        help="1: serve each of --models alone (default); 2: serve the two models of --pair from "
        "one endpoint, a champion and a challenger, each request a new session id",
    )
    parser.add_argument(
        "--pair",
        nargs=2,
        choices=MODELS,
        metavar=("CHAMPION", "CHALLENGER"),
        help="with --variants 2: the champion and the challenger (default markov gru4rec)",
    )
    parser.add_argument(
        "--challenger-share",
        type=float,
        default=DEFAULT_SHARE,
        help="with --variants 2: the challenger's share of sessions (default 0.5)",
    )
    parser.add_argument(
        "--package",
        type=Path,
        help="serve this packaged model (an endpoint's models/<version> folder) instead of "
        "fitting --models on a simulated shop",
    )
    parser.add_argument(
        "--probes",
        type=Path,
        help="with --package: a training_dataset split's parquet whose sessions give the probe "
        "prefixes (default: random prefixes of the model's catalogue)",
    )
    parser.add_argument(
        "--max-batch-instances",
        type=int,
        nargs="+",
        help="serve each model once per value of the server's --max-batch-instances (1: one "
        "request per model call); default: the server's default",
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        help="serve each model once per value of the server's --workers (processes); default 1",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: a 5,000-item shop of 1,000 sessions a day, 5 s at the fixed rate, 3 s "
        "of wrk, 500 in-process calls",
    )
    args = parser.parse_args()
    if args.variants == 1 and args.pair is not None:
        parser.error("--pair goes with --variants 2")
    if args.variants == 2 and args.models is not None:
        parser.error("--variants 2 serves --pair, not --models")
    if not 0.0 <= args.challenger_share <= 1.0:
        parser.error("--challenger-share is between 0 and 1")
    if args.package is not None and (args.variants == 2 or args.models is not None):
        parser.error("--package serves that model alone: no --models, no --variants 2")
    if args.probes is not None and args.package is None:
        parser.error("--probes goes with --package")
    sizes = QUICK if args.quick else FULL
    for key, value in sizes.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    args.models = args.models or ["gru4rec", "markov"]
    args.pair = tuple(args.pair or DEFAULT_PAIR)
    if not shutil.which("wrk"):
        sys.exit("bench_serving needs wrk: apt-get install wrk")
    # SIGTERM (a killed `make bench`) unwinds through the `with` blocks: servers are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    shop = shop_config(args.items, args.sessions_per_day)
    package_items = None
    if args.package is not None:
        package_items = load_model(args.package).recommender.item_ids
        args.items = len(package_items)
    result: dict = {
        "config": {
            "items": args.items,
            "prefix": PREFIX,
            "k": K,
            "rate": args.rate,
            "seconds": args.seconds,
            "wrk": f"-t1 -c{WRK_CONNECTIONS} -d{args.wrk_seconds}s",
            "pool_connections": POOL_CONNECTIONS,
            "cpus": os.cpu_count(),
            "background_load_processes": args.background_load,
        },
        "load_average_start": load_average(),
    }
    if args.quick:
        result["config"].update(quick=True, sessions_per_day=args.sessions_per_day)
    if args.variants == 2:
        result["config"].update(
            variants=2,
            champion=args.pair[0],
            challenger=args.pair[1],
            challenger_share=args.challenger_share,
        )
    rng = np.random.default_rng(0)
    if args.package is not None:
        result["config"].update(package=str(args.package), probes=str(args.probes))
        train, prefixes = [], package_probes(package_items, args.probes, rng)
    else:
        train, prefixes = shop_sessions(shop, rng)
    if args.variants == 2:  # a new session per request: as many bodies as the run sends
        bodies = session_bodies(prefixes, max(int(args.rate * args.seconds), len(prefixes)))
    else:
        bodies = [request_body(prefix) for prefix in prefixes]
    # Keep the simulated sessions out of every later collection: a full one pauses this process
    # (the in-process timings and the load generator) for tens of milliseconds.
    gc.collect()
    gc.freeze()
    result["config"]["train_sessions"] = len(train)
    result["config"]["probe_bodies"] = len(bodies)
    if args.package is not None:
        print(f"{args.package}: {args.items:,} items, {len(prefixes)} probe prefixes", flush=True)
    else:
        print(
            f"{shop.n_items:,}-item shop: {len(train):,} training sessions, {len(prefixes)} probe "
            f"prefixes of {PREFIX}; simulated in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    labels: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-serving-") as scratch,
        background_load(args.background_load),
    ):
        scratch = Path(scratch)
        script = wrk_script(bodies, scratch)
        port = free_port()
        with bare_server(port, scratch / "bare.log") as server:
            result["bare"] = load_phase(server, "/invocations", bodies, args, script)
        print(f"bare app done: {json.dumps(result['bare']['fixed_rate'])}", flush=True)
        if args.variants == 2:
            label = "+".join(args.pair)
            folders, fit_seconds = [], {}
            for name in args.pair:
                folder, fit_seconds[name] = fit_and_package(name, train, shop, scratch)
                folders.append(folder)
            result[label] = serve_pair_and_measure(
                label, tuple(folders), bodies, args, script, scratch / f"{label}.log"
            )
            result[label]["fit_seconds"] = fit_seconds
            labels.append(label)
        for options in server_options(args) if args.package is not None else ():
            label = "package" + options_label(options)
            result[label] = serve_and_measure(
                label, args.package, None, bodies, args, script, scratch / f"{label}.log", options
            )
            labels.append(label)
        for name in args.models if args.variants == 1 and args.package is None else ():
            folder, fit_seconds = fit_and_package(name, train, shop, scratch)
            variants = {name: None}
            if args.one_thread_variant and name in TORCH_MODELS:
                variants[f"{name}_1thread"] = 1
            for variant, threads in variants.items():
                for batch in args.max_batch_instances or [None]:
                    label = variant + ("" if batch is None else f"_batch{batch}")
                    result[label] = serve_and_measure(
                        label,
                        folder,
                        threads,
                        bodies,
                        args,
                        script,
                        scratch / f"{label}.log",
                        batch,
                    )
                    result[label]["fit_seconds"] = fit_seconds
                    labels.append(label)
    result["load_average_end"] = load_average()
    result["run_seconds"] = round(time.perf_counter() - started, 1)
    print_table(result, labels, args.rate)
    if args.variants == 2:
        print_variants(result[labels[0]], args.pair)
    # The default catalogue keeps the historical names; another size gets its own files.
    name = "serving" if args.variants == 1 else "serving_two_variants"
    name = name if args.items == DEFAULT_ITEMS else f"{name}_{args.items}_items"
    name = name if args.package is None else f"serving_package_{args.package.name}"
    name += "_quick" if args.quick else ""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}_full.json").write_text(json.dumps(result, indent=2) + "\n")
    summary = {
        "load_average_start_end": [result["load_average_start"], result["load_average_end"]],
        "run_seconds": result["run_seconds"],
        "bare_http_p50_p99_ms": [result["bare"]["fixed_rate"][key] for key in ("p50_ms", "p99_ms")],
        "bare_max_throughput_per_s": result["bare"]["wrk"]["requests_per_s"],
    }
    for label in labels:
        summary[f"{label}_in_process_p50_p99_ms"] = [
            result[label]["in_process"][key] for key in ("p50_ms", "p99_ms")
        ]
        for key, value in result[label]["goals"].items():
            summary[f"{label}_{key}"] = value
        for variant, goals in result[label].get("goals_by_variant", {}).items():
            for key, value in goals.items():
                summary[f"{variant}_{key}"] = value
        for key, value in result[label].get("split", {}).items():
            summary[f"split_{key}"] = value
    title = (
        f"serving ({args.items:,} items): /invocations vs the in-process call, one uvicorn worker"
    )
    if args.variants == 2:
        title = (
            f"serving two variants ({args.items:,} items): champion {args.pair[0]}, challenger "
            f"{args.pair[1]} ({args.challenger_share:g} of sessions), one uvicorn worker"
        )
    return save_and_print(name, title, summary)


if __name__ == "__main__":
    main()
