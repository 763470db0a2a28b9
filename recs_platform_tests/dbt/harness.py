"""Run the real dbt CLI on the project against a scratch warehouse, and read back what it built.

Each warehouse lives in its own folder: the DuckDB file (`RECS_DATA_DIR`), dbt's target/ and
logs/, and the landing zone the raw rows are loaded from, so nothing is written into the repo.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import duckdb

from recs_platform.events.landing import LandingFile, LandingWriter, list_local_partition
from recs_platform.warehouse import duckdb_raw, snowflake_raw

PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
DBT_EXECUTABLE = Path(sys.executable).with_name("dbt")
MODELS_SCHEMA = "analytics"
# Every table dbt builds, with the columns that identify a row.
MODEL_KEYS = {
    "stg_events": ("event_id",),
    "stg_event_duplicates": ("source_file", "line_number"),
    "int_session_events": ("session_id", "event_index"),
    "sessions": ("session_id",),
    "training_sessions": ("session_id",),
    "item_stats": ("event_date", "product_sku"),
    "daily_session_stats": ("partition_date",),
    "stg_impressions": ("event_id",),
    "stg_impression_items": ("event_id", "position"),
    "int_recommendation_clicks": ("event_id",),
    "int_recommendation_conversions": ("event_id",),
    "recommendation_performance": ("partition_date", "variant", "model_version"),
    "recommendation_sessions": ("session_id", "variant", "model_version"),
}
# The tables that hold impressions and clicks; the others must not change with them.
RECOMMENDATION_TABLES = frozenset(
    {
        "stg_impressions",
        "stg_impression_items",
        "int_recommendation_clicks",
        "int_recommendation_conversions",
        "recommendation_performance",
        "recommendation_sessions",
    }
)
DBT_TIMEOUT_S = 240


@dataclass
class DbtResult:
    args: list[str]
    returncode: int
    output: str

    def check(self) -> DbtResult:
        assert self.returncode == 0, f"dbt {' '.join(self.args)} failed:\n{self.output}"
        return self


@dataclass
class Warehouse:
    """A scratch folder holding one warehouse and the landing zone its raw rows come from."""

    root: Path
    target: str = "local"
    env: dict[str, str] = field(default_factory=dict)

    @property
    def landing_root(self) -> Path:
        return self.root / "landing"

    @property
    def duckdb_path(self) -> Path:
        return self.root / "warehouse.duckdb"

    def dbt(self, *args: str, dbt_vars: Mapping[str, Any] | None = None) -> DbtResult:
        command = [
            str(DBT_EXECUTABLE),
            *args,
            "--project-dir",
            str(PROJECT_DIR),
            "--profiles-dir",
            str(PROJECT_DIR),
            "--target",
            self.target,
            "--target-path",
            str(self.root / "dbt_target"),
            "--log-path",
            str(self.root / "dbt_logs"),
        ]
        if dbt_vars:
            command += ["--vars", json.dumps(dict(dbt_vars), sort_keys=True)]
        env = {
            **os.environ,
            "RECS_DATA_DIR": str(self.root),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT_USE_COLORS": "false",
            "DBT_LOG_PATH": str(self.root / "dbt_logs"),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            **self.env,
        }
        completed = subprocess.run(
            command,
            env=env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=DBT_TIMEOUT_S,
            check=False,
        )
        return DbtResult(command[1:], completed.returncode, completed.stdout + completed.stderr)

    def build(
        self,
        window: tuple[dt.date, dt.date] | None = None,
        *,
        extra_vars: Mapping[str, Any] | None = None,
        flags: Iterable[str] = (),
    ) -> DbtResult:
        """`dbt build` for the partition window [start, end), or for everything."""
        dbt_vars = dict(extra_vars or {})
        if window:
            dbt_vars |= {"min_date": window[0].isoformat(), "max_date": window[1].isoformat()}
        return self.dbt("build", *flags, dbt_vars=dbt_vars)

    def land(self, events: Iterable[dict[str, Any]], producer: str = "test") -> None:
        """Write events into the landing zone, each into the partition of its server_ts."""
        with LandingWriter(
            self.landing_root, producer, compress=False, file_stem="fixture"
        ) as writer:
            writer.write_many(events)


def load_duckdb_days(warehouse: Warehouse, days: Iterable[dt.date]) -> None:
    """Load each day's landing files into raw.events, as the raw_events asset does."""
    with duckdb.connect(str(warehouse.duckdb_path)) as conn:
        duckdb_raw.ensure_raw_tables(conn)
        for day in days:
            files = list_local_partition(warehouse.landing_root, day)
            duckdb_raw.load_raw_events_partition(conn, warehouse.landing_root, day, files)


