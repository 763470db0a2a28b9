"""A real inference server on 127.0.0.1: `recs-platform serve` in its own process, or the same
ASGI app under uvicorn in a thread of the test's process."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from recs_platform_tests.collection.servers import BIN, free_port
from recs_platform_tests.processes import stop, wait_until_answers


@contextlib.contextmanager
def running_inference_server(
    model_source: Path | str,
    *arguments: str,
    timeout_s: float = 60,
    started: list[subprocess.Popen] | None = None,
) -> Iterator[str]:
    """`recs-platform serve --model <model_source> [arguments]` until /ping answers 200; yields
    its URL (`arguments`: `--challenger <source> --challenger-share 0.3`, say); the process is
    appended to `started` when given."""
    port = free_port()
    process = subprocess.Popen(
        [BIN / "recs-platform", "serve", "--model", str(model_source), "--port", str(port),
         *arguments],
        env={**os.environ, "NO_PROXY": "127.0.0.1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    if started is not None:
        started.append(process)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(f"{url}/ping", process, timeout_s)
        yield url
    finally:
        stop(process)


@contextlib.contextmanager
def serving_in_a_thread(app, timeout_s: float = 10) -> Iterator[str]:
    """`app` under uvicorn in a thread on 127.0.0.1 until the block ends; yields its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    # Off the main thread uvicorn installs no signal handlers.
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the inference server did not start within {timeout_s:.0f} s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()
