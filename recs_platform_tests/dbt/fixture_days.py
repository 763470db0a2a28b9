"""Hand-built raw events for four partition days, and every row the dbt marts must make of them.

D1 holds an ordinary session with a reload, an add and a purchase; a session of page views only;
a one-view session; and a session that starts at 23:50 and goes on after midnight, one of whose
D1 views is delivered late (it lands on D2). D2 holds the rest of that session, a fresh session,
and an offline session whose events all happened on D1 but landed on D2 together. D3 is empty.
D4 holds a new session, an event of a D2 session that landed two days late (beyond the default
lookback of one day, so it belongs to no session), and a copy of a D1 event delivered again.
Duplicates: one within D1, one of a D1 event on D2, one of a D1 event on D4.

Every expected row below was worked out by hand from these events (with `training_max_items`
= 3, which `FIXTURE_VARS` sets, so the capping of training sessions is exercised too).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

D1, D2, D3, D4 = (dt.date(2026, 3, day) for day in (1, 2, 3, 4))
DAYS = (D1, D2, D3, D4)
# The one var every fixture run passes besides the window.
FIXTURE_VARS = {"training_max_items": 3}
NETWORK_DELAY_MS = 100


def at(day: dt.date, clock: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(clock))


def epoch_ms(moment: dt.datetime) -> int:
    return int(moment.replace(tzinfo=dt.UTC).timestamp() * 1000)


def _event(
    event_id: str,
    session_id: str,
    client: dt.datetime,
    action: str | None = None,
    sku: str | None = None,
    *,
    user_id: str | None = None,
    server: dt.datetime | None = None,
) -> dict[str, Any]:
    client_ms = epoch_ms(client)
    return {
        "event_id": event_id,
        "session_id": session_id,
        "user_id": user_id,
        "event_type": "event_product" if action else "pageview",
        "product_action": action,
        "product_sku": sku,
        "url": f"/p/{sku}" if sku else "/",
        "client_ts": client_ms,
        "server_ts": epoch_ms(server) if server else client_ms + NETWORK_DELAY_MS,
        "source": "test",
    }


def _redelivered(event: dict[str, Any], server: dt.datetime) -> dict[str, Any]:
    """The same event delivered again (same event_id), received at `server`."""
    return {**event, "server_ts": epoch_ms(server)}


EVENTS: list[dict[str, Any]] = [
    # s-browse: the user id is known from its second event on; a reload (e03) repeats e02.
    _event("e01", "s-browse", at(D1, "10:00:00")),
    _event("e02", "s-browse", at(D1, "10:00:30"), "detail", "sku-a", user_id="u-1"),
    _event("e03", "s-browse", at(D1, "10:00:31"), "detail", "sku-a", user_id="u-1"),
    _event("e04", "s-browse", at(D1, "10:01:00"), user_id="u-1"),
    _event("e05", "s-browse", at(D1, "10:02:00"), "detail", "sku-b", user_id="u-1"),
    _event("e06", "s-browse", at(D1, "10:02:30"), "add", "sku-b", user_id="u-1"),
    _event("e07", "s-browse", at(D1, "10:03:00"), "detail", "sku-a", user_id="u-1"),
    _event("e08", "s-browse", at(D1, "10:05:00"), "purchase", "sku-b", user_id="u-1"),
    # s-pages: page views only.
    _event("e10", "s-pages", at(D1, "12:00:00")),
    _event("e11", "s-pages", at(D1, "12:05:00")),
    # s-midnight: crosses midnight; e24 happened at 23:59 on D1 but landed at 00:30 on D2.
    _event("e20", "s-midnight", at(D1, "23:50:00"), "detail", "sku-c", user_id="u-2"),
    _event("e21", "s-midnight", at(D1, "23:58:00"), "detail", "sku-d", user_id="u-2"),
    _event(
        "e24",
        "s-midnight",
        at(D1, "23:59:00"),
        "detail",
        "sku-f",
        user_id="u-2",
        server=at(D2, "00:30:00"),
    ),
    _event("e22", "s-midnight", at(D2, "00:03:00"), "detail", "sku-e", user_id="u-2"),
    _event("e23", "s-midnight", at(D2, "00:04:00"), "add", "sku-e", user_id="u-2"),
    # s-single: one product view.
    _event("e30", "s-single", at(D1, "15:00:00"), "detail", "sku-a", user_id="u-3"),
    # s-d2: a remove; e60 happened right after e44 but landed on D4, two days late.
    _event("e40", "s-d2", at(D2, "09:00:00")),
    _event("e41", "s-d2", at(D2, "09:01:00"), "detail", "sku-b"),
    _event("e42", "s-d2", at(D2, "09:02:00"), "detail", "sku-g"),
    _event("e43", "s-d2", at(D2, "09:03:00"), "add", "sku-g"),
    _event("e44", "s-d2", at(D2, "09:04:00"), "remove", "sku-g"),
    _event("e60", "s-d2", at(D2, "09:05:00"), "detail", "sku-z", server=at(D4, "08:00:00")),
    # s-offline: happened on D1, sent together after reconnecting on D2 (same server_ts).
    _event("e50", "s-offline", at(D1, "22:00:00"), "detail", "sku-h", server=at(D2, "01:00:00")),
    _event("e51", "s-offline", at(D1, "22:01:00"), "detail", "sku-i", server=at(D2, "01:00:00")),
    # s-d4
    _event("e70", "s-d4", at(D4, "11:00:00"), "detail", "sku-a"),
    _event("e71", "s-d4", at(D4, "11:01:00"), "detail", "sku-b"),
]
_BY_ID = {event["event_id"]: event for event in EVENTS}
DUPLICATES: list[dict[str, Any]] = [
    _redelivered(_BY_ID["e02"], at(D1, "10:00:45")),
    _redelivered(_BY_ID["e05"], at(D2, "00:10:00")),
    _redelivered(_BY_ID["e30"], at(D4, "09:00:00")),
]
RAW_EVENTS = EVENTS + DUPLICATES


def _ms(day: dt.date, clock: str) -> int:
    return epoch_ms(at(day, clock))


def _interaction(sku: str, action: str, day: dt.date, clock: str) -> dict[str, Any]:
    return {"sku": sku, "action": action, "ts": _ms(day, clock)}


SESSION_COLUMNS = (
    "session_id",
    "session_date",
    "user_id",
    "started_at",
    "ended_at",
    "duration_seconds",
    "event_count",
    "pageview_count",
    "product_event_count",
    "detail_count",
    "add_count",
    "remove_count",
    "purchase_count",
    "distinct_sku_count",
    "late_event_count",
    "product_interactions",
)
EXPECTED_SESSIONS = [
    dict(zip(SESSION_COLUMNS, row, strict=True))
    for row in [
        (
            "s-browse", D1, "u-1", at(D1, "10:00:00"), at(D1, "10:05:00"), 300.0,
            8, 2, 6, 4, 1, 0, 1, 2, 0,
            [
                _interaction("sku-a", "detail", D1, "10:00:30"),
                _interaction("sku-a", "detail", D1, "10:00:31"),
                _interaction("sku-b", "detail", D1, "10:02:00"),
                _interaction("sku-b", "add", D1, "10:02:30"),
                _interaction("sku-a", "detail", D1, "10:03:00"),
                _interaction("sku-b", "purchase", D1, "10:05:00"),
            ],
        ),
        (
            "s-d2", D2, None, at(D2, "09:00:00"), at(D2, "09:04:00"), 240.0,
            5, 1, 4, 2, 1, 1, 0, 2, 0,
            [
                _interaction("sku-b", "detail", D2, "09:01:00"),
                _interaction("sku-g", "detail", D2, "09:02:00"),
                _interaction("sku-g", "add", D2, "09:03:00"),
                _interaction("sku-g", "remove", D2, "09:04:00"),
            ],
        ),
        (
            "s-d4", D4, None, at(D4, "11:00:00"), at(D4, "11:01:00"), 60.0,
            2, 0, 2, 2, 0, 0, 0, 2, 0,
            [
                _interaction("sku-a", "detail", D4, "11:00:00"),
                _interaction("sku-b", "detail", D4, "11:01:00"),
            ],
        ),
        (
            "s-midnight", D1, "u-2", at(D1, "23:50:00"), at(D2, "00:04:00"), 840.0,
            5, 0, 5, 4, 1, 0, 0, 4, 1,
            [
                _interaction("sku-c", "detail", D1, "23:50:00"),
                _interaction("sku-d", "detail", D1, "23:58:00"),
                _interaction("sku-f", "detail", D1, "23:59:00"),
                _interaction("sku-e", "detail", D2, "00:03:00"),
                _interaction("sku-e", "add", D2, "00:04:00"),
            ],
        ),
        (
            "s-offline", D2, None, at(D1, "22:00:00"), at(D1, "22:01:00"), 60.0,
            2, 0, 2, 2, 0, 0, 0, 2, 2,
            [
                _interaction("sku-h", "detail", D1, "22:00:00"),
                _interaction("sku-i", "detail", D1, "22:01:00"),
            ],
        ),
        (
            "s-pages", D1, None, at(D1, "12:00:00"), at(D1, "12:05:00"), 300.0,
            2, 2, 0, 0, 0, 0, 0, 0, 0,
            [],
        ),
        (
            "s-single", D1, "u-3", at(D1, "15:00:00"), at(D1, "15:00:00"), 0.0,
            1, 0, 1, 1, 0, 0, 0, 1, 0,
            [_interaction("sku-a", "detail", D1, "15:00:00")],
        ),
    ]
]  # fmt: skip

TRAINING_COLUMNS = (
    "session_id",
    "session_date",
    "items",
    "item_count",
    "view_count",
    "is_truncated",
)
EXPECTED_TRAINING_SESSIONS = [
    dict(zip(TRAINING_COLUMNS, row, strict=True))
    for row in [
        ("s-browse", D1, ["sku-a", "sku-b", "sku-a"], 3, 3, False),
        ("s-d2", D2, ["sku-b", "sku-g"], 2, 2, False),
        ("s-d4", D4, ["sku-a", "sku-b"], 2, 2, False),
        # c, d, f, e: four views, the most recent three kept.
        ("s-midnight", D1, ["sku-d", "sku-f", "sku-e"], 3, 4, True),
        ("s-offline", D2, ["sku-h", "sku-i"], 2, 2, False),
    ]
]

ITEM_COLUMNS = (
    "event_date",
    "product_sku",
    "view_count",
    "add_count",
    "remove_count",
    "purchase_count",
    "session_count",
    "first_seen_date",
)
EXPECTED_ITEM_STATS = [
    dict(zip(ITEM_COLUMNS, row, strict=True))
    for row in [
        (D1, "sku-a", 4, 0, 0, 0, 2, D1),
        (D1, "sku-b", 1, 1, 0, 1, 1, D1),
        (D1, "sku-c", 1, 0, 0, 0, 1, D1),
        (D1, "sku-d", 1, 0, 0, 0, 1, D1),
        (D2, "sku-b", 1, 0, 0, 0, 1, D1),
        (D2, "sku-e", 1, 1, 0, 0, 1, D2),
        (D2, "sku-f", 1, 0, 0, 0, 1, D2),
        (D2, "sku-g", 1, 1, 1, 0, 1, D2),
        (D2, "sku-h", 1, 0, 0, 0, 1, D2),
        (D2, "sku-i", 1, 0, 0, 0, 1, D2),
        (D4, "sku-a", 1, 0, 0, 0, 1, D1),
        (D4, "sku-b", 1, 0, 0, 0, 1, D1),
        (D4, "sku-z", 1, 0, 0, 0, 1, D4),
    ]
]

DAILY_COLUMNS = (
    "partition_date",
    "sessions",
    "session_events",
    "product_views",
    "sessions_with_view",
    "sessions_with_add",
    "sessions_with_purchase",
    "view_session_rate",
    "add_session_rate",
    "purchase_session_rate",
    "view_to_add_rate",
    "add_to_purchase_rate",
    "mean_session_events",
    "median_session_events",
    "mean_session_seconds",
    "median_session_seconds",
    "distinct_items",
    "landed_rows",
    "duplicate_rows",
    "duplicate_rate",
    "landed_events",
    "late_events",
    "late_event_rate",
    "events_outside_sessions",
)
EXPECTED_DAILY_SESSION_STATS = [
    dict(zip(DAILY_COLUMNS, row, strict=True))
    for row in [
        # sessions s-browse (8 events), s-pages (2), s-midnight (5), s-single (1).
        (
            D1, 4, 16, 9, 3, 2, 1, 0.75, 0.5, 0.25, 2 / 3, 0.5,
            4.0, 3.5, 360.0, 300.0, 6, 14, 1, 1 / 14, 13, 0, 0.0, 0,
        ),
        # sessions s-d2 (5 events; e60 landed too late), s-offline (2); late: e24, e50, e51.
        (
            D2, 2, 7, 4, 2, 1, 0, 1.0, 0.5, 0.0, 0.5, 0.0,
            3.5, 3.5, 150.0, 150.0, 4, 11, 1, 1 / 11, 10, 3, 0.3, 0,
        ),
        # nothing landed.
        (
            D3, 0, 0, 0, 0, 0, 0, None, None, None, None, None,
            None, None, None, None, 0, 0, 0, None, 0, 0, None, 0,
        ),
        # session s-d4; e60 (late, outside its session) and a copy of e30 landed too.
        (
            D4, 1, 2, 2, 1, 0, 0, 1.0, 0.0, 0.0, 0.0, None,
            2.0, 2.0, 60.0, 60.0, 2, 4, 1, 0.25, 3, 1, 1 / 3, 1,
        ),
    ]
]  # fmt: skip

# stg_events: the partition each event is kept in, and whether it landed late.
EXPECTED_EVENT_PARTITIONS = {
    **{event_id: (D1, False) for event_id in ("e01", "e02", "e03", "e04", "e05", "e06")},
    **{event_id: (D1, False) for event_id in ("e07", "e08", "e10", "e11", "e20", "e21", "e30")},
    **{event_id: (D2, False) for event_id in ("e22", "e23", "e40", "e41", "e42", "e43", "e44")},
    **{event_id: (D2, True) for event_id in ("e24", "e50", "e51")},
    "e60": (D4, True),
    "e70": (D4, False),
    "e71": (D4, False),
}
# stg_event_duplicates: (event_id, partition of the copy, partition of the first copy).
EXPECTED_DUPLICATES = [("e02", D1, D1), ("e05", D2, D1), ("e30", D4, D1)]

MARTS = {
    "sessions": (EXPECTED_SESSIONS, ("session_id",)),
    "training_sessions": (EXPECTED_TRAINING_SESSIONS, ("session_id",)),
    "item_stats": (EXPECTED_ITEM_STATS, ("event_date", "product_sku")),
    "daily_session_stats": (EXPECTED_DAILY_SESSION_STATS, ("partition_date",)),
}
