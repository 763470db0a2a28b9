import csv
import datetime as dt
from pathlib import Path

import duckdb
import orjson
import pytest

from recs_platform.events.contract import parse_line
from recs_platform.events.landing import (
    iter_lines_recovering,
    list_local_dates,
    list_local_partition,
)
from recs_platform.importers import coveo
from recs_platform.importers.coveo import COVEO_COLUMNS, CoveoFormatError, import_coveo
from recs_platform.warehouse.duckdb_raw import load_raw_events_partition

SAMPLE = Path(__file__).parents[1] / "fixtures" / "coveo_browsing_sample.csv"


def landed_events(root: Path) -> list[dict]:
    events = []
    for day in list_local_dates(root):
        for landing_file in list_local_partition(root, day):
            with open(root / landing_file.key, "rb") as stream:
                events += [orjson.loads(line) for _, line in iter_lines_recovering(stream, True)]
    return events


def test_every_row_lands_on_its_arrival_day_as_a_valid_event(tmp_path):
    summary = import_coveo(SAMPLE, tmp_path)
    rows = list(csv.DictReader(SAMPLE.open()))
    assert summary.rows == summary.events == len(rows) == 32
    assert list_local_dates(tmp_path) == [dt.date(2019, 2, 13), dt.date(2019, 2, 14)]
    events = landed_events(tmp_path)
    assert len({event["event_id"] for event in events}) == 32
    for event in events:
        parse_line(orjson.dumps(event))
    by_time = {(e["session_id"], e["server_ts"]): e for e in events}
    for row in rows:
        event = by_time[(row["session_id_hash"], int(row["server_timestamp_epoch_ms"]))]
        assert event["source"] == "coveo" and event["client_ts"] == event["server_ts"]
        assert event["url"] == (row["hashed_url"] or None)
        if row["product_action"] == "click":
            assert (event["event_type"], event["product_action"]) == ("pageview", None)
            assert event["coveo_product_action"] == "click"
            assert event["product_sku"] == row["product_sku_hash"]
        else:
            assert event["event_type"] == row["event_type"]
            assert event["product_action"] == (row["product_action"] or None)
            assert event["product_sku"] == (row["product_sku_hash"] or None)


def test_importing_twice_adds_nothing(tmp_path):
    first = import_coveo(SAMPLE, tmp_path)
    copy = tmp_path / "elsewhere.csv"
    copy.write_bytes(SAMPLE.read_bytes())
    second = import_coveo(copy, tmp_path)
    assert len(first.files_written) == 2
    assert second.files_written == [] and second.files_already_present == first.files_written
    assert len(landed_events(tmp_path)) == 32


def test_imported_days_load_into_the_warehouse_without_rejections(tmp_path):
    import_coveo(SAMPLE, tmp_path / "landing")
    with duckdb.connect() as conn:
        loads = [
            load_raw_events_partition(
                conn, tmp_path / "landing", day, list_local_partition(tmp_path / "landing", day)
            )
            for day in list_local_dates(tmp_path / "landing")
        ]
        assert [(load.rows, load.rejected_rows) for load in loads] == [(7, 0), (25, 0)]
        assert conn.execute(
            "SELECT count(*) FROM raw.events WHERE payload->>'$.coveo_product_action' = 'click'"
        ).fetchone() == (2,)


def test_a_file_that_is_not_coveo_is_refused_and_writes_nothing(tmp_path):
    wrong = tmp_path / "orders.csv"
    wrong.write_text("order_id,amount\n1,2\n")
    with pytest.raises(CoveoFormatError, match="does not start with the Coveo header"):
        import_coveo(wrong, tmp_path / "landing")
    assert list_local_dates(tmp_path / "landing") == []


def test_rows_that_cannot_be_converted_are_counted_and_named(tmp_path):
    lines = SAMPLE.read_text().splitlines()
    broken = tmp_path / "broken.csv"
    broken.write_text(
        "\n".join([*lines[:3], "abc,pageview,,,yesterday,", "only,three,cols", *lines[3:]]) + "\n"
    )
    summary = import_coveo(broken, tmp_path / "landing")
    assert summary.events == 32 and summary.skipped == 2
    assert summary.skipped_rows == [
        (3, "server_timestamp_epoch_ms 'yesterday' is not an integer"),
        (4, "expected 6 columns, found 3"),
    ]
    assert "rows not convertible" in summary.format_table()


def test_an_import_over_many_days_keeps_only_a_few_open_and_lands_every_row(tmp_path, monkeypatch):
    # 40 days, sessions of 4 rows 20 minutes apart, so sessions cross midnight; then one row
    # that comes back to the first day after it was finished.
    start_ms = 1_550_000_000_000 - 1_550_000_000_000 % 86_400_000
    lines = [",".join(COVEO_COLUMNS)]
    for session in range(40 * 12):
        for step in range(4):
            ts = start_ms + session * 7_200_000 + 3_600_000 + step * 1_200_000
            lines.append(f"s{session},event_product,detail,sku{step},{ts},url{step}")
    lines.append(f"late,pageview,,,{start_ms + 1},")
    big = tmp_path / "many_days.csv"
    big.write_text("\n".join(lines) + "\n")
    most_open = []

    class RecordingWriter(coveo.LandingWriter):
        def write_encoded(self, day, data, lines):
            super().write_encoded(day, data, lines)
            most_open.append(len(self.open_days))

    monkeypatch.setattr(coveo, "LandingWriter", RecordingWriter)
    summary = import_coveo(big, tmp_path / "landing")
    assert max(most_open) <= coveo.OPEN_DAYS
    assert summary.events == len(lines) - 1 == 40 * 48 + 1
    assert summary.days_reopened == 1 and "days reopened" in summary.format_table()
    assert len(list_local_dates(tmp_path / "landing")) == 41  # the last sessions end after midnight
    assert len(summary.files_written) == 41 + 1  # the first day got a second file
    landed = landed_events(tmp_path / "landing")
    assert len({event["event_id"] for event in landed}) == len(landed) == summary.events
    again = import_coveo(big, tmp_path / "landing")
    assert again.files_written == [] and again.files_already_present == summary.files_written
