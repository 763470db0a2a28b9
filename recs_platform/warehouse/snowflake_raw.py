"""Load one day of the landing zone into Snowflake's `raw.events` (the production path).

Every line passes through Python: it is validated with `recs_platform.events.contract.parse_line`
and written with client-side binding (the connector's default ``pyformat`` paramstyle turns an
``executemany`` INSERT into one multi-row INSERT), so no stage or PUT is involved. Rows go in
bounded chunks into staging tables made for this load; one transaction then replaces the day in
`raw.events` and `raw.rejected_events`, so loading a day twice leaves the tables as loading it once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from typing import IO, Any

from recs_platform.events.contract import COLUMN_FIELDS, InvalidEvent, parse_line
from recs_platform.events.landing import CorruptFile, LandingFile, iter_lines_recovering
from recs_platform.warehouse.schema import (
    EVENTS_TABLE,
    MAX_REJECTED_LINE_CHARS,
    RAW_EVENT_COLUMNS,
    RAW_SCHEMA,
    REJECTED_EVENT_COLUMNS,
    REJECTED_TABLE,
    PartitionLoad,
    create_table_sql,
)

STAGING_CHUNK_ROWS = 5_000
# Snowflake advises keeping a statement's text under 1 MB, bound literals included.
STAGING_CHUNK_CHARS = 800_000
# Room for quotes, separators and the numbers of one staged row.
_ROW_OVERHEAD_CHARS = 100

_STAGING_TYPES = {
    **{name: snowflake for name, _, snowflake in RAW_EVENT_COLUMNS + REJECTED_EVENT_COLUMNS},
    # Parsed into the VARIANT when copied into raw.events: Snowflake allows no PARSE_JSON in VALUES.
    "payload_text": "VARCHAR",
}
# Staged good rows: the typed columns of the contract, where the line came from, the line itself.
_STAGED_EVENT_COLUMNS = (*COLUMN_FIELDS, "source_file", "line_number", "payload_text")
_STAGED_REJECTED_COLUMNS = ("source_file", "line_number", "reason", "raw_line")


def ensure_raw_tables(conn: Any) -> None:
    """Create schema `raw` and its tables if missing.

    Snowflake makes a schema it creates the session's current schema; the loader qualifies
    every name, so that does not matter to it.
    """
    cursor = conn.cursor()
    try:
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
        cursor.execute(create_table_sql(EVENTS_TABLE, RAW_EVENT_COLUMNS, "snowflake"))
        cursor.execute(create_table_sql(REJECTED_TABLE, REJECTED_EVENT_COLUMNS, "snowflake"))
    finally:
        cursor.close()


class _StagingTable:
    """A per-load table filled by multi-row INSERTs of at most `max_rows` rows / `max_chars`."""

    def __init__(
        self, cursor: Any, name: str, columns: Sequence[str], max_rows: int, max_chars: int
    ):
        self.cursor = cursor
        self.name = name
        self.columns = columns
        self.max_rows = max_rows
        self.max_chars = max_chars
        self.rows: list[tuple] = []
        self.chars = 0
        self.total_rows = 0

    def create(self) -> None:
        types = ", ".join(f"{column} {_STAGING_TYPES[column]}" for column in self.columns)
        self.cursor.execute(f"CREATE TRANSIENT TABLE {self.name} ({types})")

    def add(self, row: tuple, chars: int) -> None:
        if self.rows and self.chars + chars > self.max_chars:
            self.flush()
        self.rows.append(row)
        self.chars += chars
        self.total_rows += 1
        if len(self.rows) >= self.max_rows:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        placeholders = ", ".join(["%s"] * len(self.columns))
        self.cursor.executemany(
            f"INSERT INTO {self.name} ({', '.join(self.columns)}) VALUES ({placeholders})",
            self.rows,
        )
        self.rows = []
        self.chars = 0

    def drop(self) -> None:
        self.cursor.execute(f"DROP TABLE IF EXISTS {self.name}")


def _rejected_text(line: bytes) -> str:
    return line.decode("utf-8", errors="replace")[:MAX_REJECTED_LINE_CHARS]


def _stage_file(
    landing_file: LandingFile,
    stream: IO[bytes],
    events: _StagingTable,
    rejected: _StagingTable,
    load: PartitionLoad,
) -> None:
    key = landing_file.key
    try:
        for line_number, line in iter_lines_recovering(stream, key.endswith(".gz")):
            try:
                event = parse_line(line)
            except InvalidEvent as error:
                raw_line = _rejected_text(line)
                reason = str(error)
                rejected.add(
                    (key, line_number, reason, raw_line),
                    len(key) + len(reason) + len(raw_line) + _ROW_OVERHEAD_CHARS,
                )
                continue
            # parse_line accepted the bytes, so they are valid UTF-8.
            payload_text = line.decode("utf-8")
            values = tuple(event.get(field) for field in COLUMN_FIELDS)
            events.add(
                (*values, key, line_number, payload_text),
                # The parsed values repeat the line, hence twice its length.
                len(key) + 2 * len(payload_text) + _ROW_OVERHEAD_CHARS,
            )
    except CorruptFile as corruption:
        reason = f"corrupt file: {corruption.reason}"
        rejected.add(
            (key, corruption.line_number, reason, None),
            len(key) + len(reason) + _ROW_OVERHEAD_CHARS,
        )
        load.corrupt_files.append(key)


def _replace_day(cursor: Any, day: dt.date, events: _StagingTable, rejected: _StagingTable) -> None:
    computed = {
        "event_date": "%(day)s::DATE",
        # 'd': a duplicated key keeps its last value, as in orjson, instead of failing the load.
        "payload": "PARSE_JSON(payload_text, 'd')",
    }
    event_columns = [column for column, _, _ in RAW_EVENT_COLUMNS]
    event_values = [computed.get(column, column) for column in event_columns]
    rejected_columns = [column for column, _, _ in REJECTED_EVENT_COLUMNS]
    rejected_values = [computed.get(column, column) for column in rejected_columns]
    day_parameter = {"day": day.isoformat()}
    cursor.execute("BEGIN")
    try:
        for table in (EVENTS_TABLE, REJECTED_TABLE):
            cursor.execute(
                f"DELETE FROM {RAW_SCHEMA}.{table} WHERE event_date = %(day)s::DATE", day_parameter
            )
        cursor.execute(
            f"INSERT INTO {RAW_SCHEMA}.{EVENTS_TABLE} ({', '.join(event_columns)}) "
            f"SELECT {', '.join(event_values)} FROM {events.name}",
            day_parameter,
        )
        cursor.execute(
            f"INSERT INTO {RAW_SCHEMA}.{REJECTED_TABLE} ({', '.join(rejected_columns)}) "
            f"SELECT {', '.join(rejected_values)} FROM {rejected.name}",
            day_parameter,
        )
        cursor.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):
            cursor.execute("ROLLBACK")
        raise


def _drop_all(staging_tables: list[_StagingTable], cursor: Any) -> None:
    for staging in staging_tables:
        staging.drop()
    cursor.close()


def load_raw_events_partition(
    conn: Any,
    day: dt.date,
    files: list[LandingFile],
    open_file: Callable[[LandingFile], IO[bytes]],
    *,
    chunk_rows: int = STAGING_CHUNK_ROWS,
    chunk_chars: int = STAGING_CHUNK_CHARS,
) -> PartitionLoad:
    """Replace `day` in raw.events / raw.rejected_events with the content of `files`.

    `conn` is a `snowflake.connector` connection with the default ``pyformat`` paramstyle.
    `open_file` returns a binary stream (closed by this function) of one landing file.
    """
    if not getattr(conn, "is_pyformat", True):
        raise ValueError("the Snowflake loader binds client-side: use paramstyle 'pyformat'")
    ensure_raw_tables(conn)
    load = PartitionLoad.of_files(day, files)
    token = f"{day:%Y%m%d}_{uuid.uuid4().hex[:12]}"
    cursor = conn.cursor()
    events = _StagingTable(
        cursor,
        f"{RAW_SCHEMA}._load_events_{token}",
        _STAGED_EVENT_COLUMNS,
        chunk_rows,
        chunk_chars,
    )
    rejected = _StagingTable(
        cursor,
        f"{RAW_SCHEMA}._load_rejected_{token}",
        _STAGED_REJECTED_COLUMNS,
        chunk_rows,
        chunk_chars,
    )
    # DDL commits implicitly in Snowflake, so the staging tables are made before, and dropped
    # after, the transaction that swaps the day.
    created: list[_StagingTable] = []
    try:
        for staging in (events, rejected):
            staging.create()
            created.append(staging)
        for landing_file in files:
            with open_file(landing_file) as stream:
                _stage_file(landing_file, stream, events, rejected, load)
        events.flush()
        rejected.flush()
        _replace_day(cursor, day, events, rejected)
    except BaseException:
        # Keep the original error; the cleanup is best effort (the connection may be gone).
        with contextlib.suppress(Exception):
            _drop_all(created, cursor)
        raise
    _drop_all(created, cursor)
    load.rows = events.total_rows
    load.rejected_rows = rejected.total_rows
    return load
