"""The collector's writer process: parses pixel requests, writes and fsyncs the landing files.

`DurableLandingWriter` (durable.py) starts it as ``python -m
recs_platform.collection.landing_process`` with its settings in the environment, and talks to it
over its standard input (groups, pickled) and output (acknowledgements, JSON), each message
preceded by its length. For each group it parses the pixel requests (`pixel_lines`: the rules of
`parsing.pixel_event`, and of `routes.parse_request` for the rest), writes their lines and the
group's prepared lines, fsyncs every touched file and only then acks the group's number.

It holds its writer's lock from before recovery until it exits, dies with the collector (Linux's
parent-death signal; end of input on its pipe otherwise: it then publishes its files and exits),
and ignores SIGINT and SIGTERM, which a terminal or a service manager sends to the collector's
whole process group: the collector ends it when it stops, once every pending group is written.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import select
import signal
import sys
import traceback
from typing import Any

import orjson

from recs_platform.collection.durable import (
    FRAME_HEADER,
    REJECTED_PREFIX,
    FileKey,
    LandingFiles,
    recover_abandoned_files,
    rejection_line,
)
from recs_platform.collection.parsing import (
    CollectorLimits,
    EventRejected,
    RequestRejected,
    pixel_event,
)
from recs_platform.collection.routes import CollectRequest, parse_query, parse_request
from recs_platform.events.landing import EVENTS_PREFIX, arrival_date

_PR_SET_PDEATHSIG = 1


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


def batch_writes(
    groups: list[tuple[int, list[tuple[str, bytes, int]], list[tuple[FileKey, bytes]]]],
    limits: CollectorLimits,
) -> list[tuple[FileKey, bytes]]:
    """The bytes per file of groups (number, pixel requests, prepared lines), in their order:
    each group's prepared lines, then its pixel requests' lines."""
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


def _die_with_the_collector(collector_pid: int) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != collector_pid:  # the collector died before the signal was asked for
        sys.exit("the collector that started this landing writer is gone")


def send(message: dict, output_fd: int = 1) -> None:
    data = orjson.dumps(message)
    frame = FRAME_HEADER.pack(len(data)) + data
    while frame:
        frame = frame[os.write(output_fd, frame) :]


def serve(
    files: LandingFiles, limits: CollectorLimits, input_fd: int = 0, output_fd: int = 1
) -> None:
    """Write the groups that come on `input_fd` (standard input) until it ends: all those that
    came together are written and fsynced at once, then acked (by the last one's number) on
    `output_fd`."""
    buffered = bytearray()
    groups = []
    while True:
        wait = files.seconds_to_next_rotation()
        readable, _, _ = select.select([input_fd], [], [], wait)
        if readable:
            data = os.read(input_fd, 1 << 20)
            if not data:
                return
            buffered += data
        while len(buffered) >= FRAME_HEADER.size:
            (length,) = FRAME_HEADER.unpack_from(buffered)
            end = FRAME_HEADER.size + length
            if len(buffered) < end:
                break
            groups.append(pickle.loads(buffered[FRAME_HEADER.size : end]))
            del buffered[:end]
        if groups:
            last = groups[-1][0]
            try:
                files.write_and_sync(batch_writes(groups, limits))
            except Exception as error:  # the groups' requests are failed, not acknowledged
                traceback.print_exc()
                send({"group": last, "fsyncs": files.fsyncs, "error": repr(error)}, output_fd)
            else:
                send({"group": last, "fsyncs": files.fsyncs}, output_fd)
            groups = []
        files.publish_aged()


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    settings = orjson.loads(os.environ["RECS_LANDING_WRITER"])
    _die_with_the_collector(settings["collector_pid"])
    files = LandingFiles(
        settings["root"],
        settings["writer_id"],
        rotate_bytes=settings["rotate_bytes"],
        rotate_seconds=settings["rotate_seconds"],
    )
    try:
        files.take_lock(settings["collector_pid"])
        recovery = recover_abandoned_files(files.root)
    except Exception as error:
        send({"fatal": f"could not start: {error!r}"})
        raise
    send({"ready": recovery.__dict__})
    try:
        serve(files, CollectorLimits(**settings["limits"]))
    finally:
        files.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
