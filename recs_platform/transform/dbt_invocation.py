"""The arguments and environment Dagster gives the dbt CLI, as pure functions (unit-tested on
their own).

Incremental models take the partition window (`min_date` inclusive, `max_date` exclusive; a
backfill of several days runs once with the whole window) from the environment variables
RECS_PARTITION_MIN_DATE and RECS_PARTITION_MAX_DATE, which the project reads only at run time.
Passing it as `--vars` works too (by hand), but dbt then re-parses the whole project on every
run, since the vars differ from those of the parsed project (what that costs a partition:
benchmarks/README.md, dbt build of one day).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
# The dbt installed beside this Python, whether or not its virtual environment is on PATH.
DBT_EXECUTABLE = Path(sys.executable).parent / "dbt"
INCREMENTAL_SELECTOR = "config.materialized:incremental"
# What a partition's run builds: the incremental models, and the tests of the raw.events source
# (checks of raw_events, scoped to the window like every test).
DAILY_BUILD_SELECTOR = f"{INCREMENTAL_SELECTOR} source:raw.events"
# Read by the macro requested_window() (dbt_project/macros/partition_window.sql).
WINDOW_ENV_VARS = ("RECS_PARTITION_MIN_DATE", "RECS_PARTITION_MAX_DATE")


def partition_window_vars(start: dt.date, end_exclusive: dt.date) -> dict[str, str]:
    """The window as dbt vars: `--vars '<json of this>'` on the command line."""
    if end_exclusive <= start:
        raise ValueError(f"empty partition window: {start} .. {end_exclusive} (end exclusive)")
    return {"min_date": start.isoformat(), "max_date": end_exclusive.isoformat()}


def partition_window_env(start: dt.date, end_exclusive: dt.date) -> dict[str, str]:
    """The window as the environment variables the dbt project reads at run time."""
    window = partition_window_vars(start, end_exclusive)
    return dict(zip(WINDOW_ENV_VARS, (window["min_date"], window["max_date"]), strict=True))


def dbt_run_env(
    window: dict[str, str | None], data_dir: Path | None = None
) -> dict[str, str | None]:
    """What a dbt run of the assets gets in its environment: the window, dbt's indirect
    selection set to `buildable` and, given a `data_dir`, RECS_DATA_DIR set to it.

    The local profile finds the warehouse under RECS_DATA_DIR, resolved from dbt's working
    directory (the project), where the Settings resolve it from the caller's: passing the
    Settings' absolute folder keeps dbt on the warehouse the other assets use, whatever the
    environment held (a relative path, another folder, nothing).

    Dagster runs a subset of the models when a backfill or a user asks for some of them; with
    dbt's default (`eager`) a test that also reads an unselected model runs too, and fails on a
    first build where that model's table does not exist yet. `buildable` runs a test only when
    every model it reads is selected or upstream of the selection; with the whole selection,
    every test runs as before.
    """
    data = {} if data_dir is None else {"RECS_DATA_DIR": str(Path(data_dir).absolute())}
    return {**window, "DBT_INDIRECT_SELECTION": "buildable", **data}


def no_window_env() -> dict[str, None]:
    """Unsets the window variables: a run over every partition."""
    return dict.fromkeys(WINDOW_ENV_VARS)


def dbt_build_args(full_refresh: bool = False) -> list[str]:
    args = ["build"]
    if full_refresh:
        args.append("--full-refresh")
    return args


@contextmanager
def environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """os.environ with these variables set (None: unset) inside the block, restored after.

    dagster-dbt's DbtCliResource.cli() starts dbt with a copy of os.environ and takes no
    environment of its own; start it inside this block. Not for threads sharing the process
    (Dagster's executors run one step at a time per process)."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
