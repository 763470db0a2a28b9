import datetime as dt
import json

import pytest

from recs_platform.transform.dbt_invocation import dbt_build_args, partition_window_vars


def test_a_partition_window_becomes_vars_with_an_exclusive_end():
    assert partition_window_vars(dt.date(2026, 11, 3), dt.date(2026, 11, 6)) == {
        "min_date": "2026-11-03",
        "max_date": "2026-11-06",
    }


def test_an_empty_window_is_refused():
    with pytest.raises(ValueError, match="empty partition window"):
        partition_window_vars(dt.date(2026, 11, 3), dt.date(2026, 11, 3))


def test_build_arguments():
    assert dbt_build_args() == ["build"]
    window = partition_window_vars(dt.date(2026, 11, 3), dt.date(2026, 11, 4))
    args = dbt_build_args(window, full_refresh=True)
    assert args[:2] == ["build", "--vars"] and args[-1] == "--full-refresh"
    assert json.loads(args[2]) == window
