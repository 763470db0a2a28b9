"""The writer process's side of the landing zone: its journal, its landing files, and recovery.

One writer process (`landing_process.py`) writes every landing file of a collector. For each batch
of groups that comes to it (each group: the pixel requests and prepared lines of the requests
that came together), it

1. appends the groups' messages, byte for byte as they came over the pipe, to its current
   journal segment ``<root>/.collector-journal/<writer id>-<segment>.journal`` and fsyncs it;
   only then does it acknowledge them: an acknowledged request survives a crash;
2. parses the pixel requests (`pixel_lines`) and appends the lines of every group to the
   segment's landing files (one hidden temporary file per kind and arrival day), with no fsync
   of their own.

A segment ends when one of its files reaches `rotate_bytes`, when it is `rotate_seconds` old, or
when the writer stops: each of its files is fsynced and published by an atomic rename (into
``events/date=YYYY-MM-DD/`` or ``rejected/...``), and only then is its journal deleted. So a
batch costs one fsync however many files it touches, and the pixel's parsing, its largest cost,
is not between a request and its answer.

Recovery, for a writer whose process died (its lock is free): the complete messages of each of
its journal segments are parsed again, and the segment's files that were not published yet are
written from them, fsynced and published; a torn last message (the writer died while writing it,
so it was never acknowledged) is recorded as rejected. Event ids the dead writer drew for events
that came without one are drawn again: the lines that held the first ones were never published.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import io
import logging
import os
import pickle
import re
import struct
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from recs_platform.collection.parsing import (
    CollectorLimits,
    EventRejected,
    RequestRejected,
    pixel_event,
)
from recs_platform.collection.routes import CollectRequest, parse_request
from recs_platform.events.landing import EVENTS_PREFIX, arrival_date, fsync_directory
from recs_platform.pids import pid_is_running
from recs_platform.web.query import parse_query

log = logging.getLogger(__name__)

REJECTED_PREFIX = "rejected"
LOCKS_FOLDER = ".collector-locks"
JOURNAL_FOLDER = ".collector-journal"
_JOURNAL_NAME = re.compile(r"^(?P<writer>[0-9a-f]{12})-(?P<segment>\d{6,})\.journal$")
_TEMP_NAME = re.compile(r"^\.collector-(?P<writer>[0-9a-f]{12})-.+\.jsonl\.tmp$")
ORPHAN_WAIT_S = 10.0
"""How long a new writer waits for the lock of a writer whose collector is gone."""

FRAME_HEADER = struct.Struct("<I")
"""Every message on the two pipes and in the journal: its length, then the message (a pickled
group to the writer, JSON back)."""

FileKey = tuple[str, dt.date]
"""A landing file: its kind (events or rejected) and its arrival day."""

Group = tuple[int, list[tuple[str, bytes, int]], list[tuple[FileKey, bytes]]]
"""What the event loop sends: its number, its pixel requests (path, query string, server_ts)
and its prepared lines per file."""


@dataclass
class RecoveryReport:
    files_published: list[str] = field(default_factory=list)
    lines_kept: int = 0
    torn_lines: int = 0
    """Torn last messages of journals (never acknowledged), recorded as rejected."""


def rejection_line(received_ts: int, source: str, reason: str, raw: object) -> bytes:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    record = {"received_ts": received_ts, "source": source, "reason": reason, "raw": raw}
    return orjson.dumps(record, default=str) + b"\n"


def landing_file_name(writer_id: str, day: dt.date, segment: int) -> str:
    return f"collector-{writer_id}-{day.isoformat()}-{segment:06d}.jsonl"


def _folder(root: Path, kind: str, day: dt.date) -> Path:
    return root / kind / f"date={day.isoformat()}"


# -- messages -----------------------------------------------------------------------------


def frame(message: bytes) -> bytes:
    return FRAME_HEADER.pack(len(message)) + message


def split_frames(data: bytes | bytearray) -> tuple[list[bytes], int]:
    """The complete messages at the start of `data`, and where the last of them ends. A length
    of zero ends them too: no message is empty, and a journal is zeros past its last message."""
    messages, start = [], 0
    while len(data) - start >= FRAME_HEADER.size:
        (length,) = FRAME_HEADER.unpack_from(data, start)
        end = start + FRAME_HEADER.size + length
        if length == 0:
            break
        if end > len(data):
            break
        messages.append(bytes(data[start + FRAME_HEADER.size : end]))
        start = end
    return messages, start


class _GroupUnpickler(pickle.Unpickler):
    """Groups hold only tuples, lists, str, bytes, int and dates: nothing else is loaded (a
    journal is a file on disk, so it is not trusted to name code)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("datetime", "date"):
            return dt.date
        raise pickle.UnpicklingError(f"a group cannot hold {module}.{name}")


