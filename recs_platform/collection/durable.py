"""The collector's landing writer: an event is acknowledged only once it is on disk.

Requests hand their lines to `DurableLandingWriter.append` and wait. One writer task takes
everything pending, writes it to the open file of each arrival day, fsyncs each touched file once
and then wakes all those requests together (group commit): one fsync per group, not per event.
Files are written under a hidden temporary name and become visible by an atomic rename when they
reach `rotate_bytes` or `rotate_seconds`, or when the collector stops.

Crash recovery: each writer holds an exclusive lock on ``<root>/.collector-locks/<id>.lock``. On
start, temporary files of writers whose lock is free (their process died) are recovered: complete
lines are kept and published under the final name, a torn last line is recorded as rejected.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import os
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson

from recs_platform.events.landing import EVENTS_PREFIX, arrival_date, fsync_directory

REJECTED_PREFIX = "rejected"
LOCKS_FOLDER = ".collector-locks"
_TEMP_NAME = re.compile(r"^\.(?P<final>collector-(?P<writer>[0-9a-f]{12})-.+\.jsonl)\.tmp$")


def _folder(root: Path, kind: str, day: dt.date) -> Path:
    return root / kind / f"date={day.isoformat()}"


def rejection_line(received_ts: int, source: str, reason: str, raw: object) -> bytes:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    record = {"received_ts": received_ts, "source": source, "reason": reason, "raw": raw}
    return orjson.dumps(record, default=str) + b"\n"


@dataclass
class _OpenFile:
    temp_path: Path
    final_path: Path
    stream: IO[bytes]
    opened_at: float
    size: int = 0


@dataclass
class _Pending:
    lines: list[tuple[str, dt.date, bytes]]
    done: asyncio.Future = field(repr=False)


@dataclass
class RecoveryReport:
    files_published: list[str] = field(default_factory=list)
    lines_kept: int = 0
    torn_lines: int = 0


class DurableLandingWriter:
    def __init__(
        self,
        root: Path,
        *,
        rotate_bytes: int = 64 * 1024 * 1024,
        rotate_seconds: float = 60.0,
    ):
        self.root = Path(root)
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.writer_id = uuid.uuid4().hex[:12]
        self._sequence = 0
        self._open: dict[tuple[str, dt.date], _OpenFile] = {}
        self._pending: list[_Pending] = []
        self._rotations: list[tuple[str, dt.date]] = []
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._lock_file: IO[bytes] | None = None
        self.recovery = RecoveryReport()
        self.fsyncs = 0

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        locks = self.root / LOCKS_FOLDER
        locks.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(locks / f"{self.writer_id}.lock", "wb")  # noqa: SIM115
        fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.recovery = await asyncio.to_thread(recover_abandoned_files, self.root)
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="durable-landing-writer")

    async def stop(self) -> None:
        """Write what is pending, publish every open file, release the lock."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._pending:
            await self._commit(self._take_pending())
        await asyncio.to_thread(self._publish, list(self._open))
        if self._lock_file is not None:
            self._lock_file.close()
            (self.root / LOCKS_FOLDER / f"{self.writer_id}.lock").unlink(missing_ok=True)
            self._lock_file = None

    # -- the request side ------------------------------------------------------------------

    async def append(
        self, events: Iterable[dict], rejections: Iterable[bytes] = (), received_ts: int = 0
    ) -> None:
        """Return once every event (and rejection record) is written and fsynced."""
        lines = [
            (EVENTS_PREFIX, arrival_date(event["server_ts"]), orjson.dumps(event) + b"\n")
            for event in events
        ]
        if rejections:
            day = arrival_date(received_ts or int(time.time() * 1000))
            lines += [(REJECTED_PREFIX, day, line) for line in rejections]
        if not lines:
            return
        if self._task is None or self._task.done():
            raise RuntimeError("the landing writer is not running")
        done = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(lines, done))
        self._wakeup.set()
        await done

    # -- the writer task -------------------------------------------------------------------

    def _take_pending(self) -> list[_Pending]:
        pending, self._pending = self._pending, []
        return pending

    async def _run(self) -> None:
        rotation = asyncio.create_task(self._rotate_aged_files())
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                if self._pending:
                    await self._commit(self._take_pending())
                if self._rotations:
                    aged = [key for key in dict.fromkeys(self._rotations) if key in self._open]
                    self._rotations.clear()
                    await asyncio.to_thread(self._publish, aged)
        finally:
            rotation.cancel()

    async def _rotate_aged_files(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.rotate_seconds / 2))
            now = time.monotonic()
            aged = [
                key
                for key, handle in self._open.items()
                if now - handle.opened_at >= self.rotate_seconds
            ]
            if aged:
                # Through the pending queue, so a rotation never races a group being written.
                self._rotations.extend(aged)
                self._wakeup.set()

    async def _commit(self, group: list[_Pending]) -> None:
        try:
            await asyncio.to_thread(self._write_and_sync, group)
        except BaseException as error:
            for pending in group:
                if not pending.done.done():
                    pending.done.set_exception(error)
            if isinstance(error, Exception):
                return
            raise
        for pending in group:
            if not pending.done.done():
                pending.done.set_result(None)

    def _write_and_sync(self, group: list[_Pending]) -> None:
        touched: dict[tuple[str, dt.date], _OpenFile] = {}
        for pending in group:
            for kind, day, line in pending.lines:
                handle = self._file_for(kind, day)
                handle.stream.write(line)
                handle.size += len(line)
                touched[(kind, day)] = handle
        for handle in touched.values():
            handle.stream.flush()
            os.fsync(handle.stream.fileno())
            self.fsyncs += 1
        full = [key for key, handle in touched.items() if handle.size >= self.rotate_bytes]
        self._publish(full)

    def _file_for(self, kind: str, day: dt.date) -> _OpenFile:
        handle = self._open.get((kind, day))
        if handle is None:
            folder = _folder(self.root, kind, day)
            folder.mkdir(parents=True, exist_ok=True)
            self._sequence += 1
            final_name = f"collector-{self.writer_id}-{day.isoformat()}-{self._sequence:06d}.jsonl"
            temp_path = folder / f".{final_name}.tmp"
            handle = _OpenFile(
                temp_path,
                folder / final_name,
                open(temp_path, "xb"),  # noqa: SIM115
                time.monotonic(),
            )
            fsync_directory(folder)
            self._open[(kind, day)] = handle
        return handle

    def _publish(self, keys: list[tuple[str, dt.date]]) -> None:
        for key in keys:
            handle = self._open.pop(key)
            handle.stream.flush()
            os.fsync(handle.stream.fileno())
            handle.stream.close()
            if handle.size == 0:
                handle.temp_path.unlink()
                continue
            os.rename(handle.temp_path, handle.final_path)
            fsync_directory(handle.final_path.parent)


