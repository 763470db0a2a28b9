"""The raw layer of the warehouse, shared by the DuckDB and Snowflake loaders."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from recs_platform.events.landing import LandingFile, files_fingerprint

RAW_SCHEMA = "raw"
EVENTS_TABLE = "events"
REJECTED_TABLE = "rejected_events"

# (column, DuckDB type, Snowflake type); the contract columns come first, in contract order.
RAW_EVENT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("event_id", "VARCHAR NOT NULL", "VARCHAR NOT NULL"),
    ("session_id", "VARCHAR NOT NULL", "VARCHAR NOT NULL"),
    ("user_id", "VARCHAR", "VARCHAR"),
    ("event_type", "VARCHAR NOT NULL", "VARCHAR NOT NULL"),
    ("product_action", "VARCHAR", "VARCHAR"),
    ("product_sku", "VARCHAR", "VARCHAR"),
    ("url", "VARCHAR", "VARCHAR"),
    ("client_ts", "BIGINT NOT NULL", "NUMBER(19,0) NOT NULL"),
    ("server_ts", "BIGINT NOT NULL", "NUMBER(19,0) NOT NULL"),
    ("source", "VARCHAR NOT NULL", "VARCHAR NOT NULL"),
    ("event_date", "DATE NOT NULL", "DATE NOT NULL"),
    ("payload", "JSON NOT NULL", "VARIANT NOT NULL"),
    ("source_file", "VARCHAR NOT NULL", "VARCHAR NOT NULL"),
    ("line_number", "BIGINT NOT NULL", "NUMBER(19,0) NOT NULL"),
)

REJECTED_EVENT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("event_date", "DATE NOT NULL", "DATE NOT NULL"),
    ("source_file", "VARCHAR NOT NULL", "VARCHAR NOT NULL"),
    ("line_number", "BIGINT NOT NULL", "NUMBER(19,0) NOT NULL"),
    ("reason", "VARCHAR NOT NULL", "VARCHAR NOT NULL"),
    ("raw_line", "VARCHAR", "VARCHAR"),
)

# A rejected line keeps at most this many characters of its text (the file keeps it all).
MAX_REJECTED_LINE_CHARS = 10_000


def create_table_sql(table: str, columns: tuple[tuple[str, str, str], ...], dialect: str) -> str:
    position = {"duckdb": 1, "snowflake": 2}[dialect]
    body = ",\n  ".join(f"{column[0]} {column[position]}" for column in columns)
    return f"CREATE TABLE IF NOT EXISTS {RAW_SCHEMA}.{table} (\n  {body}\n)"


@dataclass
class PartitionLoad:
    """What loading one day of the landing zone did."""

    event_date: dt.date
    rows: int = 0
    rejected_rows: int = 0
    files: int = 0
    bytes: int = 0
    corrupt_files: list[str] = field(default_factory=list)
    # files_fingerprint() of the files loaded: the landing sensor skips a day whose latest
    # materialization loaded the files it sees now.
    files_fingerprint: str = ""

    @classmethod
    def of_files(cls, day: dt.date, files: list[LandingFile]) -> PartitionLoad:
        """A load of `files` into `day` before any row is counted."""
        return cls(
            event_date=day,
            files=len(files),
            bytes=sum(f.size for f in files),
            files_fingerprint=files_fingerprint(files),
        )

    @property
    def rejected_share(self) -> float:
        total = self.rows + self.rejected_rows
        return self.rejected_rows / total if total else 0.0
