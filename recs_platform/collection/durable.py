"""The collector's landing writer: an event is acknowledged only once it is on disk.

Requests hand their lines to `DurableLandingWriter.append` and wait. The event loop hands
everything pending, joined per file, to one writer thread, which writes it to the open file of
each arrival day, fsyncs each touched file once and then wakes all those requests together (group
commit): one fsync per group, not per event. What arrives meanwhile is the next group.
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
import queue
import re
import threading
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


_Line = tuple[str, dt.date, bytes]
_Pending = tuple[list[_Line], asyncio.Future]
"""One request's lines and the future that tells it they are on disk."""
_FileKey = tuple[str, dt.date]


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
        self._open: dict[_FileKey, _OpenFile] = {}
        """Only the writer thread touches the open files (and `stop`, once it has ended)."""
        self._pending: list[_Pending] = []
        self._commit_scheduled = False
        self._in_flight = False
        self._check_ages = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._jobs: queue.SimpleQueue | None = None
        self._thread: threading.Thread | None = None
        self._ager: asyncio.Task | None = None
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
        self._loop = asyncio.get_running_loop()
        self._jobs = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._write_groups, name="durable-landing-writer", daemon=True
        )
        self._thread.start()
        self._ager = asyncio.create_task(self._rotate_aged_files())

    async def stop(self) -> None:
        """Write what is pending, publish every open file, release the lock."""
        if self._ager is not None:
            self._ager.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ager
            self._ager = None
        if self._thread is not None:
            if self._pending or self._in_flight:
                # Groups are written in order: once this empty entry's group is, all are.
                drained = self._loop.create_future()
                self._pending.append(([], drained))
                self._schedule_commit()
                await drained
            self._jobs.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None
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
        if self._thread is None:
            raise RuntimeError("the landing writer is not running")
        done = self._loop.create_future()
        self._pending.append((lines, done))
        if not self._in_flight:
            self._schedule_commit()
        await done

    # -- the event loop's side of a group commit -------------------------------------------

    def _schedule_commit(self) -> None:
        """Commit what is pending once the loop has run what is ready now (the requests that
        arrived together form one group)."""
        if not self._commit_scheduled:
            self._commit_scheduled = True
            self._loop.call_soon(self._hand_over)

    def _hand_over(self) -> None:
        """Give everything pending to the writer thread as one group."""
        self._commit_scheduled = False
        if self._in_flight or not (self._pending or self._check_ages):
            return
        group, self._pending = self._pending, []
        check_ages, self._check_ages = self._check_ages, False
        # The lines are joined per file here, on the event loop, so that the thread holds the
        # GIL for a few statements per group: a thread that runs Python per line contends with
        # the loop for the GIL (a context switch per handoff), which slowed every request down.
        by_file: dict[_FileKey, list[bytes]] = {}
        for lines, _ in group:
            for kind, day, line in lines:
                same_file = by_file.get((kind, day))
                if same_file is None:
                    by_file[(kind, day)] = [line]
                else:
                    same_file.append(line)
        writes = [(key, b"".join(lines)) for key, lines in by_file.items()]
        self._in_flight = True
        self._jobs.put((writes, check_ages, group))

    def _group_written(self, group: list[_Pending], error: BaseException | None) -> None:
        """Called on the loop by the writer thread: wake the group's requests (or fail them)."""
        self._in_flight = False
        for _, done in group:
            if done.done():  # the request was cancelled; its lines are written all the same
                continue
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)
        if self._pending or self._check_ages:
            self._schedule_commit()

    async def _rotate_aged_files(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.rotate_seconds / 2))
            # Through the writer thread, so a rotation never races a group being written.
            self._check_ages = True
            if not self._in_flight:
                self._schedule_commit()

    # -- the writer thread -----------------------------------------------------------------

    def _write_groups(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            writes, check_ages, group = job
            error = None
            try:
                self._write_and_sync(writes)
                if check_ages:
                    self._publish(self._aged_files())
            except BaseException as failure:  # given to the requests that wait for the group
                error = failure
            try:
                self._loop.call_soon_threadsafe(self._group_written, group, error)
            except RuntimeError:  # the event loop is closed: nobody waits any more
                return

    def _aged_files(self) -> list[_FileKey]:
        now = time.monotonic()
        return [
            key
            for key, handle in self._open.items()
            if now - handle.opened_at >= self.rotate_seconds
        ]

    def _write_and_sync(self, writes: list[tuple[_FileKey, bytes]]) -> None:
        """Write each file's bytes of one group (in the order they came), then fsync each."""
        touched = []
        for (kind, day), data in writes:
            handle = self._file_for(kind, day)
            handle.stream.write(data)
            handle.size += len(data)
            touched.append(((kind, day), handle))
        for _, handle in touched:
            handle.stream.flush()
            os.fsync(handle.stream.fileno())
            self.fsyncs += 1
        full = [key for key, handle in touched if handle.size >= self.rotate_bytes]
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