def load_snowflake_days(conn: Any, landing_root: Path, days: Iterable[dt.date]) -> None:
    """The same, through the production loader, into Snowflake's raw.events."""

    def open_file(landing_file: LandingFile) -> IO[bytes]:
        return open(landing_root / landing_file.key, "rb")  # noqa: SIM115 - the loader closes it

    snowflake_raw.ensure_raw_tables(conn)
    for day in days:
        files = list_local_partition(landing_root, day)
        snowflake_raw.load_raw_events_partition(conn, day, files, open_file)


# Snowflake returns ARRAY and OBJECT values as JSON text; DuckDB returns lists and dicts.
ARRAY_COLUMNS = frozenset({"product_interactions", "items", "shown_skus"})


def _plain(column: str, value: Any) -> Any:
    """One value as Python compares it, whichever warehouse it came from."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if column in ARRAY_COLUMNS and isinstance(value, str):
        return json.loads(value)
    return value


def fetch_rows(cursor: Any, table: str, order_by: Iterable[str]) -> list[dict[str, Any]]:
    """Every row of an analytics table, as plain dicts with lower-case keys, in key order."""
    cursor.execute(f"select * from {MODELS_SCHEMA}.{table} order by {', '.join(order_by)}")
    columns = [description[0].lower() for description in cursor.description]
    return [
        {column: _plain(column, value) for column, value in zip(columns, row, strict=True)}
        for row in cursor.fetchall()
    ]


def duckdb_rows(warehouse: Warehouse, table: str) -> list[dict[str, Any]]:
    with duckdb.connect(str(warehouse.duckdb_path), read_only=True) as conn:
        return fetch_rows(conn.cursor(), table, MODEL_KEYS[table])


def duckdb_checksums(warehouse: Warehouse) -> dict[str, tuple[int, str]]:
    """(row count, digest of the sorted row digests) of every table dbt built."""
    checksums = {}
    with duckdb.connect(str(warehouse.duckdb_path), read_only=True) as conn:
        for table in MODEL_KEYS:
            count, digest = conn.execute(
                f"""
                select count(*), md5(coalesce(string_agg(row_digest, ',' order by row_digest), ''))
                from (select md5(cast(t as varchar)) as row_digest from {MODELS_SCHEMA}.{table} t)
                """
            ).fetchone()
            checksums[table] = (count, digest)
    return checksums


def run_concurrently(*calls: Callable[[], Any]) -> list[Any]:
    """Run independent dbt sequences side by side (each is one subprocess at a time)."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]


def assert_rows_equal(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Rows equal column by column; floats to 1e-12 relative (engines may round apart)."""
    assert [sorted(row) for row in actual] == [sorted(row) for row in expected]
    for actual_row, expected_row in zip(actual, expected, strict=True):
        assert _approximately(actual_row, expected_row), (actual_row, expected_row)


def _approximately(actual: Any, expected: Any) -> bool:
    if isinstance(expected, float) and isinstance(actual, int | float):
        return math.isclose(actual, expected, rel_tol=1e-12, abs_tol=1e-12)
    if isinstance(expected, dict) and isinstance(actual, dict):
        return actual.keys() == expected.keys() and all(
            _approximately(actual[key], expected[key]) for key in expected
        )
    if isinstance(expected, list) and isinstance(actual, list):
        return len(actual) == len(expected) and all(
            _approximately(a, e) for a, e in zip(actual, expected, strict=True)
        )
    return type(actual) is type(expected) and actual == expected


def next_day(day: dt.date) -> dt.date:
    return day + dt.timedelta(days=1)
