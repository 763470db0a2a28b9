"""The collector's landing writer: an event is acknowledged only once it is on disk.

All landing files are written by ONE writer process (`landing_process.py`), which the collector
starts with its event loop and talks to over two pipes; `DurableLandingWriter` is the event
loop's end of them. Requests add their part to the current group (a pixel request: its raw query
string, which the writer process parses with the same rules, `pixel_lines`; any other request:
its prepared lines) and all wait on the group's one future. The loop sends each group as one
message once it has run what was ready; the writer process writes every group that has come
(while it was busy with the last fsync) to the open file of each arrival day, fsyncs each touched
file once and only then acks the last group's number (group commit: one fsync for all of them,
not one per event). No thread runs in the
collector's process, so the event loop never hands the GIL over to a writer.

Files are written under a hidden temporary name and become visible by an atomic rename when they
reach `rotate_bytes` or `rotate_seconds`, or when the collector stops.

Crash recovery: each writer process holds an exclusive lock on
``<root>/.collector-locks/<id>.lock`` (which records its pid and its collector's). On start,
temporary files of writers whose lock is free (their process died) are recovered: complete
lines are kept and published under the final name, a torn last line is recorded as rejected. A
writer whose collector is gone dies with it (Linux's parent-death signal, and end of input on its
pipe); a new writer waits for such a writer's lock before it recovers its files.

If the writer process dies, every waiting and later request fails with `LandingUnavailable`
(the collector answers 503): nothing is acknowledged that was not written.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import fcntl
import logging
import os
import pickle
import re
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import orjson

from recs_platform.collection.parsing import CollectorLimits
from recs_platform.events.landing import EVENTS_PREFIX, arrival_date, fsync_directory
from recs_platform.pids import pid_is_running

log = logging.getLogger(__name__)

REJECTED_PREFIX = "rejected"
LOCKS_FOLDER = ".collector-locks"
_TEMP_NAME = re.compile(r"^\.(?P<final>collector-(?P<writer>[0-9a-f]{12})-.+\.jsonl)\.tmp$")
ORPHAN_WAIT_S = 10.0
"""How long a new writer waits for the lock of a writer whose collector is gone."""

FRAME_HEADER = struct.Struct("<I")
"""Every message on the two pipes: its length, then the message (pickle to the writer, JSON
back)."""


def _folder(root: Path, kind: str, day: dt.date) -> Path:
    return root / kind / f"date={day.isoformat()}"


def rejection_line(received_ts: int, source: str, reason: str, raw: object) -> bytes:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    record = {"received_ts": received_ts, "source": source, "reason": reason, "raw": raw}
    return orjson.dumps(record, default=str) + b"\n"


class LandingUnavailable(RuntimeError):
    """The writer process is not running (or failed to write a group): nothing is acknowledged."""


@dataclass
class RecoveryReport:
    files_published: list[str] = field(default_factory=list)
    lines_kept: int = 0
    torn_lines: int = 0


FileKey = tuple[str, dt.date]
"""A landing file: its kind (events or rejected) and its arrival day."""


class _GroupWritten(asyncio.Future):
    """One group's acknowledgement, awaited by all of its requests. A request that is cancelled
    must not cancel it for the others: it refuses to be cancelled (the cancelled request gets
    its CancelledError once the group is written, and its lines are written all the same)."""

    def cancel(self, msg=None) -> bool:
        return False


# -- the event loop's end: DurableLandingWriter ----------------------------------------------


class DurableLandingWriter:
    def __init__(
        self,
        root: Path,
        *,
        rotate_bytes: int = 64 * 1024 * 1024,
        rotate_seconds: float = 60.0,
        limits: CollectorLimits | None = None,
    ):
        self.root = Path(root)
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.limits = limits or CollectorLimits()
        self.writer_id = uuid.uuid4().hex[:12]
        self.recovery = RecoveryReport()
        self.fsyncs = 0
        """How many fsyncs the writer process has made (as of its last acknowledgement)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._process: subprocess.Popen | None = None
        self._failure: LandingUnavailable | None = LandingUnavailable(
            "the landing writer is not running"
        )
        self._pending_pixels: list[tuple[str, bytes, int]] = []
        self._pending_lines: list[tuple[str, dt.date, bytes]] = []
        self._pending_done: _GroupWritten | None = None
        self._hand_over_scheduled = False
        self._in_flight: collections.deque[tuple[int, _GroupWritten]] = collections.deque()
        """The groups sent and not yet acknowledged, oldest first."""
        self._sequence = 0
        self._outgoing = bytearray()
        self._incoming = bytearray()
        self._ready: asyncio.Future | None = None
        self._stopping = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the writer process (it takes its lock and recovers what dead writers left) and
        wait until it is ready. Call it from the thread that runs the event loop: on Linux the
        writer process dies with the thread that started it."""
        self._loop = asyncio.get_running_loop()
        self.root.mkdir(parents=True, exist_ok=True)
        settings = {
            "root": str(self.root),
            "writer_id": self.writer_id,
            "rotate_bytes": self.rotate_bytes,
            "rotate_seconds": self.rotate_seconds,
            "limits": asdict(self.limits),
            "collector_pid": os.getpid(),
        }
        self._process = subprocess.Popen(
            [sys.executable, "-m", "recs_platform.collection.landing_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "RECS_LANDING_WRITER": orjson.dumps(settings).decode()},
        )
        to_writer, from_writer = self._process.stdin.fileno(), self._process.stdout.fileno()
        os.set_blocking(to_writer, False)
        os.set_blocking(from_writer, False)
        _try_to_widen_pipe(to_writer)
        self._ready = self._loop.create_future()
        self._loop.add_reader(from_writer, self._read_from_writer)
        self._failure = None
        try:
            self.recovery = await self._ready
        except BaseException:
            await self._end_process()
            raise

    async def stop(self) -> None:
        """Write what is pending, then end the writer process (it publishes every open file and
        releases its lock)."""
        if self._process is None:
            return
        self._stopping = True
        if self._failure is None and (self._in_flight or self._pending_done):
            # Groups are written in order: once the last one is, all are.
            last = self._pending_done or self._in_flight[-1][1]
            with contextlib.suppress(LandingUnavailable):
                await last
        await self._end_process()

    async def _end_process(self) -> None:
        process, self._process = self._process, None
        self._loop.remove_reader(process.stdout.fileno())
        self._loop.remove_writer(process.stdin.fileno())
        process.stdin.close()  # end of input: the writer process publishes its files and exits
        returncode = await asyncio.to_thread(process.wait)
        process.stdout.close()
        self._fail(LandingUnavailable("the landing writer is stopped"), log_it=False)
        if returncode != 0:
            log.error("the landing writer process exited with status %s", returncode)

    # -- the request side ------------------------------------------------------------------

    def land_pixel(self, path: str, query_string: bytes, server_ts: int) -> asyncio.Future:
        """A pixel request, parsed and landed by the writer process (the event, or the record of
        what it refused); the returned future is done once that is written and fsynced."""
        if self._failure is not None:
            raise self._failure
        self._pending_pixels.append((path, query_string, server_ts))
        done = self._pending_done
        if done is None:
            done = self._open_group()
        return done

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
        if self._failure is not None:
            raise self._failure
        self._pending_lines += lines
        await (self._pending_done or self._open_group())

    def _open_group(self) -> _GroupWritten:
        done = self._pending_done = _GroupWritten(loop=self._loop)
        if not self._hand_over_scheduled:
            # Once the loop has run what is ready now: the requests that came together form one
            # group.
            self._hand_over_scheduled = True
            self._loop.call_soon(self._hand_over)
        return done

    def _hand_over(self) -> None:
        """Send everything pending to the writer process as one group. It need not wait for the
        groups in flight: the writer process writes whatever groups have come while it was busy
        with one fsync."""
        self._hand_over_scheduled = False
        if self._pending_done is None or self._failure:
            return
        by_file: dict[FileKey, list[bytes]] = {}
        for kind, day, line in self._pending_lines:
            same_file = by_file.get((kind, day))
            if same_file is None:
                by_file[(kind, day)] = [line]
            else:
                same_file.append(line)
        writes = [(key, b"".join(lines)) for key, lines in by_file.items()]
        self._sequence += 1
        message = pickle.dumps(
            (self._sequence, self._pending_pixels, writes), protocol=pickle.HIGHEST_PROTOCOL
        )
        self._in_flight.append((self._sequence, self._pending_done))
        self._pending_pixels, self._pending_lines, self._pending_done = [], [], None
        self._send(FRAME_HEADER.pack(len(message)) + message)

    def _send(self, frame: bytes) -> None:
        if self._outgoing:
            self._outgoing += frame
            return
        to_writer = self._process.stdin.fileno()
        try:
            sent = os.write(to_writer, frame)
        except BlockingIOError:
            sent = 0
        except OSError as error:  # a broken pipe: the writer process is gone
            self._writer_gone(f"writing to it failed: {error}")
            return
        if sent < len(frame):
            self._outgoing += frame[sent:]
            self._loop.add_writer(to_writer, self._send_rest)

    def _send_rest(self) -> None:
        to_writer = self._process.stdin.fileno()
        try:
            sent = os.write(to_writer, self._outgoing)
        except BlockingIOError:
            return
        except OSError as error:
            self._writer_gone(f"writing to it failed: {error}")
            return
        del self._outgoing[:sent]
        if not self._outgoing:
            self._loop.remove_writer(to_writer)

    # -- what the writer process answers ---------------------------------------------------

    def _read_from_writer(self) -> None:
        try:
            data = os.read(self._process.stdout.fileno(), 65536)
        except BlockingIOError:
            return
        except OSError as error:
            self._writer_gone(f"reading from it failed: {error}")
            return
        if not data:
            self._writer_gone("it closed its output")
            return
        self._incoming += data
        while len(self._incoming) >= FRAME_HEADER.size:
            (length,) = FRAME_HEADER.unpack_from(self._incoming)
            end = FRAME_HEADER.size + length
            if len(self._incoming) < end:
                return
            message = orjson.loads(self._incoming[FRAME_HEADER.size : end])
            del self._incoming[:end]
            self._answer(message)

    def _answer(self, message: dict) -> None:
        if "ready" in message:
            self._ready.set_result(RecoveryReport(**message["ready"]))
            return
        if "fatal" in message:
            self._writer_gone(message["fatal"])
            return
        # An acknowledgement covers every group up to the one it names.
        last = message["group"]
        if not self._in_flight or self._in_flight[0][0] > last or last > self._sequence:
            self._writer_gone(f"it acknowledged group {last}, which is not in flight")
            return
        self.fsyncs = message["fsyncs"]
        failure = None
        if "error" in message:
            log.error("the landing writer could not write a group: %s", message["error"])
            failure = LandingUnavailable(f"landing failed: {message['error']}")
        while self._in_flight and self._in_flight[0][0] <= last:
            _, done = self._in_flight.popleft()
            if failure is None:
                done.set_result(None)
            else:
                done.set_exception(failure)

    def _writer_gone(self, why: str) -> None:
        if self._failure is not None:
            return
        self._loop.remove_reader(self._process.stdout.fileno())
        self._loop.remove_writer(self._process.stdin.fileno())
        returncode = self._process.poll()
        status = "" if returncode is None else f"; exit status {returncode}"
        self._fail(LandingUnavailable(f"the landing writer process failed ({why}{status})"))

    def _fail(self, failure: LandingUnavailable, log_it: bool = True) -> None:
        """Fail every waiting request and refuse every later one."""
        if self._failure is None and log_it:
            log.error("%s: the collector refuses events until it is restarted", failure)
        self._failure = self._failure or failure
        waiting = [self._ready, *(done for _, done in self._in_flight), self._pending_done]
        for done in waiting:
            if done is not None and not done.done():
                done.set_exception(self._failure)
                done.exception()  # retrieved: a group nobody awaits any more is not an error
        self._in_flight.clear()
        self._pending_done = None
        self._pending_pixels, self._pending_lines = [], []


def _try_to_widen_pipe(fd: int) -> None:
    """A group of batched POSTs can be a few MB: a wider pipe takes it in fewer writes."""
    set_pipe_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_pipe_size is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, set_pipe_size, 1 << 20)


# -- the writer process's side: the open files ------------------------------------------------


@dataclass
class _OpenFile:
    temp_path: Path
    final_path: Path
    stream: IO[bytes]
    opened_at: float
    size: int = 0


class LandingFiles:
    """The landing files one writer process owns: it holds their lock, writes and fsyncs them,
    and publishes them by rotation (size, age) or on `close`."""

    def __init__(
        self, root: Path, writer_id: str, *, rotate_bytes: int, rotate_seconds: float
    ) -> None:
        self.root = Path(root)
        self.writer_id = writer_id
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.fsyncs = 0
        self._sequence = 0
        self._open: dict[FileKey, _OpenFile] = {}
        self._lock_file: IO[bytes] | None = None

    def take_lock(self, collector_pid: int) -> None:
        locks = self.root / LOCKS_FOLDER
        locks.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(locks / f"{self.writer_id}.lock", "wb")  # noqa: SIM115
        fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._lock_file.write(f"{os.getpid()} {collector_pid}\n".encode())
        self._lock_file.flush()

    def write_and_sync(self, writes: list[tuple[FileKey, bytes]]) -> None:
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
        self.publish([key for key, handle in touched if handle.size >= self.rotate_bytes])

    def seconds_to_next_rotation(self) -> float | None:
        if not self._open:
            return None
        oldest = min(handle.opened_at for handle in self._open.values())
        return max(0.0, oldest + self.rotate_seconds - time.monotonic())

    def publish_aged(self) -> None:
        now = time.monotonic()
        self.publish(
            [
                key
                for key, handle in self._open.items()
                if now - handle.opened_at >= self.rotate_seconds
            ]
        )

    def close(self) -> None:
        """Publish every open file and release the lock."""
        self.publish(list(self._open))
        if self._lock_file is not None:
            (self.root / LOCKS_FOLDER / f"{self.writer_id}.lock").unlink(missing_ok=True)
            self._lock_file.close()
            self._lock_file = None

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

    def publish(self, keys: list[FileKey]) -> None:
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


# -- recovery ---------------------------------------------------------------------------------


def _owner_is_alive(root: Path, writer_id: str) -> bool:
    """Whether the writer of these files still runs (holds its lock). A writer whose collector
    is gone is about to die with it: wait for it (up to `ORPHAN_WAIT_S`)."""
    lock_path = root / LOCKS_FOLDER / f"{writer_id}.lock"
    if not lock_path.exists():
        return False
    with open(lock_path, "ab") as lock_file:
        deadline = time.monotonic() + ORPHAN_WAIT_S
        while True:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() > deadline or not _is_orphaned(lock_path):
                    return True
                _pause_before_the_next_try()
                continue
            fcntl.flock(lock_file, fcntl.LOCK_UN)
            return False


def _pause_before_the_next_try() -> None:
    time.sleep(0.02)


def _is_orphaned(lock_path: Path) -> bool:
    """The lock records "<writer pid> <collector pid>": is that collector gone?"""
    try:
        _, collector_pid = lock_path.read_text().split()
    except (OSError, ValueError):
        return False
    return not pid_is_running(int(collector_pid))


def recover_abandoned_files(root: Path) -> RecoveryReport:
    """Publish the complete lines of temporary files left by dead writers; record torn tails."""
    report = RecoveryReport()
    dead_writers: set[str] = set()
    for kind in (EVENTS_PREFIX, REJECTED_PREFIX):
        for temp_path in sorted((root / kind).glob("date=*/.collector-*.jsonl.tmp")):
            match = _TEMP_NAME.match(temp_path.name)
            if not match or (
                match["writer"] not in dead_writers and _owner_is_alive(root, match["writer"])
            ):
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
