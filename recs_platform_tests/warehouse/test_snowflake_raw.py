"""The production load path: landing files on S3 (moto) into Snowflake (fakesnow's server)."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from recs_platform.events.contract import InvalidEvent, parse_line
from recs_platform.events.landing import LandingFile, LandingWriter, partition_prefix
from recs_platform.events.s3_landing import list_s3_partition, open_s3_file, upload_landing_folder
from recs_platform.warehouse.schema import (
    MAX_REJECTED_LINE_CHARS,
    RAW_EVENT_COLUMNS,
    REJECTED_EVENT_COLUMNS,
)
from recs_platform.warehouse.snowflake_raw import (
    _StagingTable,
    ensure_raw_tables,
    load_raw_events_partition,
)

pytestmark = [
    pytest.mark.timeout(60),
    # fakesnow's server on DuckDB 2 warns about an extra copy of each result; not ours to fix.
    pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning"),
]

DAY = dt.date(2026, 3, 14)
OTHER_DAY = dt.date(2026, 3, 13)
EMPTY_DAY = dt.date(2026, 3, 15)
PREFIX = "prod/firehose/"
EVENT_COLUMNS = ", ".join(column for column, _, _ in RAW_EVENT_COLUMNS)
REJECTED_COLUMNS = ", ".join(column for column, _, _ in REJECTED_EVENT_COLUMNS)


def _event(number: int, day: dt.date = DAY, **overrides: Any) -> dict:
    midnight_ms = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)
    event = {
        "event_id": f"evt-{day.isoformat()}-{number:05d}",
        "session_id": f"session-{number // 3}",
        "user_id": f"user-{number % 5}" if number % 2 else None,
        "event_type": "event_product" if number % 3 else "pageview",
        "product_action": "detail" if number % 3 else None,
        "product_sku": f"sku-{number % 7:03d}" if number % 3 else None,
        "url": f"/p/{number}",
        "client_ts": midnight_ms + number * 1000,
        "server_ts": midnight_ms + number * 1000 + 30,
        "source": "test",
    }
    event.update(overrides)
    return event


def _impression(number: int, **overrides: Any) -> dict:
    fields = {
        "event_type": "impression",
        "product_action": None,
        "product_sku": "sku-anchor",
        "request_id": f"req-{number}",
        "shown_skus": ["sku-a", "sku-b", "sku-c"],
        "model_name": "session-recommender",
        "model_version": "7",
        "variant": "challenger",
    }
    return _event(number, **{**fields, **overrides})


def _line(event: dict) -> bytes:
    return orjson.dumps(event)


@dataclass
class LandingZone:
    """A small landing zone written by hand, and what loading `DAY` must produce."""

    root: Path
    good_lines: dict[tuple[str, int], bytes] = field(default_factory=dict)
    rejected: dict[tuple[str, int], tuple[str, str | None]] = field(default_factory=dict)
    corrupt_files: list[str] = field(default_factory=list)


def _write_raw(root: Path, day: dt.date, name: str, content: bytes) -> str:
    folder = root / partition_prefix(day)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(content)
    return partition_prefix(day) + name


def build_landing_zone(root: Path) -> LandingZone:
    zone = LandingZone(root)

    # A gzipped file from the writer, good lines mixed with lines that break the contract.
    with_extra_field = _event(
        1,
        url="/search?q=\"caf\u00e9\" 100% \\ 'quoted' \u20ac\U0001f600",
        experiment={"arm": "b", "weights": [1, 2.5], "note": None},
    )
    main_lines = [
        _line(_event(0)),
        _line(with_extra_field),
        b'{"event_id": "evt-broken",',
        _line({k: v for k, v in _event(90).items() if k != "session_id"}),
        _line(_event(91, client_ts="1773446400000")),
        _line(_event(92, event_type="click")),
        _line(_event(2, event_type="event_product", product_action="add", product_sku="sku-9")),
        b'{"event_id": "\xff\xfe not utf-8"}',
        b"y" * (MAX_REJECTED_LINE_CHARS + 500),
        _line(_event(3)),
        # The online loop: what a carousel showed, a click on it, and a broken one of each.
        _line(_impression(4)),
        _line(_event(5, product_sku="sku-b", request_id="req-4", position=2)),
        _line(_impression(93, shown_skus=["sku-a", "sku-a"])),
        _line(_event(94, product_sku="sku-b", request_id="req-4", position=0)),
    ]
    with LandingWriter(root, "web", file_stem="main") as writer:
        for line in main_lines:
            writer.write_encoded(DAY, line + b"\n", 1)
    (main_key,) = writer.summary.files_written
    for number, line in enumerate(main_lines, start=1):
        try:
            parse_line(line)
        except InvalidEvent as error:
            raw_line = line.decode("utf-8", errors="replace")[:MAX_REJECTED_LINE_CHARS]
            zone.rejected[(main_key, number)] = (str(error), raw_line)
        else:
            zone.good_lines[(main_key, number)] = line

    # A plain file, and an older day's file that loading DAY must not touch.
    with LandingWriter(root, "app", file_stem="side", compress=False) as writer:
        writer.write_many(_event(number) for number in range(10, 13))
        writer.write_many(_event(number, OTHER_DAY) for number in range(2))
    for key in writer.summary.files_written:
        if key.startswith(partition_prefix(DAY)):
            for number, line in enumerate((root / key).read_bytes().splitlines(), start=1):
                zone.good_lines[(key, number)] = line

    # A gzip cut short: the complete lines before the cut are kept.
    cut_body = b"".join(_line(_event(number)) + b"\n" for number in range(100, 300))
    whole = gzip.compress(cut_body)
    truncated = whole[: len(whole) // 2]
    cut_key = _write_raw(root, DAY, "web-cut-2026-03-14-00000.jsonl.gz", truncated)
    readable = zlib.decompressobj(wbits=31).decompress(truncated)
    complete_lines = readable.count(b"\n")
    assert 0 < complete_lines < 200
    for number, line in enumerate(cut_body.splitlines()[:complete_lines], start=1):
        zone.good_lines[(cut_key, number)] = line
    zone.rejected[(cut_key, complete_lines + 1)] = ("corrupt file: unreadable file", None)
    zone.corrupt_files.append(cut_key)

    # Not gzip at all, despite its name.
    garbage_key = _write_raw(root, DAY, "firehose-garbage.jsonl.gz", b"this is not gzip\n\x00\x01")
    zone.rejected[(garbage_key, 1)] = ("corrupt file: unreadable file", None)
    zone.corrupt_files.append(garbage_key)

    # A torn write: the last line has no newline.
    torn_lines = [_line(_event(400)), _line(_event(401))]
    torn_key = _write_raw(
        root,
        DAY,
        "app-torn-2026-03-14-00000.jsonl",
        b"".join(line + b"\n" for line in torn_lines) + b'{"event_id": "evt-',
    )
    for number, line in enumerate(torn_lines, start=1):
        zone.good_lines[(torn_key, number)] = line
    zone.rejected[(torn_key, 3)] = ("corrupt file: last line has no newline (torn write)", None)
    zone.corrupt_files.append(torn_key)
    return zone


@dataclass
class S3Landing:
    s3_client: Any
    bucket: str
    zone: LandingZone

    def files(self, day: dt.date) -> list[LandingFile]:
        return list_s3_partition(self.s3_client, self.bucket, PREFIX, day)

    def open_file(self, landing_file: LandingFile):
        return open_s3_file(self.s3_client, self.bucket, PREFIX, landing_file)

    def load(self, conn: Any, day: dt.date = DAY, **options: Any):
        return load_raw_events_partition(conn, day, self.files(day), self.open_file, **options)


@pytest.fixture
def landing(tmp_path, s3_client, s3_bucket) -> S3Landing:
    zone = build_landing_zone(tmp_path / "landing")
    upload_landing_folder(s3_client, zone.root, s3_bucket, PREFIX)
    return S3Landing(s3_client, s3_bucket, zone)


def _rows(conn: Any, sql: str, parameters: Any = None) -> list[tuple]:
    cursor = conn.cursor()
    try:
        cursor.execute(sql, parameters)
        return cursor.fetchall()
    finally:
        cursor.close()


def _table_checksums(conn: Any) -> tuple:
    """Row count and an MD5 over every column of every row, in a fixed order, of both tables."""
    events = _rows(
        conn,
        """
        SELECT COUNT(*), MD5(LISTAGG(CONCAT_WS('|',
            event_id, session_id, COALESCE(user_id, '~'), event_type,
            COALESCE(product_action, '~'), COALESCE(product_sku, '~'), COALESCE(url, '~'),
            TO_VARCHAR(client_ts), TO_VARCHAR(server_ts), source, TO_VARCHAR(event_date),
            TO_JSON(payload), source_file, TO_VARCHAR(line_number)
        ), '\\n') WITHIN GROUP (ORDER BY event_date, source_file, line_number))
        FROM raw.events
        """,
    )
    rejected = _rows(
        conn,
        """
        SELECT COUNT(*), MD5(LISTAGG(CONCAT_WS('|',
            TO_VARCHAR(event_date), source_file, TO_VARCHAR(line_number), reason,
            COALESCE(raw_line, '~')
        ), '\\n') WITHIN GROUP (ORDER BY event_date, source_file, line_number))
        FROM raw.rejected_events
        """,
    )
    return events[0], rejected[0]


def _all_rows(conn: Any) -> tuple[list[tuple], list[tuple]]:
    return (
        _rows(
            conn,
            f"SELECT {EVENT_COLUMNS} FROM raw.events ORDER BY event_date, source_file, line_number",
        ),
        _rows(
            conn,
            f"SELECT {REJECTED_COLUMNS} FROM raw.rejected_events "
            "ORDER BY event_date, source_file, line_number",
        ),
    )


def test_loads_a_day_from_s3_with_rejections_and_corrupt_files(landing, snowflake_conn):
    zone = landing.zone
    files = landing.files(DAY)

    load = landing.load(snowflake_conn)

    assert load.event_date == DAY
    assert load.rows == len(zone.good_lines)
    assert load.rejected_rows == len(zone.rejected)
    assert load.files == len(files) == 5
    assert load.bytes == sum(f.size for f in files) > 0
    assert sorted(load.corrupt_files) == sorted(zone.corrupt_files)

    events = _rows(
        snowflake_conn,
        f"SELECT {EVENT_COLUMNS} FROM raw.events WHERE event_date = %s "
        "ORDER BY source_file, line_number",
        (DAY,),
    )
    assert [(row[-2], row[-1]) for row in events] == sorted(zone.good_lines)
    for row in events:
        line = zone.good_lines[(row[-2], row[-1])]
        event = orjson.loads(line)
        assert row[:10] == tuple(event[name] for name, _, _ in RAW_EVENT_COLUMNS[:10])
        assert row[10] == DAY
        # The payload is the whole line, unknown fields included.
        assert orjson.loads(row[11]) == event

    rejected = _rows(
        snowflake_conn,
        f"SELECT {REJECTED_COLUMNS} FROM raw.rejected_events ORDER BY source_file, line_number",
    )
    assert [(row[1], row[2]) for row in rejected] == sorted(zone.rejected)
    for event_date, source_file, line_number, reason, raw_line in rejected:
        expected_reason, expected_raw_line = zone.rejected[(source_file, line_number)]
        assert event_date == DAY
        assert reason.startswith(expected_reason)
        assert raw_line == expected_raw_line


def test_rejections_read_like_the_contract(landing, snowflake_conn):
    landing.load(snowflake_conn)
    main_key = next(key for key, _ in landing.zone.rejected if "web-main" in key)

    rejected = _rows(
        snowflake_conn,
        "SELECT line_number, reason, raw_line FROM raw.rejected_events "
        "WHERE source_file = %s ORDER BY line_number",
        (main_key,),
    )

    assert [(line_number, reason) for line_number, reason, _ in rejected] == [
        (3, "invalid JSON"),
        (4, "session_id missing or not a non-empty string"),
        (5, "client_ts missing or not an integer (epoch ms)"),
        (6, "event_type not one of pageview, event_product, impression"),
        (8, "invalid JSON"),
        (9, "invalid JSON"),
        (13, "impression needs shown_skus: a non-empty list of distinct non-empty strings"),
        (14, "position not an integer from 1 to 2147483647 or null"),
    ]
    raw_lines = {line_number: raw_line for line_number, _, raw_line in rejected}
    assert raw_lines[3] == '{"event_id": "evt-broken",'
    assert raw_lines[8] == '{"event_id": "\ufffd\ufffd not utf-8"}'
    assert raw_lines[9] == "y" * MAX_REJECTED_LINE_CHARS


def test_corrupt_file_keeps_the_lines_before_the_break(landing, snowflake_conn):
    landing.load(snowflake_conn)
    cut_key = next(key for key in landing.zone.corrupt_files if "web-cut" in key)

    kept = _rows(
        snowflake_conn,
        "SELECT COUNT(*), MIN(line_number), MAX(line_number) FROM raw.events "
        "WHERE source_file = %s",
        (cut_key,),
    )
    breaks = _rows(
        snowflake_conn,
        "SELECT line_number, reason, raw_line FROM raw.rejected_events WHERE source_file = %s",
        (cut_key,),
    )

    ((count, first, last),) = kept
    assert count > 0 and first == 1 and last == count
    ((line_number, reason, raw_line),) = breaks
    assert line_number == count + 1
    assert reason.startswith("corrupt file: unreadable file: EOFError")
    assert raw_line is None


def test_payload_is_the_untouched_line_as_a_variant(landing, snowflake_conn):
    landing.load(snowflake_conn)

    (row,) = _rows(
        snowflake_conn,
        "SELECT payload:experiment:arm::VARCHAR, payload:experiment:weights[1]::FLOAT, "
        "payload:url::VARCHAR, url, payload FROM raw.events WHERE event_id = %s",
        (f"evt-{DAY.isoformat()}-00001",),
    )

    arm, weight, payload_url, url, payload = row
    assert (arm, weight) == ("b", 2.5)
    assert payload_url == url == "/search?q=\"caf\u00e9\" 100% \\ 'quoted' \u20ac\U0001f600"
    assert orjson.loads(payload)["experiment"] == {"arm": "b", "weights": [1, 2.5], "note": None}


def test_an_impression_and_its_click_keep_their_fields_in_the_payload(landing, snowflake_conn):
    """What dbt reads on Snowflake: payload:request_id, payload:shown_skus, payload:position."""
    landing.load(snowflake_conn)

    rows = _rows(
        snowflake_conn,
        "SELECT event_type, product_sku, payload:request_id::VARCHAR, "
        "payload:shown_skus[1]::VARCHAR, ARRAY_SIZE(payload:shown_skus), "
        "payload:model_version::VARCHAR, payload:variant::VARCHAR, payload:position::INTEGER "
        "FROM raw.events WHERE payload:request_id::VARCHAR = 'req-4' ORDER BY line_number",
    )

    assert rows == [
        ("impression", "sku-anchor", "req-4", "sku-b", 3, "7", "challenger", None),
        ("event_product", "sku-b", "req-4", None, None, None, None, 2),
    ]


def test_loading_twice_leaves_the_tables_as_loading_once(landing, snowflake_conn):
    landing.load(snowflake_conn, OTHER_DAY)
    landing.load(snowflake_conn)
    once = _table_checksums(snowflake_conn)
    rows_once = _all_rows(snowflake_conn)

    # Again, in tiny chunks this time: chunking must not change the result either.
    again = landing.load(snowflake_conn, chunk_rows=3, chunk_chars=2_000)

    assert _table_checksums(snowflake_conn) == once
    assert _all_rows(snowflake_conn) == rows_once
    assert once[0][0] == again.rows + 2 and once[1][0] == again.rejected_rows
    assert _rows(
        snowflake_conn, "SELECT COUNT(*) FROM raw.events WHERE event_date = %s", (OTHER_DAY,)
    ) == [(2,)]


def test_an_empty_day_loads_zero_rows(landing, snowflake_conn):
    landing.load(snowflake_conn)
    before = _table_checksums(snowflake_conn)

    load = landing.load(snowflake_conn, EMPTY_DAY)

    assert (load.rows, load.rejected_rows, load.files, load.bytes) == (0, 0, 0, 0)
    assert load.corrupt_files == []
    assert _table_checksums(snowflake_conn) == before
    counts = _rows(
        snowflake_conn,
        "SELECT (SELECT COUNT(*) FROM raw.events WHERE event_date = %(day)s), "
        "(SELECT COUNT(*) FROM raw.rejected_events WHERE event_date = %(day)s)",
        {"day": EMPTY_DAY},
    )
    assert counts == [(0, 0)]


def test_a_late_file_is_picked_up_when_its_day_is_reloaded(landing, snowflake_conn):
    first = landing.load(snowflake_conn, OTHER_DAY)
    landing.load(snowflake_conn)
    day_before = _rows(
        snowflake_conn, "SELECT COUNT(*) FROM raw.events WHERE event_date = %s", (DAY,)
    )

    # A producer that was offline delivers its file for the old day, plus one bad line.
    late_root = landing.zone.root.parent / "late"
    with LandingWriter(late_root, "kiosk", file_stem="late", compress=True) as writer:
        writer.write_many(_event(number, OTHER_DAY) for number in range(500, 504))
        writer.write_encoded(OTHER_DAY, b"not json\n", 1)
    upload_landing_folder(landing.s3_client, late_root, landing.bucket, PREFIX)

    second = landing.load(snowflake_conn, OTHER_DAY)

    assert (first.rows, first.files) == (2, 1)
    assert (second.rows, second.rejected_rows, second.files) == (6, 1, 2)
    ids = _rows(
        snowflake_conn,
        "SELECT event_id FROM raw.events WHERE event_date = %s ORDER BY event_id",
        (OTHER_DAY,),
    )
    assert [event_id for (event_id,) in ids] == sorted(
        [_event(n, OTHER_DAY)["event_id"] for n in (0, 1, 500, 501, 502, 503)]
    )
    assert (
        _rows(snowflake_conn, "SELECT COUNT(*) FROM raw.events WHERE event_date = %s", (DAY,))
        == day_before
    )


def test_a_failed_load_leaves_the_tables_and_no_staging_behind(landing, snowflake_conn):
    landing.load(snowflake_conn)
    before = _all_rows(snowflake_conn)
    opened = []

    def failing_open(landing_file: LandingFile):
        opened.append(landing_file.key)
        if len(opened) == 3:
            raise ConnectionError("S3 went away")
        return landing.open_file(landing_file)

    with pytest.raises(ConnectionError, match="S3 went away"):
        load_raw_events_partition(snowflake_conn, DAY, landing.files(DAY), failing_open)

    assert _all_rows(snowflake_conn) == before
    tables = _rows(
        snowflake_conn,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'RAW' "
        "ORDER BY table_name",
    )
    assert tables == [("EVENTS",), ("REJECTED_EVENTS",)]


class _FailingInsertConnection:
    """Passes everything through to a real connection, but the insert into `failing_table`."""

    def __init__(self, conn: Any, failing_table: str):
        self.conn = conn
        self.failing_table = failing_table

    def cursor(self):
        cursor = self.conn.cursor()
        execute = cursor.execute

        def failing_execute(sql: str, *args: Any, **kwargs: Any):
            if sql.startswith(f"INSERT INTO {self.failing_table} "):
                raise RuntimeError("warehouse refused the insert")
            return execute(sql, *args, **kwargs)

        cursor.execute = failing_execute
        return cursor


def test_the_day_is_replaced_in_one_transaction(landing, snowflake_conn):
    landing.load(snowflake_conn)
    before = _all_rows(snowflake_conn)
    failing = _FailingInsertConnection(snowflake_conn, "raw.rejected_events")

    # By then raw.events has lost and regained the day: the rollback must undo both.
    with pytest.raises(RuntimeError, match="refused"):
        load_raw_events_partition(failing, DAY, landing.files(DAY), landing.open_file)

    assert _all_rows(snowflake_conn) == before


def test_raw_tables_have_the_snowflake_types(snowflake_conn):
    ensure_raw_tables(snowflake_conn)
    ensure_raw_tables(snowflake_conn)

    columns = _rows(
        snowflake_conn,
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = 'RAW' ORDER BY table_name, ordinal_position",
    )

    events = [
        (name, kind, nullable) for table, name, kind, nullable in columns if table == "EVENTS"
    ]
    assert [name.lower() for name, _, _ in events] == [c for c, _, _ in RAW_EVENT_COLUMNS]
    assert dict((name, kind) for name, kind, _ in events)["PAYLOAD"] == "VARIANT"
    assert [nullable for _, _, nullable in events] == [
        "NO" if "NOT NULL" in snowflake_type else "YES"
        for _, _, snowflake_type in RAW_EVENT_COLUMNS
    ]
    rejected = [name.lower() for table, name, _, _ in columns if table == "REJECTED_EVENTS"]
    assert rejected == [c for c, _, _ in REJECTED_EVENT_COLUMNS]


def test_a_snowflake_resource_for_the_fake_drives_the_loader(
    landing, snowflake_resource, snowflake_conn
):
    """How the Dagster asset calls the loader: a connection from `SnowflakeResource`."""
    with snowflake_resource.get_connection() as conn:
        load = landing.load(conn)

    # Committed: another session sees the rows.
    assert _rows(snowflake_conn, "SELECT COUNT(*) FROM raw.events") == [(load.rows,)]
    assert load.rows == len(landing.zone.good_lines)


class _RecordingCursor:
    def __init__(self):
        self.batches: list[list[tuple]] = []

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        self.batches.append(list(rows))


def test_staging_flushes_in_bounded_chunks():
    cursor = _RecordingCursor()
    staging = _StagingTable(cursor, "raw.stage", ("a",), max_rows=4, max_chars=100)

    for number in range(10):
        staging.add((number,), chars=10)
    staging.add(("big",), chars=95)  # would pass the char bound: flushes what is buffered first
    staging.add(("bigger",), chars=500)  # alone over the bound: still sent, on its own
    staging.flush()

    assert cursor.batches == [
        [(0,), (1,), (2,), (3,)],
        [(4,), (5,), (6,), (7,)],
        [(8,), (9,)],
        [("big",)],
        [("bigger",)],
    ]
    assert staging.total_rows == 12


def test_open_file_streams_are_closed(landing, snowflake_conn):
    streams: list[io.IOBase] = []

    def tracking_open(landing_file: LandingFile):
        stream = landing.open_file(landing_file)
        streams.append(stream)
        return stream

    load_raw_events_partition(snowflake_conn, DAY, landing.files(DAY), tracking_open)

    assert len(streams) == 5 and all(stream.closed for stream in streams)


def test_loader_refuses_server_side_binding():
    class QmarkConnection:
        is_pyformat = False

    with pytest.raises(ValueError, match="pyformat"):
        load_raw_events_partition(QmarkConnection(), DAY, [], lambda landing_file: None)
