import datetime as dt

import duckdb
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recs_platform.events.contract import InvalidEvent, parse_line
from recs_platform.events.landing import list_local_partition
from recs_platform.warehouse.duckdb_raw import load_raw_events_partition
from recs_platform_tests.factories import (
    BAD_LINES,
    DAY,
    GOOD_CAROUSEL_LINES,
    make_click,
    make_event,
    make_impression,
    truncated_gzip,
    write_good_file,
    write_raw_file,
)

TABLE_CHECKSUM = """
SELECT count(*), md5(string_agg(t::VARCHAR, '|' ORDER BY source_file, line_number))
FROM raw.{table} AS t WHERE event_date = ?
"""


@pytest.fixture
def conn(tmp_path):
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield connection
    connection.close()


def load(conn, root, day=DAY):
    return load_raw_events_partition(conn, root, day, list_local_partition(root, day))


def checksums(conn, day=DAY):
    return [
        conn.execute(TABLE_CHECKSUM.format(table=table), [day]).fetchone()
        for table in ("events", "rejected_events")
    ]


def test_a_day_is_loaded_with_every_contract_column_and_the_untouched_payload(conn, tmp_path):
    events = [make_event(n, user_id="u-9" if n == 0 else None, coupon="X1") for n in range(6)]
    (key,) = write_good_file(tmp_path, events)
    result = load(conn, tmp_path)
    assert (result.rows, result.rejected_rows, result.files) == (6, 0, 1)
    rows = conn.execute(
        "SELECT event_id, session_id, user_id, event_type, product_action, product_sku, url,"
        " client_ts, server_ts, source, event_date, payload, source_file, line_number"
        " FROM raw.events ORDER BY line_number"
    ).fetchall()
    first = events[0]
    assert rows[0] == (
        first["event_id"],
        first["session_id"],
        "u-9",
        "event_product",
        "detail",
        first["product_sku"],
        first["url"],
        first["client_ts"],
        first["server_ts"],
        "test",
        DAY,
        orjson.dumps(first).decode(),
        key,
        1,
    )
    assert [row[-1] for row in rows] == [1, 2, 3, 4, 5, 6]
    assert orjson.loads(rows[3][11])["coupon"] == "X1"


def test_an_impression_and_its_click_land_with_their_fields_in_the_payload(conn, tmp_path):
    impression = make_impression(1)
    click = make_click(2, request_id=impression["request_id"])
    write_good_file(tmp_path, [impression, click])
    assert load(conn, tmp_path).rows == 2
    rows = conn.execute(
        "SELECT event_type, product_action, product_sku,"
        " payload->>'$.request_id', payload->>'$.model_name', payload->>'$.model_version',"
        " payload->>'$.variant', CAST(payload->'$.shown_skus' AS VARCHAR[]),"
        " CAST(payload->>'$.position' AS INTEGER)"
        " FROM raw.events ORDER BY line_number"
    ).fetchall()
    assert rows == [
        (
            "impression",
            None,
            "sku-0001",
            "req-1",
            "session-recommender",
            "3",
            "champion",
            ["sku-0004", "sku-0002", "sku-0006"],
            None,
        ),
        ("event_product", "detail", "sku-0002", "req-1", None, None, None, None, 2),
    ]


def test_the_sql_rules_give_the_same_verdicts_as_the_python_contract(conn, tmp_path):
    lines = [line for line, _ in BAD_LINES] + [orjson.dumps(make_event(40)), *GOOD_CAROUSEL_LINES]
    write_raw_file(tmp_path, DAY, "mixed.jsonl", b"\n".join(lines) + b"\n")
    load(conn, tmp_path)
    sql_reasons = dict(
        conn.execute("SELECT line_number, reason FROM raw.rejected_events").fetchall()
    )
    for number, line in enumerate(lines, start=1):
        try:
            parse_line(line)
            python_reason = None
        except InvalidEvent as error:
            python_reason = str(error)
        assert sql_reasons.get(number) == python_reason, line
    assert conn.execute("SELECT count(*) FROM raw.events").fetchone() == (
        1 + len(GOOD_CAROUSEL_LINES),
    )


