import datetime as dt
import os
from pathlib import Path

import pytest

from recs_platform.transform.dbt_invocation import (
    WINDOW_ENV_VARS,
    dbt_build_args,
    dbt_run_env,
    environment,
    no_window_env,
    partition_window_env,
    partition_window_vars,
)


def test_a_partition_window_becomes_vars_with_an_exclusive_end():
    assert partition_window_vars(dt.date(2026, 11, 3), dt.date(2026, 11, 6)) == {
        "min_date": "2026-11-03",
        "max_date": "2026-11-06",
    }


def test_a_partition_window_becomes_the_environment_the_project_reads():
    assert partition_window_env(dt.date(2026, 11, 3), dt.date(2026, 11, 6)) == {
        "RECS_PARTITION_MIN_DATE": "2026-11-03",
        "RECS_PARTITION_MAX_DATE": "2026-11-06",
    }
    assert set(no_window_env()) == set(WINDOW_ENV_VARS)


def test_an_empty_window_is_refused():
    with pytest.raises(ValueError, match="empty partition window"):
        partition_window_vars(dt.date(2026, 11, 3), dt.date(2026, 11, 3))
    with pytest.raises(ValueError, match="empty partition window"):
        partition_window_env(dt.date(2026, 11, 3), dt.date(2026, 11, 2))


def test_build_arguments_carry_no_vars():
    assert dbt_build_args() == ["build"]
    assert dbt_build_args(full_refresh=True) == ["build", "--full-refresh"]


def test_the_window_is_set_only_inside_the_block(monkeypatch):
    min_name, max_name = WINDOW_ENV_VARS
    monkeypatch.setenv(min_name, "2000-01-01")
    monkeypatch.delenv(max_name, raising=False)
    with environment(partition_window_env(dt.date(2026, 11, 3), dt.date(2026, 11, 4))):
        assert (os.environ[min_name], os.environ[max_name]) == ("2026-11-03", "2026-11-04")
    assert os.environ[min_name] == "2000-01-01" and max_name not in os.environ
    with environment(no_window_env()):
        assert min_name not in os.environ and max_name not in os.environ
    assert os.environ[min_name] == "2000-01-01"


def test_dbt_runs_only_the_tests_whose_models_are_all_built():
    window = partition_window_env(dt.date(2026, 11, 3), dt.date(2026, 11, 4))
    assert dbt_run_env(window) == {**window, "DBT_INDIRECT_SELECTION": "buildable"}
    assert dbt_run_env(no_window_env())["DBT_INDIRECT_SELECTION"] == "buildable"
    # Given the Settings' folder, dbt's profile is pointed at it, as an absolute path.
    relative = dbt_run_env(window, Path("data"))["RECS_DATA_DIR"]
    assert Path(relative).is_absolute() and Path(relative) == Path("data").absolute()
    assert "RECS_DATA_DIR" not in dbt_run_env(window)
