"""The collector's writer process: journals, acknowledges, parses and writes landing files.

`DurableLandingWriter` (durable.py) starts it as ``python -m
recs_platform.collection.landing_process`` with its settings in the environment, and talks to it
over its standard input (groups, pickled) and output (acknowledgements, JSON), each message
preceded by its length. For each batch of groups it appends the messages to its journal and
fsyncs it, acks the last group's number, and then parses the pixel requests (`pixel_lines`: the
rules of `parsing.pixel_event`, and of `routes.parse_request` for the rest) and writes their
lines and the groups' prepared lines to the landing files (`landing_files.LandingFiles`).

It holds its writer's lock from before recovery until it exits, dies with the collector (Linux's
parent-death signal; end of input on its pipe otherwise: it then publishes its files and exits),
and ignores SIGINT and SIGTERM, which a terminal or a service manager sends to the collector's
whole process group: the collector ends it when it stops, once every pending group is written.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import sys
import traceback

import orjson

from recs_platform.collection.landing_files import (
    FRAME_HEADER,
    LandingFiles,
    batch_writes,
    load_group,
    recover_abandoned_files,
    split_frames,
)
from recs_platform.collection.parsing import CollectorLimits

_PR_SET_PDEATHSIG = 1


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


MAX_UNWRITTEN_GROUPS = 256
"""Acknowledged groups whose lines may wait while more requests come (acks go first)."""
PIXELS_PER_WRITE = 8
"""Pixel requests parsed and written between two looks for more groups to acknowledge."""


def serve(
    files: LandingFiles, limits: CollectorLimits, input_fd: int = 0, output_fd: int = 1
) -> None:
    """Land the groups that come on `input_fd` (standard input) until it ends: all those that
    came together are journaled with one fsync and acked (by the last one's number) on
    `output_fd`; their lines are parsed and written to the landing files once no more groups
    are waiting (acknowledgements go first: they are what requests wait for)."""
    buffered = bytearray()
    unwritten: list = []  # journaled and acknowledged groups, lines not yet written
    while True:
        # A segment ends only once every group it journaled is written: when one is due, the
        # groups that are in go first.
        rotation_due = files.rotation_due()
        if rotation_due and not unwritten:
            files.end_segment()
            rotation_due = False
        readable = False
        if len(unwritten) < MAX_UNWRITTEN_GROUPS and not rotation_due:
            wait = 0.0 if unwritten else files.seconds_to_next_rotation()
            readable = bool(select.select([input_fd], [], [], wait)[0])
        if readable:
            data = os.read(input_fd, 1 << 20)
            if not data:
                if unwritten:
                    files.write_lines(batch_writes(unwritten, limits))
                return
            buffered += data
        messages, complete_end = split_frames(buffered)
        if messages:
            batch = bytes(buffered[:complete_end])
            del buffered[:complete_end]
            groups = [load_group(message) for message in messages]
            last = groups[-1][0]
            try:
                files.journal(batch)
            except OSError as error:  # the groups' requests are failed, not acknowledged
                traceback.print_exc()
                send({"group": last, "fsyncs": files.fsyncs, "error": repr(error)}, output_fd)
            else:
                send({"group": last, "fsyncs": files.fsyncs}, output_fd)
                unwritten += groups
            continue
        if unwritten:
            # A few requests at a time: a group that comes meanwhile waits for no more. Should
            # this fail, the writer dies (the collector then refuses requests) and the next
            # one lands these groups from the journal.
            number, pixels, prepared = unwritten[0]
            if len(pixels) > PIXELS_PER_WRITE:
                unwritten[0] = (number, pixels[PIXELS_PER_WRITE:], [])
                chunk = (number, pixels[:PIXELS_PER_WRITE], prepared)
            else:
                chunk = unwritten.pop(0)
            files.write_lines(batch_writes([chunk], limits))


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
        limits = CollectorLimits(**settings["limits"])
        recovery = recover_abandoned_files(files.root, limits)
    except Exception as error:
        send({"fatal": f"could not start: {error!r}"})
        raise
    send({"ready": recovery.__dict__})
    # Not in a `finally`: after a failure, the segment's files may lack lines its journal
    # holds, so the journal stays for the next writer to land (this one's lock dies with it).
    serve(files, limits)
    files.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
