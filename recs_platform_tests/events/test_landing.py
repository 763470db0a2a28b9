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
from recs_platform_tests.factories import DAY, make_event, truncated_gzip


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
