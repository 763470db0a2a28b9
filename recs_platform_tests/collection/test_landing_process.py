"""The writer process: it acks a group only once it is fsynced; its death is a clear 503, never
an ack; a writer whose collector died is waited for before its files are recovered."""

import asyncio
import os
import pickle
import select
import signal
import stat
import subprocess
import sys
import threading
import time

import orjson
import pytest
from starlette.testclient import TestClient

from recs_platform.collection import landing_files, landing_process
from recs_platform.collection.app import CollectorConfig, create_app
from recs_platform.collection.durable import DurableLandingWriter, LandingUnavailable
from recs_platform.collection.landing_files import (
    EVENTS_PREFIX,
    FRAME_HEADER,
    LOCKS_FOLDER,
    LandingFiles,
    load_group,
    recover_abandoned_files,
    split_frames,
)
from recs_platform.collection.parsing import CollectorLimits
from recs_platform_tests.collection.servers import (
    events_after_a_crash,
    free_port,
    landed_events,
    plant_journal,
    start_collector,
    stop_collector,
)
from recs_platform_tests.factories import DAY, make_event

NOW = int(time.time() * 1000)
PIXEL_QUERY = f"session_id=s1&event_type=pageview&url=%2F&ts={NOW}".encode()


def frame(message: object) -> bytes:
    data = pickle.dumps(message)
    return FRAME_HEADER.pack(len(data)) + data


def serve_in_a_thread(files: LandingFiles, errors: list | None = None):
    """`landing_process.serve` on two pipes in a thread, as the writer process runs it: the end
    to send groups on, the end acknowledgements come on, and the thread. An OSError that ends
    it goes to `errors` when given."""
    to_writer_read, to_writer = os.pipe()
    acks, acks_write = os.pipe()

    def run() -> None:
        try:
            landing_process.serve(files, CollectorLimits(), to_writer_read, acks_write)
        except OSError as error:
            if errors is None:
                raise
            errors.append(error)

    writer = threading.Thread(target=run)
    writer.start()
    return to_writer, acks, writer


def test_a_group_is_acked_only_once_its_journal_is_fsynced(tmp_path, monkeypatch):
    fsyncs = []

    def watched(real_sync):
        def watched_sync(fd):
            readable, _, _ = select.select([acks], [], [], 0)
            of_a_file = stat.S_ISREG(os.fstat(fd).st_mode)
            fsyncs.append({"of_a_file": of_a_file, "acked": bool(readable)})
            real_sync(fd)

        return watched_sync

    monkeypatch.setattr(landing_files.os, "fsync", watched(os.fsync))
    monkeypatch.setattr(landing_files.os, "fdatasync", watched(os.fdatasync))
    files = LandingFiles(tmp_path, "c" * 12, rotate_bytes=1 << 20, rotate_seconds=3600)
    to_writer, acks, writer = serve_in_a_thread(files)
    os.write(to_writer, frame((1, [("/i", PIXEL_QUERY, NOW)], [])))
    readable, _, _ = select.select([acks], [], [], 30)
    ack = os.read(acks, 1000)
    fsyncs_before_the_ack_was_read = list(fsyncs)
    os.close(to_writer)  # end of input: serve returns
    writer.join(timeout=30)
    files.close()
    assert {"of_a_file": True, "acked": False} in fsyncs_before_the_ack_was_read
    assert not any(fsync["acked"] for fsync in fsyncs_before_the_ack_was_read)
    assert orjson.loads(ack[FRAME_HEADER.size :]) == {"group": 1, "fsyncs": 1}
    (event,) = landed_events(tmp_path)
    assert (event["session_id"], event["url"], event["client_ts"]) == ("s1", "/", NOW)


def test_an_acked_pixel_survives_a_crash_and_the_group_shares_one_fsync(tmp_path):
    async def scenario():
        writer = DurableLandingWriter(tmp_path / "landing", rotate_seconds=3600)
        await writer.start()
        await asyncio.gather(*(writer.land_pixel("/i", PIXEL_QUERY, NOW) for _ in range(20)))
        after_a_crash = events_after_a_crash(tmp_path / "landing", tmp_path)
        fsyncs = writer.fsyncs
        await writer.stop()
        return after_a_crash, fsyncs

    after_a_crash, fsyncs = asyncio.run(scenario())
    assert len(after_a_crash) == 20 and fsyncs == 1
    assert len({event["event_id"] for event in after_a_crash}) == 20
    assert {event["url"] for event in after_a_crash} == {"/"}
    landed = landed_events(tmp_path / "landing")
    assert len(landed) == 20 and len({event["event_id"] for event in landed}) == 20


