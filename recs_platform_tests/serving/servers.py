"""A real inference server (`recs-platform serve`, uvicorn, its own process) on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from recs_platform_tests.collection.servers import BIN, free_port


@contextlib.contextmanager
def running_inference_server(model_source: Path | str, timeout_s: float = 60) -> Iterator[str]:
    """`recs-platform serve --model <model_source>` until /ping answers 200; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [BIN / "recs-platform", "serve", "--model", str(model_source), "--port", str(port)],
        env={**os.environ, "NO_PROXY": "127.0.0.1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(process.stderr.read().decode()[-3000:])
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/ping", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the inference server did not answer /ping in {timeout_s} s")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