def load_group(message: bytes) -> Group:
    return _GroupUnpickler(io.BytesIO(message)).load()


# -- what a group lands ---------------------------------------------------------------------


def pixel_lines(
    path: str, query_string: bytes, server_ts: int, limits: CollectorLimits
) -> tuple[list[dict[str, Any]], list[bytes]]:
    """What one pixel request (`GET /i` or `/pixel.gif`) lands: its events and the records of
    what it refused. Our field names take `pixel_event` directly; Snowplow's GET emitter and a
    query that is not UTF-8 take the general path (`parse_request`), as the Lambda does."""
    try:
        query = parse_query(query_string)
    except UnicodeDecodeError:
        query = None
    if query is not None and "e" not in query:
        try:
            return [pixel_event(query, server_ts=server_ts, limits=limits)], []
        except EventRejected as rejected:
            refused = rejected.rejection
            return [], [rejection_line(server_ts, path, refused.reason, refused.raw)]
    try:
        if query is None:
            raise RequestRejected(400, "query string is not UTF-8")
        result = parse_request(CollectRequest("GET", path, query, b"", server_ts), limits)
    except RequestRejected as rejected:
        return [], [rejection_line(server_ts, path, rejected.reason, query_string)]
    return result.events, [
        rejection_line(server_ts, path, rejection.reason, rejection.raw)
        for rejection in result.rejections
    ]


def batch_writes(groups: list[Group], limits: CollectorLimits) -> list[tuple[FileKey, bytes]]:
    """The bytes per file of groups, in their order: each group's prepared lines, then its pixel
    requests' lines."""
    by_file: dict[FileKey, list[bytes]] = {}
    for _, pixels, prepared in groups:
        for key, data in prepared:
            by_file.setdefault(key, []).append(data)
        for path, query_string, server_ts in pixels:
            events, rejections = pixel_lines(path, query_string, server_ts, limits)
            for event in events:
                key = (EVENTS_PREFIX, arrival_date(event["server_ts"]))
                by_file.setdefault(key, []).append(orjson.dumps(event) + b"\n")
            if rejections:
                day = arrival_date(server_ts)
                by_file.setdefault((REJECTED_PREFIX, day), []).extend(rejections)
    return [(key, b"".join(chunks)) for key, chunks in by_file.items()]


# -- the writer's files ---------------------------------------------------------------------


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


@dataclass
class _OpenFile:
    temp_path: Path
    final_path: Path
    fd: int
    size: int = 0


JOURNAL_CHUNK = 1 << 20
"""A journal is filled with zeros this much at a time, ahead of the messages written into it:
an fdatasync of blocks that exist already does not wait for a metadata commit (ext4), and that
wait is what each acknowledgement waits for (benchmarks/README.md, collector)."""


@dataclass
class _Segment:
    number: int
    journal_path: Path
    journal_fd: int
    opened_at: float
    journal_bytes: int = 0
    """Where the next message goes; zeros from here to `journal_zeroed`."""
    journal_zeroed: int = 0
    files: dict[FileKey, _OpenFile] = field(default_factory=dict)


