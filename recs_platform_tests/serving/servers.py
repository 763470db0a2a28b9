"""A real inference server (`recs-platform serve`, uvicorn, its own process) on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from recs_platform_tests.collection.servers import BIN, free_port
from recs_platform_tests.processes import stop, wait_until_answers


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
        wait_until_answers(f"{url}/ping", process, timeout_s)
        yield url
    finally:
        stop(process)