def test_a_batch_whose_journal_write_fails_is_refused_and_the_next_one_lands(tmp_path, monkeypatch):
    real_fdatasync = os.fdatasync
    failures = [OSError(28, "No space left on device")]

    def full_disk_once(fd):
        if failures:
            raise failures.pop()
        real_fdatasync(fd)

    monkeypatch.setattr(landing_files.os, "fdatasync", full_disk_once)
    files = LandingFiles(tmp_path, "f" * 12, rotate_bytes=1 << 20, rotate_seconds=3600)
    to_writer, acks, writer = serve_in_a_thread(files)
    answers = []
    for number in (1, 2):
        lines = orjson.dumps(make_event(number)) + b"\n"
        os.write(to_writer, frame((number, [], [((EVENTS_PREFIX, DAY), lines)])))
        select.select([acks], [], [], 30)
        answers.append(orjson.loads(os.read(acks, 1000)[FRAME_HEADER.size :]))
    # A crash now: the journal holds the second batch, not a torn first one.
    after_a_crash = events_after_a_crash(tmp_path, tmp_path / "scratch")
    os.close(to_writer)
    writer.join(timeout=30)
    files.close()
    assert not failures, "the journal's fsync was not reached"
    assert "No space left" in answers[0]["error"] and "error" not in answers[1]
    assert after_a_crash == [make_event(2)]
    assert landed_events(tmp_path) == [make_event(2)]


def test_lines_that_fail_to_be_written_after_the_ack_are_landed_by_the_next_writer(tmp_path):
    files = LandingFiles(tmp_path, "8" * 12, rotate_bytes=1 << 20, rotate_seconds=3600)
    files.take_lock(os.getpid())

    def disk_full(writes):
        raise OSError(28, "No space left on device")

    files.write_lines = disk_full
    failed = []
    to_writer, acks, writer = serve_in_a_thread(files, errors=failed)
    lines = orjson.dumps(make_event(1)) + b"\n"
    os.write(to_writer, frame((1, [], [((EVENTS_PREFIX, DAY), lines)])))
    select.select([acks], [], [], 30)
    ack = orjson.loads(os.read(acks, 1000)[FRAME_HEADER.size :])
    writer.join(timeout=30)
    files._lock_file.close()  # the writer process is gone, and its lock with it
    assert ack == {"group": 1, "fsyncs": 1} and failed
    assert landed_events(tmp_path) == []
    report = recover_abandoned_files(tmp_path)
    assert report.lines_kept == 1 and landed_events(tmp_path) == [make_event(1)]


def test_a_segment_ends_only_once_its_files_hold_everything_its_journal_holds(
    tmp_path, monkeypatch
):
    files = LandingFiles(tmp_path, "9" * 12, rotate_bytes=1, rotate_seconds=3600)
    real_end_segment = files.end_segment
    ended = []

    def checked_end_segment():
        segment = files._segment
        if segment is None:
            return real_end_segment()
        messages, _ = split_frames(segment.journal_path.read_bytes())
        journaled = sum(data.count(b"\n") for m in messages for _, data in load_group(m)[2])
        written = sum(
            handle.temp_path.read_bytes().count(b"\n") for handle in segment.files.values()
        )
        ended.append((journaled, written))
        real_end_segment()

    monkeypatch.setattr(files, "end_segment", checked_end_segment)
    to_writer, acks, writer = serve_in_a_thread(files)
    # Ten groups that come together: one journal write, then ten writes to files that are
    # all due for rotation after the first.
    os.write(
        to_writer,
        b"".join(
            frame((n, [], [((EVENTS_PREFIX, DAY), orjson.dumps(make_event(n)) + b"\n")]))
            for n in range(1, 11)
        ),
    )
    select.select([acks], [], [], 30)
    os.close(to_writer)
    writer.join(timeout=30)
    files.close()
    assert ended and all(journaled == written for journaled, written in ended)
    assert ended[0] == (10, 10)
    assert sorted(e["event_id"] for e in landed_events(tmp_path)) == sorted(
        make_event(n)["event_id"] for n in range(1, 11)
    )


