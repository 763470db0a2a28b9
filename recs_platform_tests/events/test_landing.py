import datetime as dt
import gzip
import io

import orjson
import pytest

from recs_platform.events.landing import (
    CorruptFile,
    LandingWriter,
    arrival_date,
    iter_lines_recovering,
    list_local_dates,
    list_local_partition,
)
from recs_platform_tests.factories import DAY, NOON_MS, make_event, truncated_gzip


def test_events_land_in_the_folder_of_their_arrival_day(tmp_path):
    before_midnight = make_event(
        1,
        server_ts=int(
            dt.datetime(2026, 11, 3, 23, 59, 59, 999000, tzinfo=dt.UTC).timestamp() * 1000
        ),
    )
    after_midnight = make_event(2, server_ts=before_midnight["server_ts"] + 1)
    with LandingWriter(tmp_path, "test") as writer:
        writer.write_many([before_midnight, after_midnight])
    assert list_local_dates(tmp_path) == [DAY, DAY + dt.timedelta(days=1)]
    for day, event in ((DAY, before_midnight), (DAY + dt.timedelta(days=1), after_midnight)):
        (landing_file,) = list_local_partition(tmp_path, day)
        assert landing_file.key.startswith(f"events/date={day.isoformat()}/test-")
        lines = gzip.decompress((tmp_path / landing_file.key).read_bytes()).splitlines()
        assert [orjson.loads(line) for line in lines] == [event]


def test_arrival_date_is_utc():
    assert arrival_date(0) == dt.date(1970, 1, 1)
    assert arrival_date(86_400_000 - 1) == dt.date(1970, 1, 1)
    assert arrival_date(86_400_000) == dt.date(1970, 1, 2)


def test_an_unfinished_file_is_invisible_and_an_aborted_one_leaves_nothing(tmp_path):
    writer = LandingWriter(tmp_path, "test", compress=False)
    writer.write(make_event(1))
    folder = tmp_path / f"events/date={DAY.isoformat()}"
    assert [path.name.startswith(".") for path in folder.iterdir()] == [True]
    assert list_local_partition(tmp_path, DAY) == []
    writer.abort()
    assert list(folder.iterdir()) == []


def test_files_rotate_and_a_crash_inside_the_block_publishes_nothing(tmp_path):
    with LandingWriter(tmp_path, "test", max_events_per_file=2, compress=False) as writer:
        writer.write_many(make_event(n) for n in range(5))
    assert [f.key[-11:] for f in list_local_partition(tmp_path, DAY)] == [
        "00000.jsonl",
        "00001.jsonl",
        "00002.jsonl",
    ]
    with pytest.raises(RuntimeError), LandingWriter(tmp_path, "crash") as writer:
        writer.write(make_event(9))
        raise RuntimeError("producer died")
    assert len(list_local_partition(tmp_path, DAY)) == 3
    assert not [p for p in (tmp_path / f"events/date={DAY}").iterdir() if p.name.startswith(".")]


def test_finalized_files_are_never_overwritten(tmp_path):
    for _ in range(2):
        with LandingWriter(tmp_path, "import", file_stem="same", skip_existing=True) as writer:
            writer.write(make_event(1))
    assert writer.summary.files_written == []
    assert len(writer.summary.files_skipped) == 1
    with pytest.raises(FileExistsError), LandingWriter(tmp_path, "import", file_stem="same") as w:
        w.write(make_event(1))


def test_the_recovering_reader_keeps_complete_lines_of_a_damaged_file():
    events = [make_event(n) for n in range(200)]
    stream = io.BytesIO(truncated_gzip(events))
    recovered = []
    with pytest.raises(CorruptFile) as damage:
        for number, line in iter_lines_recovering(stream, compressed=True):
            recovered.append((number, orjson.loads(line)))
    assert 0 < len(recovered) < 200
    assert recovered == [(n + 1, events[n]) for n in range(len(recovered))]
    assert damage.value.line_number == len(recovered) + 1


def test_a_torn_last_line_is_reported_not_returned():
    stream = io.BytesIO(b'{"a": 1}\n{"a": 2')
    lines = []
    with pytest.raises(CorruptFile, match="torn write") as damage:
        lines.extend(iter_lines_recovering(stream, compressed=False))
    assert lines == [(1, b'{"a": 1}')]
    assert damage.value.line_number == 2