def _owner_is_alive(root: Path, writer_id: str) -> bool:
    lock_path = root / LOCKS_FOLDER / f"{writer_id}.lock"
    if not lock_path.exists():
        return False
    with open(lock_path, "ab") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock_file, fcntl.LOCK_UN)
    return False


def recover_abandoned_files(root: Path) -> RecoveryReport:
    """Publish the complete lines of temporary files left by dead writers; record torn tails."""
    report = RecoveryReport()
    dead_writers: set[str] = set()
    for kind in (EVENTS_PREFIX, REJECTED_PREFIX):
        for temp_path in sorted((root / kind).glob("date=*/.collector-*.jsonl.tmp")):
            match = _TEMP_NAME.match(temp_path.name)
            if not match or _owner_is_alive(root, match["writer"]):
                continue
            dead_writers.add(match["writer"])
            content = temp_path.read_bytes()
            complete_end = content.rfind(b"\n") + 1
            torn_tail = content[complete_end:]
            if torn_tail:
                report.torn_lines += 1
                day = dt.date.fromisoformat(temp_path.parent.name[len("date=") :])
                _write_recovery_rejection(root, day, temp_path.name, torn_tail)
            if complete_end:
                with open(temp_path, "r+b") as stream:
                    stream.truncate(complete_end)
                    stream.flush()
                    os.fsync(stream.fileno())
                final_path = temp_path.with_name(match["final"])
                os.rename(temp_path, final_path)
                fsync_directory(final_path.parent)
                report.files_published.append(final_path.relative_to(root).as_posix())
                report.lines_kept += content[:complete_end].count(b"\n")
            else:
                temp_path.unlink()
    for writer in dead_writers:
        (root / LOCKS_FOLDER / f"{writer}.lock").unlink(missing_ok=True)
    return report


def _write_recovery_rejection(root: Path, day: dt.date, temp_name: str, torn_tail: bytes) -> None:
    folder = _folder(root, REJECTED_PREFIX, day)
    folder.mkdir(parents=True, exist_ok=True)
    line = rejection_line(
        int(time.time() * 1000),
        "recovery",
        f"torn last line of {temp_name} after a crash",
        torn_tail,
    )
    final_path = folder / f"recovery-{uuid.uuid4().hex[:12]}.jsonl"
    temp_path = folder / f".{final_path.name}.tmp-recovery"
    with open(temp_path, "xb") as stream:
        stream.write(line)
        stream.flush()
        os.fsync(stream.fileno())
    os.rename(temp_path, final_path)
    fsync_directory(folder)