def test_bad_lines_never_hide_good_ones_and_are_kept_with_file_line_and_text(conn, tmp_path):
    good = [make_event(n) for n in range(3)]
    content = b"\n".join(
        [orjson.dumps(good[0]), b"{oops", orjson.dumps(good[1]), b"\xff\xfe", orjson.dumps(good[2])]
    )
    key = write_raw_file(tmp_path, DAY, "bad.jsonl", content + b"\n")
    result = load(conn, tmp_path)
    assert (result.rows, result.rejected_rows) == (3, 2)
    assert conn.execute(
        "SELECT source_file, line_number, reason, raw_line FROM raw.rejected_events"
        " ORDER BY line_number"
    ).fetchall() == [
        (key, 2, "invalid JSON", "{oops"),
        (key, 4, "not UTF-8 text", "\ufffd\ufffd"),
    ]
    assert conn.execute("SELECT line_number FROM raw.events ORDER BY 1").fetchall() == [
        (1,),
        (3,),
        (5,),
    ]


def test_a_truncated_gzip_keeps_its_complete_lines_and_garbage_is_reported(conn, tmp_path):
    events = [make_event(n) for n in range(300)]
    truncated_key = write_raw_file(tmp_path, DAY, "cut.jsonl.gz", truncated_gzip(events))
    garbage_key = write_raw_file(tmp_path, DAY, "noise.jsonl.gz", b"\x00\x13 not gzip at all")
    write_good_file(tmp_path, [make_event(1000)])
    result = load(conn, tmp_path)
    assert sorted(result.corrupt_files) == sorted([truncated_key, garbage_key])
    kept = conn.execute(
        "SELECT count(*), max(line_number) FROM raw.events WHERE source_file = ?", [truncated_key]
    ).fetchone()
    assert 0 < kept[0] < 300 and kept[0] == kept[1]
    rejected = dict(conn.execute("SELECT source_file, reason FROM raw.rejected_events").fetchall())
    assert rejected[truncated_key].startswith("corrupt file: unreadable file: EOFError")
    assert rejected[garbage_key].startswith("corrupt file: unreadable file: BadGzipFile")
    assert result.rows == kept[0] + 1


def test_loading_a_day_twice_gives_exactly_the_table_of_once(conn, tmp_path):
    write_good_file(tmp_path, [make_event(n) for n in range(50)])
    write_raw_file(tmp_path, DAY, "bad.jsonl", b"nope\n")
    load(conn, tmp_path)
    once = checksums(conn)
    load(conn, tmp_path)
    assert checksums(conn) == once
    assert once[0][0] == 50 and once[1][0] == 1


def test_reloading_a_day_picks_up_a_late_file_and_leaves_other_days_alone(conn, tmp_path):
    other_day = DAY - dt.timedelta(days=1)
    write_good_file(
        tmp_path,
        [make_event(n, server_ts=make_event(n)["server_ts"] - 86_400_000) for n in range(4)],
    )
    write_good_file(tmp_path, [make_event(n) for n in range(5)])
    load(conn, tmp_path, other_day)
    assert load(conn, tmp_path).rows == 5
    before = checksums(conn, other_day)
    write_good_file(tmp_path, [make_event(n) for n in range(100, 103)], producer="late")
    assert load(conn, tmp_path).rows == 8
    assert checksums(conn, other_day) == before


def test_an_empty_day_succeeds_with_zero_rows_and_empties_the_partition(conn, tmp_path):
    result = load(conn, tmp_path, DAY + dt.timedelta(days=30))
    assert (result.rows, result.rejected_rows, result.files, result.bytes) == (0, 0, 0, 0)
    assert conn.execute("SELECT count(*) FROM raw.events").fetchone() == (0,)


_ANY_JSON_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-2, max_value=3),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        ["", "pageview", "event_product", "impression", "detail", "add", "purchase", "x"]
    ),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=2),
    st.lists(st.sampled_from(["", "a", "b", None, 1]), max_size=3),
)
_BASE_EVENTS = [make_event(5), make_impression(5), make_click(5)]
_FIELDS = sorted({field for event in _BASE_EVENTS for field in event})


@settings(max_examples=120, deadline=None)
@given(
    base=st.sampled_from(_BASE_EVENTS),
    changes=st.dictionaries(st.sampled_from(_FIELDS), _ANY_JSON_VALUE, max_size=3),
    removed=st.sets(st.sampled_from(_FIELDS), max_size=2),
)
def test_sql_and_python_agree_on_random_events(tmp_path_factory, base, changes, removed):
    root = tmp_path_factory.mktemp("landing")
    event = {k: v for k, v in {**base, **changes}.items() if k not in removed}
    line = orjson.dumps(event)
    write_raw_file(root, DAY, "one.jsonl", line + b"\n")
    with duckdb.connect() as memory:
        load(memory, root)
        rejected = memory.execute("SELECT reason FROM raw.rejected_events").fetchall()
    try:
        parse_line(line)
        expected = []
    except InvalidEvent as error:
        expected = [(str(error),)]
    assert rejected == expected
