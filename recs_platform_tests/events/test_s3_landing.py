from __future__ import annotations

import datetime as dt
import gzip

import orjson
import pytest

from recs_platform.events.landing import (
    CorruptFile,
    LandingFile,
    LandingWriter,
    iter_lines_recovering,
    list_local_dates,
    list_local_partition,
    partition_prefix,
)
from recs_platform.events.s3_landing import (
    list_s3_dates,
    list_s3_partition,
    open_s3_file,
    upload_landing_folder,
)

pytestmark = pytest.mark.timeout(60)

DAY = dt.date(2026, 3, 14)
OTHER_DAY = dt.date(2026, 3, 15)
PREFIX = "landing/"


def _event(number: int, day: dt.date = DAY) -> dict:
    midnight_ms = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)
    return {
        "event_id": f"evt-{day.isoformat()}-{number:05d}",
        "session_id": f"session-{number // 4}",
        "user_id": None,
        "event_type": "pageview",
        "product_action": None,
        "product_sku": None,
        "url": f"/page/{number}",
        "client_ts": midnight_ms + number * 1000,
        "server_ts": midnight_ms + number * 1000 + 25,
        "source": "test",
    }


@pytest.fixture
def local_zone(tmp_path):
    root = tmp_path / "landing"
    with LandingWriter(root, "web", file_stem="a", max_events_per_file=4) as writer:
        writer.write_many(_event(number) for number in range(10))
        writer.write_many(_event(number, OTHER_DAY) for number in range(3))
    with LandingWriter(root, "app", file_stem="b", compress=False) as writer:
        writer.write_many(_event(number) for number in range(100, 103))
    # A temporary file of a writer still at work: never uploaded, never listed.
    (root / partition_prefix(DAY) / ".web-c.jsonl.gz.tmp-1234").write_bytes(b"partial")
    return root


def test_upload_mirrors_finalized_files_and_listing_matches_local(local_zone, s3_client, s3_bucket):
    uploaded = upload_landing_folder(s3_client, local_zone, s3_bucket, PREFIX)

    local_files = list_local_partition(local_zone, DAY) + list_local_partition(
        local_zone, OTHER_DAY
    )
    assert sorted(uploaded, key=lambda f: f.key) == sorted(local_files, key=lambda f: f.key)
    assert list_s3_partition(s3_client, s3_bucket, PREFIX, DAY) == list_local_partition(
        local_zone, DAY
    )
    assert [f.key for f in list_s3_partition(s3_client, s3_bucket, PREFIX, DAY)] == [
        "events/date=2026-03-14/app-b-2026-03-14-00000.jsonl",
        "events/date=2026-03-14/web-a-2026-03-14-00000.jsonl.gz",
        "events/date=2026-03-14/web-a-2026-03-14-00001.jsonl.gz",
        "events/date=2026-03-14/web-a-2026-03-14-00002.jsonl.gz",
    ]
    assert list_s3_dates(s3_client, s3_bucket, PREFIX) == list_local_dates(local_zone)
    assert list_s3_partition(s3_client, s3_bucket, PREFIX, dt.date(2026, 3, 16)) == []


def test_listing_is_paginated_and_in_name_order(s3_client, s3_bucket):
    folder = f"{PREFIX}{partition_prefix(DAY)}"
    names = [f"fh-{number:03d}.jsonl.gz" for number in range(23)]
    for name in reversed(names):
        s3_client.put_object(Bucket=s3_bucket, Key=folder + name, Body=b"x" * len(name))
    for day in (DAY, OTHER_DAY, dt.date(2026, 4, 1)):
        s3_client.put_object(
            Bucket=s3_bucket, Key=f"{PREFIX}{partition_prefix(day)}f.jsonl", Body=b""
        )

    files = list_s3_partition(s3_client, s3_bucket, PREFIX, DAY, page_size=5)

    assert files[0] == LandingFile(partition_prefix(DAY) + "f.jsonl", 0)  # "." sorts before "h"
    assert files[1:] == [LandingFile(partition_prefix(DAY) + name, len(name)) for name in names]
    assert list_s3_dates(s3_client, s3_bucket, PREFIX, page_size=2) == [
        DAY,
        OTHER_DAY,
        dt.date(2026, 4, 1),
    ]


def test_listing_skips_what_is_not_a_finalized_file_of_that_prefix(s3_client, s3_bucket):
    folder = partition_prefix(DAY)
    keys = {
        f"{PREFIX}{folder}good.jsonl": True,
        f"{PREFIX}{folder}.good.jsonl.tmp-1": False,  # hidden temporary name
        f"{PREFIX}{folder}_SUCCESS": False,
        f"{PREFIX}{folder}notes.txt": False,
        f"{PREFIX}{folder}nested/deeper.jsonl": False,
        f"landing-old/{folder}other-prefix.jsonl": False,
        f"{folder}no-prefix.jsonl": False,
        f"{PREFIX}events/date=not-a-date/x.jsonl": False,
    }
    for key in keys:
        s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b"{}\n")

    assert list_s3_partition(s3_client, s3_bucket, PREFIX, DAY) == [
        LandingFile(f"{folder}good.jsonl", 3)
    ]
    # The prefix may be given with or without its slash; the bucket root is the empty prefix.
    assert list_s3_partition(s3_client, s3_bucket, "landing", DAY) == [
        LandingFile(f"{folder}good.jsonl", 3)
    ]
    assert list_s3_partition(s3_client, s3_bucket, "", DAY) == [
        LandingFile(f"{folder}no-prefix.jsonl", 3)
    ]
    assert list_s3_dates(s3_client, s3_bucket, PREFIX) == [DAY]


def test_open_streams_lines_of_plain_and_gzipped_files(local_zone, s3_client, s3_bucket):
    upload_landing_folder(s3_client, local_zone, s3_bucket, PREFIX)

    for landing_file in list_s3_partition(s3_client, s3_bucket, PREFIX, DAY):
        with open_s3_file(s3_client, s3_bucket, PREFIX, landing_file) as stream:
            lines = list(iter_lines_recovering(stream, landing_file.key.endswith(".gz")))
        local_bytes = (local_zone / landing_file.key).read_bytes()
        if landing_file.key.endswith(".gz"):
            local_bytes = gzip.decompress(local_bytes)
        assert [line for _, line in lines] == local_bytes.splitlines()
        assert [orjson.loads(line)["source"] for _, line in lines] == ["test"] * len(lines)


def test_open_reports_a_truncated_gzip_after_its_complete_lines(s3_client, s3_bucket):
    body = b"".join(orjson.dumps(_event(number)) + b"\n" for number in range(300))
    whole = gzip.compress(body)
    truncated = whole[: len(whole) // 2]
    key = partition_prefix(DAY) + "cut.jsonl.gz"
    s3_client.put_object(Bucket=s3_bucket, Key=PREFIX + key, Body=truncated)

    lines = []
    with (
        open_s3_file(s3_client, s3_bucket, PREFIX, LandingFile(key, len(truncated))) as stream,
        pytest.raises(CorruptFile) as corruption,
    ):
        for number, line in iter_lines_recovering(stream, compressed=True):
            lines.append((number, line))

    assert 0 < len(lines) < 300
    assert [line for _, line in lines] == body.splitlines()[: len(lines)]
    assert corruption.value.line_number == len(lines) + 1
