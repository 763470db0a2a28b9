"""Shared by the benchmark scripts that start real servers on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running(
    command: list[str], health_url: str, environ: dict[str, str], timeout_s: float = 120
) -> Iterator[subprocess.Popen]:
    """`command` in its own process until the block ends (SIGTERM, then wait), once
    `health_url` answers 200; raises if it exits or does not answer within `timeout_s`."""
    process = subprocess.Popen(
        command,
        env={**os.environ, "NO_PROXY": "127.0.0.1", **environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(health_url, timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[1]} did not come up at {health_url}")
            time.sleep(0.2)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