def test_a_dead_writer_process_fails_waiting_and_later_requests_clearly(tmp_path, caplog):
    async def scenario():
        writer = DurableLandingWriter(tmp_path)
        await writer.start()
        await writer.append([make_event(1)])
        os.kill(writer._process.pid, signal.SIGKILL)
        with pytest.raises(LandingUnavailable) as waiting:
            await writer.append([make_event(2)])
        with pytest.raises(LandingUnavailable) as later:
            writer.land_pixel("/i", PIXEL_QUERY, NOW)
        await writer.stop()
        restarted = DurableLandingWriter(tmp_path)
        await restarted.start()
        await restarted.stop()
        return str(waiting.value), str(later.value), restarted.recovery

    waiting, later, recovery = asyncio.run(scenario())
    assert "landing writer process failed" in waiting and waiting == later
    assert any("refuses events until it is restarted" in r.message for r in caplog.records)
    # What was acknowledged before the death is recovered by the next writer; nothing else.
    assert recovery.lines_kept == 1
    assert [e["event_id"] for e in landed_events(tmp_path)] == [make_event(1)["event_id"]]


def test_the_collector_answers_503_once_its_writer_process_is_gone(tmp_path):
    app = create_app(CollectorConfig(tmp_path))
    with TestClient(app) as client:
        assert client.get(f"/i?{PIXEL_QUERY.decode()}").status_code == 200
        process = app.writer._process
        process.kill()
        process.wait(timeout=30)
        pixel = client.get(f"/i?{PIXEL_QUERY.decode()}")
        batch = client.post("/collect", json=[make_event(3)])
        assert client.get("/health").status_code == 200
    assert pixel.status_code == 503 and batch.status_code == 503
    assert "landing writer process failed" in batch.json()["error"]
    # The one acknowledged pixel is in the journal the next writer lands.
    assert recover_abandoned_files(tmp_path).lines_kept == 1
    assert len(landed_events(tmp_path)) == 1


def test_a_sigkilled_collectors_writer_process_dies_with_it(tmp_path):
    process = start_collector(tmp_path, free_port())
    with open(f"/proc/{process.pid}/task/{process.pid}/children") as children:
        (writer_pid,) = [int(pid) for pid in children.read().split()]
    stop_collector(process, kill=True)
    deadline = time.monotonic() + 30
    while os.path.exists(f"/proc/{writer_pid}") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not os.path.exists(f"/proc/{writer_pid}")


def test_recovery_waits_for_the_lock_of_a_writer_whose_collector_is_gone(tmp_path, monkeypatch):
    writer_id = "d" * 12
    lines = orjson.dumps(make_event(1)) + b"\n"
    journal = plant_journal(tmp_path, writer_id, [(1, [], [((EVENTS_PREFIX, DAY), lines)])])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock_path = tmp_path / LOCKS_FOLDER / f"{writer_id}.lock"
    # A writer still holding its lock though its collector (the pid it records) is gone.
    orphan = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys; lock = open(sys.argv[1], 'wb'); "
            "fcntl.flock(lock, fcntl.LOCK_EX); lock.write(sys.argv[2].encode()); lock.flush(); "
            "print('locked', flush=True); sys.stdin.read()",
            str(lock_path),
            f"{os.getpid()} {gone.pid}\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert orphan.stdout.readline() == b"locked\n"
    waited = []

    def orphan_dies_while_waited_for():
        if not waited:
            orphan.stdin.close()
            orphan.wait(timeout=30)
        waited.append(True)

    monkeypatch.setattr(landing_files, "_pause_before_the_next_try", orphan_dies_while_waited_for)
    report = recover_abandoned_files(tmp_path)
    assert waited, "recovery did not wait for the orphaned writer"
    assert report.lines_kept == 1 and not journal.exists()
    assert landed_events(tmp_path) == [make_event(1)]
