"""Servers the tests start as processes: wait until one answers, stop it."""

from __future__ import annotations

import contextlib
import subprocess
import time

import httpx


def answers(url: str, status: int = 200) -> bool:
    """Whether GET `url` answers `status` now."""
    with contextlib.suppress(httpx.TransportError):
        return httpx.get(url, timeout=2).status_code == status
    return False


def wait_until_answers(
    url: str, process: subprocess.Popen | None = None, timeout_s: float = 60.0
) -> None:
    """Wait until GET `url` answers 200; fail with the process's stderr if it exits first."""
    deadline = time.monotonic() + timeout_s
    while not answers(url):
        if process is not None and process.poll() is not None:
            output = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"exited with {process.returncode} before {url} answered:\n"
                               f"{output[-3000:]}")  # fmt: skip
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s")
        time.sleep(0.1)


def stop(process: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout_s`."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout_s)