class LandingFiles:
    """The journal and the landing files of one writer process: it holds their lock, journals
    and acknowledges batches, writes their lines, and publishes each segment's files."""

    def __init__(
        self, root: Path, writer_id: str, *, rotate_bytes: int, rotate_seconds: float
    ) -> None:
        self.root = Path(root)
        self.writer_id = writer_id
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.fsyncs = 0
        """Journal fsyncs: one per batch acknowledged."""
        self._segments = 0
        self._segment: _Segment | None = None
        self._lock_file: IO[bytes] | None = None

    def take_lock(self, collector_pid: int) -> None:
        locks = self.root / LOCKS_FOLDER
        locks.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(locks / f"{self.writer_id}.lock", "wb")  # noqa: SIM115
        fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._lock_file.write(f"{os.getpid()} {collector_pid}\n".encode())
        self._lock_file.flush()

    def journal(self, messages: bytes) -> None:
        """Append a batch's framed messages to the journal and fdatasync it: once this returns,
        the batch survives a crash. If it fails, the batch's bytes are zeroed again and the
        next batch goes where it went, so that the journal stays readable to its end."""
        segment = self._segment or self._open_segment()
        start, end = segment.journal_bytes, segment.journal_bytes + len(messages)
        try:
            if end > segment.journal_zeroed:
                zeroed = end + JOURNAL_CHUNK - end % JOURNAL_CHUNK
                _pwrite_all(segment.journal_fd, bytes(zeroed - end), end)
                segment.journal_zeroed = zeroed
            _pwrite_all(segment.journal_fd, messages, start)
            os.fdatasync(segment.journal_fd)  # also the file's size, when it grew
        except OSError:
            _pwrite_all(segment.journal_fd, bytes(len(messages)), start)
            raise
        segment.journal_bytes = end
        self.fsyncs += 1

    def write_lines(self, writes: list[tuple[FileKey, bytes]]) -> None:
        """Append the lines of groups journaled in the current segment to its files (written,
        not fsynced: the journal holds them until the segment is published)."""
        segment = self._segment
        if segment is None:
            raise RuntimeError("lines written with no journal segment open")
        for (kind, day), data in writes:
            handle = segment.files.get((kind, day)) or self._open_file(segment, kind, day)
            _write_all(handle.fd, data)
            handle.size += len(data)

    def seconds_to_next_rotation(self) -> float | None:
        if self._segment is None:
            return None
        return max(0.0, self._segment.opened_at + self.rotate_seconds - time.monotonic())

    def rotation_due(self) -> bool:
        """Whether the segment should end: one of its files is `rotate_bytes` large, or it is
        `rotate_seconds` old."""
        segment = self._segment
        return segment is not None and (
            time.monotonic() - segment.opened_at >= self.rotate_seconds
            or any(handle.size >= self.rotate_bytes for handle in segment.files.values())
        )

    def end_segment(self) -> None:
        """Fsync and publish every file of the current segment, then delete its journal. Only
        once every group journaled in it is written: the journal is all that holds the rest."""
        segment, self._segment = self._segment, None
        if segment is None:
            return
        for handle in segment.files.values():
            os.fsync(handle.fd)
            os.close(handle.fd)
            if handle.size == 0:
                handle.temp_path.unlink()
                continue
            os.rename(handle.temp_path, handle.final_path)
            fsync_directory(handle.final_path.parent)
        os.close(segment.journal_fd)
        # Not fsynced: should the deletion be lost in a crash, recovery finds every file of
        # the segment published and deletes the journal again.
        segment.journal_path.unlink()

    def close(self) -> None:
        """Publish the current segment and release the lock."""
        self.end_segment()
        if self._lock_file is not None:
            (self.root / LOCKS_FOLDER / f"{self.writer_id}.lock").unlink(missing_ok=True)
            self._lock_file.close()
            self._lock_file = None

    def _open_segment(self) -> _Segment:
        self._segments += 1
        folder = self.root / JOURNAL_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.writer_id}-{self._segments:06d}.journal"
        journal_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fsync_directory(folder)
        except OSError:
            os.close(journal_fd)
            path.unlink()
            raise
        self._segment = _Segment(self._segments, path, journal_fd, time.monotonic())
        return self._segment

    def _open_file(self, segment: _Segment, kind: str, day: dt.date) -> _OpenFile:
        folder = _folder(self.root, kind, day)
        folder.mkdir(parents=True, exist_ok=True)
        final_path = folder / landing_file_name(self.writer_id, day, segment.number)
        temp_path = folder / f".{final_path.name}.tmp"
        fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        handle = segment.files[(kind, day)] = _OpenFile(temp_path, final_path, fd)
        return handle


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