def _events_over_days(days: int, per_day: int) -> list[dict]:
    """`per_day` events a day over `days` days, in time order but each shifted by up to ±90 s,
    so the writer sees the days overlap around midnight (as the Coveo file does)."""
    events = []
    for number in range(days * per_day):
        server_ts = NOON_MS + number * (86_400_000 // per_day) + (number * 7919 % 181 - 90) * 1000
        events.append(make_event(number, server_ts=server_ts))
    return events


def _landed(root) -> dict[dt.date, list[dict]]:
    """Every landed event by day, reading each day's files in name order (as the loaders do)."""
    landed = {}
    for day in list_local_dates(root):
        landed[day] = []
        for landing_file in list_local_partition(root, day):
            with open(root / landing_file.key, "rb") as stream:
                landed[day] += [
                    orjson.loads(line) for _, line in iter_lines_recovering(stream, True)
                ]
    return landed


def test_a_bounded_writer_keeps_few_days_open_and_lands_every_event_once(tmp_path):
    events = _events_over_days(days=60, per_day=48)
    most_open = 0
    with LandingWriter(tmp_path, "import", file_stem="bounded", max_open_days=3) as writer:
        for event in events:
            writer.write(event)
            most_open = max(most_open, len(writer.open_days))
    assert most_open == 3  # days overlap around midnight, so two or three are open at times
    assert writer.summary.days_reopened == 0
    landed = _landed(tmp_path)
    assert len(landed) == 61
    by_day: dict[dt.date, list[dict]] = {}
    for event in events:
        by_day.setdefault(arrival_date(event["server_ts"]), []).append(event)
    assert landed == by_day  # each event once, on its day, in the order written
    # Same names as an unbounded writer: one file a day, `-00000`.
    assert all(key.endswith("-00000.jsonl.gz") for key in writer.summary.files_written)
    assert len(writer.summary.files_written) == 61


def test_an_unbounded_writer_keeps_every_day_open_until_it_closes(tmp_path):
    with LandingWriter(tmp_path, "test") as writer:
        writer.write_many(_events_over_days(days=10, per_day=4))
        assert len(writer.open_days) == 11


def test_an_event_for_a_day_already_closed_goes_to_its_next_file(tmp_path):
    day_ms = 86_400_000
    first, second, third = (
        make_event(n, server_ts=NOON_MS + offset * day_ms) for n, offset in enumerate((0, 1, 2))
    )
    late = make_event(3, server_ts=NOON_MS + 60_000)  # day 0 again, after day 0 was closed
    with LandingWriter(tmp_path, "import", file_stem="late", max_open_days=2) as writer:
        writer.write_many([first, second])
        assert writer.open_days == [DAY, DAY + dt.timedelta(days=1)]
        writer.write(third)  # day 0 is the least recently written: closed, and visible
        assert writer.open_days == [DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)]
        assert len(list_local_partition(tmp_path, DAY)) == 1
        writer.write(late)  # closes day 1, opens day 0's next file
        assert writer.open_days == [DAY + dt.timedelta(days=2), DAY]
    assert writer.summary.days_reopened == 1
    assert [f.key[-14:] for f in list_local_partition(tmp_path, DAY)] == [
        "00000.jsonl.gz",
        "00001.jsonl.gz",
    ]
    assert _landed(tmp_path) == {
        DAY: [first, late],
        DAY + dt.timedelta(days=1): [second],
        DAY + dt.timedelta(days=2): [third],
    }


def test_a_bounded_import_that_crashes_is_completed_by_a_rerun(tmp_path):
    events = _events_over_days(days=12, per_day=6)
    crashing = LandingWriter(tmp_path, "import", file_stem="same", max_open_days=2)
    with pytest.raises(RuntimeError), crashing:
        crashing.write_many(events[:40])
        raise RuntimeError("importer died")
    published = {key for day in list_local_dates(tmp_path) for key in _keys(tmp_path, day)}
    assert 0 < len(published) < 13  # the days already finished stay; the open ones are dropped
    with LandingWriter(
        tmp_path, "import", file_stem="same", max_open_days=2, skip_existing=True
    ) as rerun:
        rerun.write_many(events)
    assert set(rerun.summary.files_skipped) == published
    assert sorted(e["event_id"] for d in _landed(tmp_path).values() for e in d) == sorted(
        e["event_id"] for e in events
    )


def _keys(root, day: dt.date) -> list[str]:
    return [landing_file.key for landing_file in list_local_partition(root, day)]


def test_max_open_days_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="max_open_days"):
        LandingWriter(tmp_path, "test", max_open_days=0)
