"""The landing zone on S3, as Kinesis Firehose writes it: ``<prefix>events/date=YYYY-MM-DD/``.

Keys of `LandingFile` are relative to the prefix, so a file reads the same as in a local landing
zone (``events/date=.../name``). An S3 object only becomes visible once completely written, so
every listed object with a finalized name is a finalized file.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from pathlib import Path
from typing import IO, Any

from recs_platform.events.landing import (
    EVENTS_PREFIX,
    LandingFile,
    is_finalized_name,
    partition_prefix,
)

_DATE_FOLDER = "date="
_READ_BUFFER_BYTES = 1 << 20


def _key_root(prefix: str) -> str:
    """`prefix` as the start of a key: no leading slash, one trailing slash unless empty."""
    stripped = prefix.strip("/")
    return f"{stripped}/" if stripped else ""


def list_s3_partition(
    s3_client: Any, bucket: str, prefix: str, day: dt.date, *, page_size: int = 1000
) -> list[LandingFile]:
    """Finalized files of one day, in name order; nested keys and temporary names are skipped."""
    folder = _key_root(prefix) + partition_prefix(day)
    paginator = s3_client.get_paginator("list_objects_v2")
    pages = paginator.paginate(
        Bucket=bucket, Prefix=folder, PaginationConfig={"PageSize": page_size}
    )
    files = []
    for page in pages:
        for entry in page.get("Contents", []):
            name = entry["Key"][len(folder) :]
            if "/" not in name and is_finalized_name(name):
                files.append(LandingFile(partition_prefix(day) + name, entry["Size"]))
    return sorted(files, key=lambda landing_file: landing_file.key)


def list_s3_dates(
    s3_client: Any, bucket: str, prefix: str, *, page_size: int = 1000
) -> list[dt.date]:
    """Days that have a ``date=YYYY-MM-DD/`` folder under the prefix."""
    events_root = f"{_key_root(prefix)}{EVENTS_PREFIX}/"
    paginator = s3_client.get_paginator("list_objects_v2")
    pages = paginator.paginate(
        Bucket=bucket,
        Prefix=events_root + _DATE_FOLDER,
        Delimiter="/",
        PaginationConfig={"PageSize": page_size},
    )
    days = set()
    for page in pages:
        for common in page.get("CommonPrefixes", []):
            folder = common["Prefix"][len(events_root) : -1]
            try:
                days.add(dt.date.fromisoformat(folder[len(_DATE_FOLDER) :]))
            except ValueError:
                continue
    return sorted(days)


class _StreamingBodyReader(io.RawIOBase):
    """Raw reader over a botocore StreamingBody, whose own iteration yields chunks, not lines."""

    def __init__(self, body: Any):
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def open_s3_file(s3_client: Any, bucket: str, prefix: str, landing_file: LandingFile) -> IO[bytes]:
    """A buffered binary stream of one object's body, read as it is consumed; close it after use.

    A connection cut short raises botocore's IncompleteReadError rather than ending the stream
    early, so a network failure is never mistaken for a truncated file.
    """
    response = s3_client.get_object(Bucket=bucket, Key=_key_root(prefix) + landing_file.key)
    return io.BufferedReader(_StreamingBodyReader(response["Body"]), _READ_BUFFER_BYTES)


def upload_landing_folder(
    s3_client: Any, local_root: Path, bucket: str, prefix: str
) -> list[LandingFile]:
    """Mirror the finalized files of a local landing zone to S3; returns what was uploaded."""
    local_root = Path(local_root)
    uploaded = []
    events_folder = local_root / EVENTS_PREFIX
    if not events_folder.is_dir():
        return uploaded
    for day_folder in sorted(events_folder.iterdir()):
        if not (day_folder.is_dir() and day_folder.name.startswith(_DATE_FOLDER)):
            continue
        for path in sorted(day_folder.iterdir()):
            if not (path.is_file() and is_finalized_name(path.name)):
                continue
            key = path.relative_to(local_root).as_posix()
            s3_client.upload_file(os.fspath(path), bucket, _key_root(prefix) + key)
            uploaded.append(LandingFile(key, path.stat().st_size))
    return uploaded
