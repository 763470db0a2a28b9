"""The collector's landing writer: an event is acknowledged only once it is on disk.

All landing files are written by ONE writer process (`landing_process.py`), which the collector
starts with its event loop and talks to over two pipes; `DurableLandingWriter` is the event
loop's end of them. Requests add their part to the current group (a pixel request: its raw query
string, which the writer process parses with the same rules, `pixel_lines`; any other request:
its prepared lines) and all wait on the group's one future. The loop sends each group as one
message once it has run what was ready; the writer process journals every group that has come
(while it was busy with the last fsync), fsyncs the journal once and only then acks the last
group's number (group commit: one fsync for all of them, not one per event); it writes their
lines to the landing files after that (`landing_files.py`: the journal, the files, their
rotation, and the recovery of a dead writer's journal). No thread runs in the collector's
process, so the event loop never hands the GIL over to a writer.

Each writer process holds an exclusive lock on ``<root>/.collector-locks/<id>.lock`` (which
records its pid and its collector's). A writer whose collector is gone dies with it (Linux's
parent-death signal, and end of input on its pipe); a new writer waits for such a writer's lock
before it recovers its journal.

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
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

import orjson

from recs_platform.collection.landing_files import (
    FRAME_HEADER,
    REJECTED_PREFIX,
    FileKey,
    RecoveryReport,
)
from recs_platform.collection.parsing import CollectorLimits
from recs_platform.events.landing import EVENTS_PREFIX, arrival_date

log = logging.getLogger(__name__)


class LandingUnavailable(RuntimeError):
    """The writer process is not running (or failed to write a group): nothing is acknowledged."""


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
