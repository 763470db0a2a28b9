"""Load one day of the local landing zone into DuckDB's `raw.events`.

DuckDB reads the files itself (gzip included), one line per row, so a large day never passes
through Python. Each line is validated in SQL with the same rules, in the same order and with the
same reasons, as `recs_platform.events.contract.validate_event`. A file DuckDB cannot read (a
truncated gzip, bytes that are not UTF-8) is read again by Python, which keeps every complete line
and records where and why the file broke. The day is replaced in one transaction, so loading it
twice leaves exactly the table of loading it once.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa

from recs_platform.events.contract import (
    COLUMN_FIELDS,
    CONTRACT_FIELDS,
    EVENT_TYPES,
    IMPRESSION_STRING_FIELDS,
    MAX_EPOCH_MS,
    MAX_POSITION,
    MIN_EPOCH_MS,
    OPTIONAL_STRING_FIELDS,
    PRODUCT_ACTIONS,
    REASON_CLICK_PAIR,
    REASON_EVENT_TYPE,
    REASON_IMPRESSION_ACTION,
    REASON_IMPRESSION_FALLBACK,
    REASON_IMPRESSION_MODEL_VERSION,
    REASON_IMPRESSION_POSITION,
    REASON_IMPRESSION_STRING,
    REASON_INVALID_JSON,
    REASON_NOT_OBJECT,
    REASON_OPTIONAL_STRING,
    REASON_PAGEVIEW_CLICK,
    REASON_POSITION,
    REASON_PRODUCT_ACTION,
    REASON_PRODUCT_EVENT,
    REASON_REQUEST_ID,
    REASON_REQUIRED_STRING,
    REASON_SHOWN_SKUS,
    REASON_TIMESTAMP_RANGE,
    REASON_TIMESTAMP_TYPE,
    REQUIRED_STRING_FIELDS,
    TIMESTAMP_FIELDS,
)
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

_LINE_STAGING_CHUNK = 50_000
_RAW_COLUMN_NAMES = tuple(column for column, _, _ in RAW_EVENT_COLUMNS)


def ensure_raw_tables(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
    conn.execute(create_table_sql(EVENTS_TABLE, RAW_EVENT_COLUMNS, "duckdb"))
    conn.execute(create_table_sql(REJECTED_TABLE, REJECTED_EVENT_COLUMNS, "duckdb"))


def _read_lines_sql(paths: list[str]) -> str:
    quoted = ", ".join("'" + path.replace("'", "''") + "'" for path in paths)
    # One VARCHAR column per line: a record-separator delimiter (never in valid JSON), no quoting,
    # strict mode so a line holding that byte fails the read instead of being cut short.
    return (
        f"SELECT filename, line FROM read_csv([{quoted}], columns={{'line': 'VARCHAR'}}, "
        "header=false, delim='\x1e', quote='', escape='', auto_detect=false, filename=true, "
        "strict_mode=true, max_line_size=16777216)"
    )


def _stage_with_duckdb(conn: duckdb.DuckDBPyConnection, root: Path, files: list[LandingFile]):
    # Insertion order is preserved, so rowid order is file order then line order.
    conn.execute("CREATE OR REPLACE TEMP TABLE scanned_lines (filename VARCHAR, line VARCHAR)")
    conn.execute(f"INSERT INTO scanned_lines {_read_lines_sql([str(root / f.key) for f in files])}")
    conn.execute(
        """
        INSERT INTO landed_lines
        SELECT keys.key, row_number() OVER (PARTITION BY s.filename ORDER BY s.rowid), s.line
        FROM scanned_lines AS s JOIN file_keys AS keys ON keys.path = s.filename
        """
    )
    conn.execute("DROP TABLE scanned_lines")


def _stage_with_python(
    conn: duckdb.DuckDBPyConnection, root: Path, landing_file: LandingFile
) -> str | None:
    """Stage what can be read of a damaged file; return why it is damaged, if it is."""
    keys, numbers, lines = [], [], []
    damage = None

    def flush() -> None:
        if not lines:
            return
        chunk = pa.table({"source_file": keys, "line_number": numbers, "line": lines})
        conn.register("line_chunk", chunk)
        conn.execute("INSERT INTO landed_lines SELECT * FROM line_chunk")
        conn.unregister("line_chunk")
        keys.clear(), numbers.clear(), lines.clear()

    with open(root / landing_file.key, "rb") as stream:
        try:
            for number, raw_line in iter_lines_recovering(stream, landing_file.key.endswith(".gz")):
                try:
                    text = raw_line.decode("utf-8")
                except UnicodeDecodeError:
                    _record_rejection(conn, landing_file.key, number, "not UTF-8 text", raw_line)
                    continue
                keys.append(landing_file.key), numbers.append(number), lines.append(text)
                if len(lines) >= _LINE_STAGING_CHUNK:
                    flush()
        except CorruptFile as corrupt:
            damage = f"corrupt file: {corrupt.reason}"
            _record_rejection(conn, landing_file.key, corrupt.line_number, damage, b"")
    flush()
    return damage


def _record_rejection(
    conn: duckdb.DuckDBPyConnection, key: str, line_number: int, reason: str, raw_line: bytes
) -> None:
    conn.execute(
        "INSERT INTO early_rejections VALUES (?, ?, ?, ?)",
        [key, line_number, reason, raw_line.decode("utf-8", "replace")[:MAX_REJECTED_LINE_CHARS]],
    )


_POSITION = {field: position for position, field in enumerate(CONTRACT_FIELDS, start=1)}


def _type(field: str) -> str:
    """The JSON type of the field's value: SQL NULL when the key is missing, 'NULL' for null."""
    return f"field_types[{_POSITION[field]}]"


