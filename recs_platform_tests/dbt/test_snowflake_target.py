"""The same dbt project on Snowflake's dialect (target `prod`), against fakesnow's server.

The raw rows go in through the production loader; dbt-snowflake connects over HTTP to
127.0.0.1 with the profile's host/port/protocol. The first run builds every table from scratch,
the second rebuilds D2..D4 incrementally (delete+insert); every table must then hold the rows
the hand-built days call for, and the rows DuckDB built.
"""

from __future__ import annotations

import pytest

from recs_platform_tests.dbt.fixture_days import (
    D1,
    D2,
    DAYS,
    FIXTURE_VARS,
    MARTS,
    land_fixture_days,
)
from recs_platform_tests.dbt.harness import (
    MODEL_KEYS,
    Warehouse,
    assert_rows_equal,
    duckdb_rows,
    fetch_rows,
    load_snowflake_days,
)

pytestmark = [
    pytest.mark.timeout(300),
    # fakesnow's server on DuckDB 2 warns about an extra copy of each result; not ours to fix.
    pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning"),
]


def test_dbt_build_on_snowflake_makes_the_rows_duckdb_makes(
    tmp_path, fakesnow_kwargs, snowflake_database, snowflake_conn, built_warehouse, fixture_window
):
    warehouse = Warehouse(
        tmp_path,
        target="prod",
        env={
            "SNOWFLAKE_ACCOUNT": fakesnow_kwargs["account"],
            "SNOWFLAKE_USER": fakesnow_kwargs["user"],
            "SNOWFLAKE_PASSWORD": fakesnow_kwargs["password"],
            "SNOWFLAKE_DATABASE": snowflake_database,
            "SNOWFLAKE_HOST": fakesnow_kwargs["host"],
            "SNOWFLAKE_PORT": str(fakesnow_kwargs["port"]),
            "SNOWFLAKE_PROTOCOL": fakesnow_kwargs["protocol"],
            "SNOWFLAKE_ROLE": "",
            "SNOWFLAKE_WAREHOUSE": "",
        },
    )
    land_fixture_days(warehouse)
    load_snowflake_days(snowflake_conn, warehouse.landing_root, DAYS)

    first = warehouse.build((D1, D2), extra_vars=FIXTURE_VARS).check()
    incremental = warehouse.build((D2, fixture_window[1]), extra_vars=FIXTURE_VARS).check()

    assert "target='prod'" in first.output
    assert "OK created sql incremental model analytics.sessions" in incremental.output
    cursor = snowflake_conn.cursor()
    for mart, (expected, _) in MARTS.items():
        assert_rows_equal(fetch_rows(cursor, mart, MODEL_KEYS[mart]), expected)
    for table, keys in MODEL_KEYS.items():
        assert_rows_equal(fetch_rows(cursor, table, keys), duckdb_rows(built_warehouse, table))
