"""Run the real collector (uvicorn, in its own process) on 127.0.0.1 for a test, and read back
what it landed."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson

from recs_platform_tests.processes import wait_until_answers

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_collector(data_dir: Path, port: int, *extra_args: str, **environ: str):
    """Start `recs-platform collector` and wait until /health answers; returns the process."""
    process = subprocess.Popen(
        [
            BIN / "recs-platform",
            "collector",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *extra_args,
        ],
        env={**os.environ, "RECS_DATA_DIR": str(data_dir), **environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_answers(f"http://127.0.0.1:{port}/health", process, timeout_s=60)
    except RuntimeError:
        process.kill()
        raise
    return process


def stop_collector(process, kill: bool = False) -> None:
    process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    process.wait(timeout=30)


@contextlib.contextmanager
def running_collector(data_dir: Path, *extra_args: str, **environ: str) -> Iterator[str]:
    """A collector writing under `data_dir/landing`; yields its base URL; stops it cleanly
    (publishing every open landing file) on exit."""
    port = free_port()
    process = start_collector(data_dir, port, *extra_args, **environ)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_collector(process)


def landed_events(landing_root: Path) -> list[dict]:
    """Every event line in the landing zone's finalized files (plain or gzipped)."""
    import gzip

    events = []
    for path in sorted(landing_root.glob("events/date=*/[!.]*.jsonl*")):
        content = path.read_bytes()
        if path.name.endswith(".gz"):
            content = gzip.decompress(content)
        events += [orjson.loads(line) for line in content.splitlines() if line]
    return events


def rejected_records(landing_root: Path) -> list[dict]:
    records = []
    for path in sorted(landing_root.glob("rejected/date=*/[!.]*.jsonl")):
        records += [orjson.loads(line) for line in path.read_bytes().splitlines() if line]
    return records


def events_after_a_crash(landing_root: Path, scratch: Path) -> list[dict]:
    """What the landing zone would hold if the machine crashed now: a copy of it, recovered
    (the copy's locks are not held, so its writers count as dead), read back."""
    from recs_platform.collection.landing_files import recover_abandoned_files

    copy = scratch / "after-a-crash"
    shutil.copytree(landing_root, copy)
    recover_abandoned_files(copy)
    return landed_events(copy)


def plant_journal(root: Path, writer_id: str, groups: list, torn_tail: bytes = b"") -> Path:
    """A journal segment left by a writer that died: the framed groups, then `torn_tail`."""
    import pickle

    from recs_platform.collection.landing_files import JOURNAL_FOLDER, LOCKS_FOLDER, frame

    folder = root / JOURNAL_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    (root / LOCKS_FOLDER).mkdir(exist_ok=True)
    journal = folder / f"{writer_id}-000001.journal"
    journal.write_bytes(b"".join(frame(pickle.dumps(group)) for group in groups) + torn_tail)
    return journal