def _text(field: str) -> str:
    return f"field_texts[{_POSITION[field]}]"


def _required_string(field: str) -> str:
    return f"coalesce({_type(field)} = 'VARCHAR' AND {_text(field)} <> '', false)"


def _optional_string(field: str) -> str:
    return f"coalesce({_type(field)}, 'NULL') IN ('VARCHAR', 'NULL')"


def _is_null(field: str) -> str:
    """Absent or JSON null."""
    return f"coalesce({_type(field)}, 'NULL') = 'NULL'"


def _integer(field: str) -> str:
    return f"coalesce({_type(field)} IN ('BIGINT', 'UBIGINT'), false)"


def _epoch_ms_in_range(field: str) -> str:
    value = f"TRY_CAST({_text(field)} AS HUGEINT)"
    return f"coalesce({value} >= {MIN_EPOCH_MS} AND {value} < {MAX_EPOCH_MS}, false)"


def _position_in_range(field: str) -> str:
    value = f"TRY_CAST({_text(field)} AS HUGEINT)"
    return f"coalesce({_integer(field)} AND {value} BETWEEN 1 AND {MAX_POSITION}, false)"


# shown_skus: a non-empty array of distinct non-empty strings (every element's type is VARCHAR).
# Its elements are read only for the impressions that reach this rule.
_SHOWN_TYPES = "json_type(doc, '$.shown_skus[*]')"
_SHOWN_TEXTS = "json_extract_string(doc, '$.shown_skus[*]')"
_SHOWN_SKUS_OK = (
    f"coalesce({_type('shown_skus')} = 'ARRAY'"
    f" AND list_distinct({_SHOWN_TYPES}) = ['VARCHAR']"
    f" AND NOT list_contains({_SHOWN_TEXTS}, '')"
    f" AND len(list_distinct({_SHOWN_TEXTS})) = len({_SHOWN_TEXTS}), false)"
)


def _in_set(expression: str, values: tuple[str, ...]) -> str:
    return f"{expression} IN ({', '.join(repr(value) for value in values)})"


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_ACTION = _text("product_action")
_EVENT_TYPE = _text("event_type")


def _unless(event_type: str, rule: str) -> str:
    """`rule` must hold for events of `event_type`; others pass."""
    return f"{_EVENT_TYPE} <> {_sql_string(event_type)} OR ({rule})"


# (rule that must hold, reason when it does not): the order and reasons of validate_event.
_RULES: list[tuple[str, str]] = [
    ("doc IS NOT NULL", REASON_INVALID_JSON),
    ("json_type(doc) = 'OBJECT'", REASON_NOT_OBJECT),
    *[
        (_required_string(f), REASON_REQUIRED_STRING.format(field=f))
        for f in REQUIRED_STRING_FIELDS
    ],
    *[
        (_optional_string(f), REASON_OPTIONAL_STRING.format(field=f))
        for f in OPTIONAL_STRING_FIELDS
    ],
    *[
        rule
        for f in TIMESTAMP_FIELDS
        for rule in (
            (_integer(f), REASON_TIMESTAMP_TYPE.format(field=f)),
            (_epoch_ms_in_range(f), REASON_TIMESTAMP_RANGE.format(field=f)),
        )
    ],
    (_in_set(_text("event_type"), EVENT_TYPES), REASON_EVENT_TYPE),
    (f"{_ACTION} IS NULL OR {_in_set(_ACTION, PRODUCT_ACTIONS)}", REASON_PRODUCT_ACTION),
    (
        _unless(
            "event_product", f"coalesce({_text('product_sku')}, '') <> '' AND {_ACTION} IS NOT NULL"
        ),
        REASON_PRODUCT_EVENT,
    ),
    (f"{_is_null('request_id')} OR {_required_string('request_id')}", REASON_REQUEST_ID),
    (f"{_is_null('position')} OR {_position_in_range('position')}", REASON_POSITION),
    (
        _unless("event_product", f"({_is_null('request_id')}) = ({_is_null('position')})"),
        REASON_CLICK_PAIR,
    ),
    (
        _unless("pageview", f"{_is_null('request_id')} AND {_is_null('position')}"),
        REASON_PAGEVIEW_CLICK,
    ),
    (_unless("impression", f"{_ACTION} IS NULL"), REASON_IMPRESSION_ACTION),
    (_unless("impression", _is_null("position")), REASON_IMPRESSION_POSITION),
    *[
        (_unless("impression", _required_string(f)), REASON_IMPRESSION_STRING.format(field=f))
        for f in IMPRESSION_STRING_FIELDS
    ],
    (_unless("impression", _optional_string("fallback")), REASON_IMPRESSION_FALLBACK),
    (
        _unless(
            "impression",
            f"{_required_string('model_version')} OR "
            f"({_is_null('model_version')} AND {_required_string('fallback')})",
        ),
        REASON_IMPRESSION_MODEL_VERSION,
    ),
    (_unless("impression", _SHOWN_SKUS_OK), REASON_SHOWN_SKUS),
]
_REJECTION_REASON_SQL = (
    "CASE "
    + " ".join(f"WHEN NOT ({rule}) THEN {_sql_string(reason)}" for rule, reason in _RULES)
    + " END"
)
_FIELD_PATHS_SQL = "[" + ", ".join(f"'$.{field}'" for field in CONTRACT_FIELDS) + "]"


