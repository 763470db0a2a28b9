import asyncio
import fcntl
import os
import time

import orjson

from recs_platform.collection.durable import DurableLandingWriter
from recs_platform.collection.landing_files import (
    EVENTS_PREFIX,
    JOURNAL_FOLDER,
    LOCKS_FOLDER,
    recover_abandoned_files,
)
from recs_platform.events.landing import list_local_partition
from recs_platform_tests.collection.servers import (
    events_after_a_crash,
    landed_events,
    plant_journal,
    rejected_records,
)
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


def test_an_acknowledged_event_survives_a_crash_before_its_file_is_published(tmp_path):
    async def scenario():
        writer = DurableLandingWriter(tmp_path / "landing", rotate_seconds=3600)
        await writer.start()
        await writer.append([make_event(1)])
        after_a_crash = events_after_a_crash(tmp_path / "landing", tmp_path)
        assert list_local_partition(tmp_path / "landing", DAY) == []
        await writer.stop()
        return after_a_crash

    assert run(scenario()) == [make_event(1)]
    assert landed_events(tmp_path / "landing") == [make_event(1)]
    assert list((tmp_path / "landing" / JOURNAL_FOLDER).iterdir()) == []


async def first_published(root, within_s: float = 30.0) -> int:
    """How many landing files of DAY are published once the first is (or `within_s` passed;
    generous: a loaded CI machine is slow)."""
    deadline = time.monotonic() + within_s
    while not list_local_partition(root, DAY) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return len(list_local_partition(root, DAY))


def test_files_rotate_by_size_and_by_age(tmp_path):
    # Each event is a line of 260 bytes. Acknowledgements go before lines are written, so how
    # many groups share a segment depends on the machine's pace: a segment ends at its size or
    # age once all its groups are written, and files are counted before the writer stops.
    by_size, by_age = tmp_path / "by-size", tmp_path / "by-age"

    async def scenario():
        # No segment gets old here: a file published before the writer stops ended by size.
        writer = DurableLandingWriter(by_size, rotate_bytes=600, rotate_seconds=3600.0)
        await writer.start()
        for n in range(6):
            await writer.append([make_event(n)])
        published_by_size = await first_published(by_size)
        await writer.stop()
        # No file gets large here: one published before the writer stops ended by age.
        writer = DurableLandingWriter(by_age, rotate_bytes=1 << 30, rotate_seconds=1.0)
        await writer.start()
        await writer.append([make_event(99)])
        published_by_age = await first_published(by_age)
        await writer.stop()
        return published_by_size, published_by_age

    published_by_size, published_by_age = run(scenario())
    assert published_by_size >= 1 and published_by_age == 1
    assert len(landed_events(by_size)) == 6 and len(landed_events(by_age)) == 1


def test_rejections_are_kept_apart_from_events(tmp_path):
    async def scenario():
        writer = DurableLandingWriter(tmp_path)
        await writer.start()
        await writer.append([], [b'{"reason": "bad"}\n'], make_event(0)["server_ts"])
        await writer.stop()

    run(scenario())
    assert landed_events(tmp_path) == []
    assert rejected_records(tmp_path) == [{"reason": "bad"}]


def prepared_group(number: int, events: list[dict]) -> tuple:
    """A group as the event loop sends it: prepared lines (no pixel requests)."""
    lines = b"".join(orjson.dumps(event) + b"\n" for event in events)
    return (number, [], [((EVENTS_PREFIX, DAY), lines)])


def test_recovery_lands_the_journaled_groups_and_rejects_a_torn_message(tmp_path):
    groups = [prepared_group(n, [make_event(n)]) for n in range(3)]
    # A message cut short, then the zeros the journal was filled with ahead of it.
    torn_tail = b"\x40\x00\x00\x00\x80\x05" + bytes(4096)
    journal = plant_journal(tmp_path, "a" * 12, groups, torn_tail=torn_tail)
    report = recover_abandoned_files(tmp_path)
    assert report.lines_kept == 3 and report.torn_lines == 1
    assert [f.key.rsplit("/", 1)[1] for f in list_local_partition(tmp_path, DAY)] == [
        f"collector-{'a' * 12}-{DAY}-000001.jsonl"
    ]
    assert landed_events(tmp_path) == [make_event(n) for n in range(3)]
    (rejection,) = rejected_records(tmp_path)
    assert "torn last message" in rejection["reason"] and rejection["source"] == "recovery"
    assert rejection["raw"].startswith("@\x00\x00\x00")
    assert not journal.exists() and not (tmp_path / LOCKS_FOLDER / f"{'a' * 12}.lock").exists()


def test_recovery_does_not_land_again_what_the_dead_writer_published(tmp_path):
    writer_id = "e" * 12
    later_day = DAY.replace(day=DAY.day + 1)
    other_day = make_event(9, server_ts=make_event(9)["server_ts"] + 86_400_000)
    group = (1, [], [((EVENTS_PREFIX, DAY), orjson.dumps(make_event(1)) + b"\n")])
    group_2 = (2, [], [((EVENTS_PREFIX, later_day), orjson.dumps(other_day) + b"\n")])
    plant_journal(tmp_path, writer_id, [group, group_2])
    # The writer had published the first day's file of this segment, not the second's.
    published = tmp_path / f"events/date={DAY}/collector-{writer_id}-{DAY}-000001.jsonl"
    published.parent.mkdir(parents=True)
    published.write_bytes(orjson.dumps(make_event(1)) + b"\n")
    report = recover_abandoned_files(tmp_path)
    assert report.files_published == [
        f"events/date={later_day}/collector-{writer_id}-{later_day}-000001.jsonl"
    ]
    assert sorted(e["event_id"] for e in landed_events(tmp_path)) == [
        make_event(1)["event_id"],
        make_event(9)["event_id"],
    ]


def test_recovery_leaves_a_live_writers_journal_alone(tmp_path):
    journal = plant_journal(tmp_path, "b" * 12, [prepared_group(1, [make_event(1)])])
    lock_path = tmp_path / LOCKS_FOLDER / f"{'b' * 12}.lock"
    with open(lock_path, "wb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        report = recover_abandoned_files(tmp_path)
    assert report.files_published == [] and journal.exists()
    assert recover_abandoned_files(tmp_path).lines_kept == 1
    assert not os.path.exists(journal)
