"""The arguments Dagster gives the dbt CLI, as pure functions (unit-tested on their own).

Incremental models take the partition window as `--vars` (`min_date` inclusive, `max_date`
exclusive); a backfill of several days runs once with the whole window.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
# The dbt installed beside this Python, whether or not its virtual environment is on PATH.
DBT_EXECUTABLE = Path(sys.executable).parent / "dbt"
INCREMENTAL_SELECTOR = "config.materialized:incremental"


def partition_window_vars(start: dt.date, end_exclusive: dt.date) -> dict[str, str]:
    if end_exclusive <= start:
        raise ValueError(f"empty partition window: {start} .. {end_exclusive} (end exclusive)")
    return {"min_date": start.isoformat(), "max_date": end_exclusive.isoformat()}


def dbt_build_args(window: dict[str, str] | None = None, full_refresh: bool = False) -> list[str]:
    args = ["build"]
    if window:
        args += ["--vars", json.dumps(window, sort_keys=True)]
    if full_refresh:
        args.append("--full-refresh")
    return args