def _replace_partition(conn: duckdb.DuckDBPyConnection, day: dt.date) -> None:
    conn.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE checked_lines AS
        SELECT *, {_REJECTION_REASON_SQL} AS reason
        FROM (
          SELECT *,
                 json_type(doc, {_FIELD_PATHS_SQL}) AS field_types,
                 json_extract_string(doc, {_FIELD_PATHS_SQL}) AS field_texts
          FROM (SELECT *, TRY_CAST(line AS JSON) AS doc FROM landed_lines)
        )
        """
    )
    columns = ", ".join(
        f"CAST({_text(field)} AS BIGINT)" if field in TIMESTAMP_FIELDS else _text(field)
        for field in COLUMN_FIELDS
    )
    conn.execute("BEGIN TRANSACTION")
    try:
        for table in (EVENTS_TABLE, REJECTED_TABLE):
            conn.execute(f"DELETE FROM {RAW_SCHEMA}.{table} WHERE event_date = ?", [day])
        conn.execute(
            f"""
            INSERT INTO {RAW_SCHEMA}.{EVENTS_TABLE} ({", ".join(_RAW_COLUMN_NAMES)})
            SELECT {columns}, ?::DATE, doc, source_file, line_number
            FROM checked_lines WHERE reason IS NULL
            """,
            [day],
        )
        conn.execute(
            f"""
            INSERT INTO {RAW_SCHEMA}.{REJECTED_TABLE}
            SELECT ?::DATE, source_file, line_number, reason, raw_line FROM (
              SELECT source_file, line_number, reason,
                     left(coalesce(line, ''), {MAX_REJECTED_LINE_CHARS}) AS raw_line
              FROM checked_lines WHERE reason IS NOT NULL
              UNION ALL
              SELECT source_file, line_number, reason, raw_line FROM early_rejections
            )
            ORDER BY source_file, line_number
            """,
            [day],
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def load_raw_events_partition(
    conn: duckdb.DuckDBPyConnection, landing_root: Path, day: dt.date, files: list[LandingFile]
) -> PartitionLoad:
    """Replace `day` in raw.events / raw.rejected_events with the content of `files`."""
    landing_root = Path(landing_root).absolute()
    ensure_raw_tables(conn)
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE landed_lines "
        "(source_file VARCHAR, line_number BIGINT, line VARCHAR)"
    )
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE early_rejections "
        "(source_file VARCHAR, line_number BIGINT, reason VARCHAR, raw_line VARCHAR)"
    )
    conn.execute("CREATE OR REPLACE TEMP TABLE file_keys (path VARCHAR, key VARCHAR)")
    if files:
        paths_and_keys = [[str(landing_root / f.key), f.key] for f in files]
        conn.executemany("INSERT INTO file_keys VALUES (?, ?)", paths_and_keys)
    load = PartitionLoad.of_files(day, files)
    if files:
        try:
            _stage_with_duckdb(conn, landing_root, files)
        except duckdb.Error:
            conn.execute("DELETE FROM landed_lines")
            for landing_file in files:
                try:
                    _stage_with_duckdb(conn, landing_root, [landing_file])
                except duckdb.Error:
                    if _stage_with_python(conn, landing_root, landing_file) is not None:
                        load.corrupt_files.append(landing_file.key)
    _replace_partition(conn, day)
    load.rows, load.rejected_rows = conn.execute(
        f"SELECT (SELECT count(*) FROM {RAW_SCHEMA}.{EVENTS_TABLE} WHERE event_date = $day), "
        f"(SELECT count(*) FROM {RAW_SCHEMA}.{REJECTED_TABLE} WHERE event_date = $day)",
        {"day": day},
    ).fetchone()
    for table in ("landed_lines", "early_rejections", "file_keys", "checked_lines"):
        conn.execute(f"DROP TABLE IF EXISTS {table}")
    return load