def recover_abandoned_files(root: Path, limits: CollectorLimits | None = None) -> RecoveryReport:
    """Publish what dead writers acknowledged and had not published: the files of each of their
    journal segments, rebuilt from its complete messages; record torn last messages."""
    root = Path(root)
    limits = limits or CollectorLimits()
    report = RecoveryReport()
    dead_writers: set[str] = set()
    for journal_path in sorted((root / JOURNAL_FOLDER).glob("*.journal")):
        match = _JOURNAL_NAME.match(journal_path.name)
        if not match or (
            match["writer"] not in dead_writers and _owner_is_alive(root, match["writer"])
        ):
            continue
        dead_writers.add(match["writer"])
        _replay(root, journal_path, match["writer"], int(match["segment"]), limits, report)
    for kind in (EVENTS_PREFIX, REJECTED_PREFIX):
        for temp_path in sorted((root / kind).glob("date=*/.collector-*.jsonl.tmp")):
            match = _TEMP_NAME.match(temp_path.name)
            if match and match["writer"] in dead_writers:
                log.warning("left alone: %s, a temporary file no journal accounts for", temp_path)
    for writer in dead_writers:
        (root / LOCKS_FOLDER / f"{writer}.lock").unlink(missing_ok=True)
    return report


def _replay(
    root: Path,
    journal_path: Path,
    writer_id: str,
    segment: int,
    limits: CollectorLimits,
    report: RecoveryReport,
) -> None:
    content = journal_path.read_bytes()
    messages, complete_end = split_frames(content)
    groups = []
    for number, message in enumerate(messages):
        try:
            groups.append(load_group(message))
        except Exception:  # a complete-looking message that does not load: damage, not data
            log.exception("journal %s: message %d does not load", journal_path, number)
            complete_end = sum(FRAME_HEADER.size + len(m) for m in messages[:number])
            break
    torn_tail = content[complete_end:].rstrip(b"\0")  # the zeros ahead of the messages
    if torn_tail:
        report.torn_lines += 1
        _write_recovery_rejection(root, journal_path.name, torn_tail)
    for (kind, day), data in batch_writes(groups, limits):
        folder = _folder(root, kind, day)
        final_path = folder / landing_file_name(writer_id, day, segment)
        if final_path.exists():  # published before the writer died
            continue
        folder.mkdir(parents=True, exist_ok=True)
        _publish(folder / f".{final_path.name}.tmp", final_path, data)
        report.files_published.append(final_path.relative_to(root).as_posix())
        report.lines_kept += data.count(b"\n")
    journal_path.unlink()


def _write_recovery_rejection(root: Path, journal_name: str, torn_tail: bytes) -> None:
    received_ts = int(time.time() * 1000)
    folder = _folder(root, REJECTED_PREFIX, arrival_date(received_ts))
    folder.mkdir(parents=True, exist_ok=True)
    line = rejection_line(
        received_ts,
        "recovery",
        f"torn last message of journal {journal_name} after a crash (never acknowledged)",
        torn_tail,
    )
    final_path = folder / f"recovery-{uuid.uuid4().hex[:12]}.jsonl"
    _publish(folder / f".{final_path.name}.tmp-recovery", final_path, line)


def _publish(temp_path: Path, final_path: Path, data: bytes) -> None:
    """A whole file written by recovery: under its temporary name, fsynced, renamed."""
    with open(temp_path, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
    os.rename(temp_path, final_path)
    fsync_directory(final_path.parent)
