"""The landing zone: immutable, append-only files of raw events, partitioned by arrival date.

Layout (DESIGN.md): ``<root>/events/date=YYYY-MM-DD/<producer>-<id>.jsonl[.gz]``. A file is written
under a hidden temporary name (leading dot) and becomes visible only by an atomic rename once it is
complete and fsynced, so a reader never sees half a file. The platform never edits or deletes a
finalized file. A day may hold several files of one producer (``...-00000``, ``...-00001``):
readers take every finalized file of the partition, in name order.
"""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import hashlib
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from recs_platform.events.contract import encode_event

EVENTS_PREFIX = "events"
_DAY_MS = 86_400_000
_FINAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.jsonl(\.gz)?$")
_PRODUCER = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@functools.lru_cache(maxsize=64)
def _date_of_day_number(day_number: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=day_number)


def arrival_date(server_ts_ms: int) -> dt.date:
    """The UTC date an event landed on, which decides its partition."""
    return _date_of_day_number(server_ts_ms // _DAY_MS)


def partition_prefix(day: dt.date) -> str:
    """The landing-zone prefix of one day, relative to the root (also the S3 key prefix)."""
    return f"{EVENTS_PREFIX}/date={day.isoformat()}/"


def is_finalized_name(name: str) -> bool:
    """Finalized landing files: not hidden (temporary), JSON lines, optionally gzipped."""
    return bool(_FINAL_NAME.match(name))


def fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@dataclass(frozen=True)
class LandingFile:
    """A finalized file in the landing zone; `key` is relative to the zone's root."""

    key: str
    size: int


def files_fingerprint(files: Iterable[LandingFile]) -> str:
    """Changes whenever a finalized file appears in (or leaves) a day's landing partition."""
    digest = hashlib.sha1()
    for landing_file in sorted(files, key=lambda f: f.key):
        digest.update(f"{landing_file.key}:{landing_file.size}\n".encode())
    return digest.hexdigest()[:16]


def list_local_partition(root: Path, day: dt.date) -> list[LandingFile]:
    """Finalized files of one day in a local landing zone, in name order."""
    folder = root / partition_prefix(day)
    if not folder.is_dir():
        return []
    files = []
    for entry in sorted(os.scandir(folder), key=lambda entry: entry.name):
        if entry.is_file() and is_finalized_name(entry.name):
            files.append(LandingFile(partition_prefix(day) + entry.name, entry.stat().st_size))
    return files


def list_local_dates(root: Path) -> list[dt.date]:
    """Days that have a partition folder in a local landing zone."""
    base = root / EVENTS_PREFIX
    if not base.is_dir():
        return []
    days = []
    for entry in base.iterdir():
        if entry.is_dir() and entry.name.startswith("date="):
            try:
                days.append(dt.date.fromisoformat(entry.name[len("date=") :]))
            except ValueError:
                continue
    return sorted(days)


class _OpenFile:
    def __init__(self, final_path: Path, compress: bool):
        self.final_path = final_path
        self.temp_path = final_path.with_name(f".{final_path.name}.tmp-{uuid.uuid4().hex[:8]}")
        self.raw: IO[bytes] = open(self.temp_path, "xb")  # noqa: SIM115 - closed in finalize
        self.stream: IO[bytes] = (
            gzip.GzipFile(filename="", fileobj=self.raw, mode="wb", compresslevel=1, mtime=0)
            if compress
            else self.raw
        )
        self.lines = 0
        self.bytes = 0

    def write(self, data: bytes, lines: int) -> None:
        self.stream.write(data)
        self.lines += lines
        self.bytes += len(data)

    def finalize(self, skip_existing: bool) -> bool:
        """Close, fsync and rename into place. False if skipped because the file exists."""
        if self.stream is not self.raw:
            self.stream.close()
        self.raw.flush()
        os.fsync(self.raw.fileno())
        self.raw.close()
        if skip_existing and self.final_path.exists():
            self.temp_path.unlink()
            return False
        if self.final_path.exists():
            self.temp_path.unlink()
            raise FileExistsError(f"landing file {self.final_path} exists; files are immutable")
        os.rename(self.temp_path, self.final_path)
        fsync_directory(self.final_path.parent)
        return True

    def abandon(self) -> None:
        if self.stream is not self.raw:
            self.stream.close()
        self.raw.close()
        self.temp_path.unlink(missing_ok=True)


@dataclass
class LandingWriteSummary:
    files_written: list[str]
    files_skipped: list[str]
    events: int
    # Files opened for a day whose earlier file had been closed by `max_open_days`: each is a
    # row that came back to a day the writer had already moved past.
    days_reopened: int = 0


class LandingWriter:
    """Writes raw events into the local landing zone, one open file per arrival date.

    Files rotate after `max_events_per_file` events. With `file_stem` set, names are
    deterministic (``<producer>-<file_stem>-<date>-<seq>``) and `skip_existing` makes a re-run
    write nothing that is already there: that is how an import becomes idempotent. Without it each
    writer gets a random id, so concurrent producers never collide.

    Each open file holds a gzip stream (about 256 KB of zlib state). By default every day stays
    open until `close`, so memory grows with the number of days written. With `max_open_days`
    set, opening a day beyond that many finalizes the least recently written one; an event for
    a day closed that way goes to the day's next file (the next `<seq>`), so nothing is lost or
    reordered within the day (readers take a day's files in name order) and the names stay
    deterministic for a given input. For a producer whose events come in roughly time order this
    keeps memory flat whatever the number of days; badly ordered input still lands completely,
    in more, smaller files (counted in `summary.days_reopened`).
    """

    def __init__(
        self,
        root: Path,
        producer: str,
        *,
        compress: bool = True,
        max_events_per_file: int = 500_000,
        file_stem: str | None = None,
        skip_existing: bool = False,
        max_open_days: int | None = None,
    ):
        if not _PRODUCER.match(producer):
            raise ValueError(f"producer {producer!r} must match {_PRODUCER.pattern}")
        if max_open_days is not None and max_open_days < 1:
            raise ValueError(f"max_open_days must be at least 1, not {max_open_days}")
        self.root = Path(root)
        self.producer = producer
        self.compress = compress
        self.max_events_per_file = max_events_per_file
        self.file_stem = file_stem or uuid.uuid4().hex[:12]
        self.skip_existing = skip_existing
        self.max_open_days = max_open_days
        # With `max_open_days`, ordered from least to most recently written.
        self._open: dict[dt.date, _OpenFile] = {}
        self._sequence: dict[dt.date, int] = {}
        self._closed_early: set[dt.date] = set()
        self._latest: dt.date | None = None
        self.summary = LandingWriteSummary([], [], 0)

    @property
    def open_days(self) -> list[dt.date]:
        """Days with a file open now (each holds one gzip stream)."""
        return list(self._open)

    def _file_for(self, day: dt.date) -> _OpenFile:
        handle = self._open.get(day)
        if handle is not None and handle.lines >= self.max_events_per_file:
            self._finalize(day)
            handle = None
        if self.max_open_days is not None and day != self._latest:
            self._latest = day
            if handle is not None:  # now the most recently written
                self._open[day] = self._open.pop(day)
        if handle is None:
            if self.max_open_days is not None:
                while len(self._open) >= self.max_open_days:
                    oldest = next(iter(self._open))
                    self._finalize(oldest)
                    self._closed_early.add(oldest)
                if day in self._closed_early:
                    self._closed_early.discard(day)
                    self.summary.days_reopened += 1
            sequence = self._sequence.get(day, 0)
            self._sequence[day] = sequence + 1
            folder = self.root / partition_prefix(day)
            folder.mkdir(parents=True, exist_ok=True)
            suffix = ".jsonl.gz" if self.compress else ".jsonl"
            name = f"{self.producer}-{self.file_stem}-{day.isoformat()}-{sequence:05d}{suffix}"
            handle = self._open[day] = _OpenFile(folder / name, self.compress)
        return handle

    def _finalize(self, day: dt.date) -> None:
        handle = self._open.pop(day)
        key = str(handle.final_path.relative_to(self.root).as_posix())
        if handle.finalize(self.skip_existing):
            self.summary.files_written.append(key)
        else:
            self.summary.files_skipped.append(key)

    def write(self, event: dict[str, Any]) -> None:
        self.write_encoded(arrival_date(event["server_ts"]), encode_event(event), 1)

    def write_many(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            self.write(event)

    def write_encoded(self, day: dt.date, data: bytes, lines: int) -> None:
        """Append already-encoded lines (each ending in a newline) that all arrived on `day`."""
        self._file_for(day).write(data, lines)
        self.summary.events += lines

    def close(self) -> LandingWriteSummary:
        for day in list(self._open):
            self._finalize(day)
        return self.summary

    def abort(self) -> None:
        """Drop every unfinished file: nothing half-written ever becomes visible."""
        for handle in self._open.values():
            handle.abandon()
        self._open.clear()

    def __enter__(self) -> LandingWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def iter_lines_recovering(stream: IO[bytes], compressed: bool) -> Iterator[tuple[int, bytes]]:
    """Yield (line number, line) from a landing file, without the newline.

    Raises `CorruptFile` after yielding every complete line when the file is damaged: a gzip
    stream cut short or not gzip at all, or a last line with no newline (a torn write).
    """
    reader: IO[bytes] = gzip.GzipFile(fileobj=stream, mode="rb") if compressed else stream
    number = 0
    try:
        for line in reader:
            number += 1
            if not line.endswith(b"\n"):
                raise CorruptFile(number, "last line has no newline (torn write)")
            yield number, line.rstrip(b"\r\n")
    except (EOFError, OSError, gzip.BadGzipFile) as error:
        reason = f"unreadable file: {type(error).__name__}: {error}"
        raise CorruptFile(number + 1, reason) from error


class CorruptFile(Exception):
    """A landing file is damaged from `line_number` on; the lines before it were yielded."""

    def __init__(self, line_number: int, reason: str):
        super().__init__(f"line {line_number}: {reason}")
        self.line_number = line_number
        self.reason = reason
