import asyncio
import fcntl
import os

import orjson

from recs_platform.collection.durable import (
    LOCKS_FOLDER,
    DurableLandingWriter,
    recover_abandoned_files,
)
from recs_platform.events.landing import list_local_partition
from recs_platform_tests.collection.servers import landed_events, rejected_records
from recs_platform_tests.factories import DAY, make_event


def run(coroutine):
    return asyncio.run(coroutine)


def test_concurrent_appends_share_fsyncs_and_all_land_once(tmp_path):
    async def scenario():
        writer = DurableLandingWriter(tmp_path)
        await writer.start()
        await asyncio.gather(*(writer.append([make_event(n)]) for n in range(300)))
        fsyncs = writer.fsyncs
        await writer.stop()
        return fsyncs

    fsyncs = run(scenario())
    assert 1 <= fsyncs < 300
    assert sorted(e["event_id"] for e in landed_events(tmp_path)) == sorted(
        make_event(n)["event_id"] for n in range(300)
    )


def test_an_acknowledged_event_is_on_disk_before_the_file_is_published(tmp_path):
    async def scenario():
        writer = DurableLandingWriter(tmp_path, rotate_seconds=3600)
        await writer.start()
        await writer.append([make_event(1)])
        (temp,) = (tmp_path / f"events/date={DAY}").glob(".collector-*.tmp")
        on_disk = orjson.loads(temp.read_bytes())
        assert list_local_partition(tmp_path, DAY) == []
        await writer.stop()
        return on_disk

    assert run(scenario()) == make_event(1)
    assert len(list_local_partition(tmp_path, DAY)) == 1


def test_files_rotate_by_size_and_by_age(tmp_path):
    async def scenario():
        writer = DurableLandingWriter(tmp_path, rotate_bytes=600, rotate_seconds=1.0)
        await writer.start()
        for n in range(6):
            await writer.append([make_event(n)])
        by_size = len(list_local_partition(tmp_path, DAY))
        await writer.append([make_event(99)])
        await asyncio.sleep(2.5)
        by_age = len(list_local_partition(tmp_path, DAY))
        await writer.stop()
        return by_size, by_age

    by_size, by_age = run(scenario())
    assert by_size >= 2
    assert by_age == by_size + 1
    assert len(landed_events(tmp_path)) == 7


def test_rejections_are_kept_apart_from_events(tmp_path):
    async def scenario():
        writer = DurableLandingWriter(tmp_path)
        await writer.start()
        await writer.append([], [b'{"reason": "bad"}\n'], make_event(0)["server_ts"])
        await writer.stop()

    run(scenario())
    assert landed_events(tmp_path) == []
    assert rejected_records(tmp_path) == [{"reason": "bad"}]


def plant_temp_file(root, writer_id: str, content: bytes):
    folder = root / f"events/date={DAY}"
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f".collector-{writer_id}-{DAY}-000001.jsonl.tmp"
    temp.write_bytes(content)
    (root / LOCKS_FOLDER).mkdir(exist_ok=True)
    return temp


def test_recovery_keeps_complete_lines_and_rejects_a_torn_one(tmp_path):
    good = b"".join(orjson.dumps(make_event(n)) + b"\n" for n in range(3))
    plant_temp_file(tmp_path, "a" * 12, good + b'{"event_id": "torn')
    report = recover_abandoned_files(tmp_path)
    assert report.lines_kept == 3 and report.torn_lines == 1
    assert [f.key.rsplit("/", 1)[1] for f in list_local_partition(tmp_path, DAY)] == [
        f"collector-{'a' * 12}-{DAY}-000001.jsonl"
    ]
    assert landed_events(tmp_path) == [make_event(n) for n in range(3)]
    (rejection,) = rejected_records(tmp_path)
    assert rejection["raw"] == '{"event_id": "torn'
    assert "torn last line" in rejection["reason"]


def test_recovery_leaves_a_live_writers_file_alone(tmp_path):
    temp = plant_temp_file(tmp_path, "b" * 12, orjson.dumps(make_event(1)) + b"\n")
    lock_path = tmp_path / LOCKS_FOLDER / f"{'b' * 12}.lock"
    with open(lock_path, "wb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        report = recover_abandoned_files(tmp_path)
    assert report.files_published == [] and temp.exists()
    assert recover_abandoned_files(tmp_path).lines_kept == 1
    assert not os.path.exists(temp)
