"""A warehouse whose marts are known row by row: the dbt fixture days, built once by dbt.

`recs_platform_tests/dbt/fixture_days.py` holds the raw events and every mart row worked out by
hand from them (the dbt tests check that dbt builds exactly those rows); the dashboard's numbers
are checked against those hand-worked rows.
"""

import shutil
from pathlib import Path

import pytest

from recs_platform_tests.dbt.fixture_days import D1, D4, DAYS, FIXTURE_VARS, RAW_EVENTS
from recs_platform_tests.dbt.harness import Warehouse, load_duckdb_days, next_day


@pytest.fixture(scope="session")
def marts_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The DuckDB file of the four fixture days after one `dbt run` of their window."""
    warehouse = Warehouse(tmp_path_factory.mktemp("reporting_marts"))
    warehouse.land(RAW_EVENTS)
    load_duckdb_days(warehouse, DAYS)
    window = {"min_date": D1.isoformat(), "max_date": next_day(D4).isoformat()}
    warehouse.dbt("run", dbt_vars={**window, **FIXTURE_VARS}).check()
    return warehouse.duckdb_path


@pytest.fixture
def data_dir(marts_warehouse: Path, tmp_path: Path) -> Path:
    """A data directory of this test's own, holding a copy of the fixture warehouse."""
    shutil.copyfile(marts_warehouse, tmp_path / "warehouse.duckdb")
    return tmp_path
