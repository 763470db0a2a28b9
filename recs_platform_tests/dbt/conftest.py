"""The fixture warehouse every dbt test compares against, built once per test session."""

from __future__ import annotations

import pytest

from recs_platform_tests.dbt.fixture_days import D1, D4, DAYS, FIXTURE_VARS, land_fixture_days
from recs_platform_tests.dbt.harness import Warehouse, load_duckdb_days, next_day


@pytest.fixture(scope="session")
def fixture_window() -> tuple:
    """The four fixture days as one partition window (end exclusive)."""
    return (D1, next_day(D4))


@pytest.fixture(scope="session")
def built_warehouse(tmp_path_factory: pytest.TempPathFactory, fixture_window: tuple) -> Warehouse:
    """All four days loaded, then one `dbt build` of their window: the first run of each model,
    so the tables are built from scratch (the full-refresh path)."""
    warehouse = Warehouse(tmp_path_factory.mktemp("built_warehouse"))
    land_fixture_days(warehouse)
    load_duckdb_days(warehouse, DAYS)
    warehouse.build(fixture_window, extra_vars=FIXTURE_VARS).check()
    return warehouse
