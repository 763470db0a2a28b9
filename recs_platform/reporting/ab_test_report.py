"""The sessions of the running A/B test, read from the warehouse, and its report.

`analytics.recommendation_sessions` (dbt) holds one row per session that saw a carousel: its
variant, the model version that answered, its impressions, clicks on recommendations and adds
to cart after such a click. The test compares the versions serving now: for each variant the
model version of its latest session, and only that version's sessions in the window (a retrain
that swaps the challenger starts its comparison afresh; mixing versions would blur it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pandas as pd

from recs_platform.evaluation.ab_test import SESSION_COLUMNS

SESSIONS_TABLE = "analytics.recommendation_sessions"
Query = Callable[..., list[tuple]]


class NoTestSessions(ValueError):
    """The warehouse holds no session of the test (yet)."""


def read_test_sessions(query: Query, window_days: int) -> tuple[pd.DataFrame, dict[str, str]]:
    """Per-session rows (`SESSION_COLUMNS`) of the last `window_days` days, each variant kept
    to the model version of its latest session; and those versions by variant."""
    if window_days < 1:
        raise ValueError(f"window_days must be at least 1, got {window_days}")
    ((last_day,),) = query(f"select max(session_date) from {SESSIONS_TABLE}")
    if last_day is None:
        raise NoTestSessions(f"{SESSIONS_TABLE} is empty: no carousel was shown yet")
    first_day = pd.Timestamp(last_day).date() - dt.timedelta(days=window_days - 1)
    rows = query(
        "select session_id, variant, model_version, impressions, clicks, add_to_carts, "
        f"session_date from {SESSIONS_TABLE} where session_date >= ?",
        [first_day],
    )
    columns = [*SESSION_COLUMNS[:2], "model_version", *SESSION_COLUMNS[2:], "session_date"]
    sessions = pd.DataFrame(rows, columns=columns)
    latest = sessions.sort_values("session_date").groupby("variant")["model_version"].last()
    versions = {str(variant): str(version) for variant, version in latest.items()}
    current = sessions["model_version"].astype(str) == sessions["variant"].map(versions)
    return sessions[current].reset_index(drop=True), versions
