"""Hand-built raw events for four partition days, and every row the dbt marts must make of them.

D1 holds an ordinary session with a reload, an add and a purchase; a session of page views only;
a one-view session; and a session that starts at 23:50 and goes on after midnight, one of whose
D1 views is delivered late (it lands on D2). D2 holds the rest of that session, a fresh session,
and an offline session whose events all happened on D1 but landed on D2 together. D3 is empty.
D4 holds a new session, an event of a D2 session that landed two days late (beyond the default
lookback of one day, so it belongs to no session), and a copy of a D1 event delivered again.
Duplicates: one within D1, one of a D1 event on D2, one of a D1 event on D4.

The carousel rides on the same sessions: impressions (champion version 3, a fallback without a
version, challenger version 4 in s-midnight and s-offline, champion version 5 on D4) and clicks,
which are some of the product views above carrying a request id and position. They leave every
table of the sessions exactly as without them (the expected rows below were worked out before
there were impressions). s-browse clicks card 2 of its first carousel twice and card 1 of its
second, then adds and buys that SKU; s-midnight clicks across midnight (a D1 impression, its
click landing on D2); s-single clicks with a request id no impression carries; s-offline clicks
a position that showed another SKU; e60's click lands two days after its impression, beyond the
lookback. Impressions are delivered twice as well (i02 within D1, i20 on D2).

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
    click: tuple[str, int] | None = None,
) -> dict[str, Any]:
    """A page view, or a product event; `click` (request id, position) makes a view a click."""
    client_ms = epoch_ms(client)
    event = {
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
    if click:
        event["request_id"], event["position"] = click
    return event


def _impression(
    event_id: str,
    session_id: str,
    client: dt.datetime,
    anchor: str,
    request_id: str,
    shown: list[str],
    variant: str,
    version: str | None,
    *,
    user_id: str | None = None,
    server: dt.datetime | None = None,
) -> dict[str, Any]:
    """A carousel on the page of `anchor` showing `shown`, as /recommend answered it."""
    return {
        **_event(event_id, session_id, client, user_id=user_id, server=server),
        "event_type": "impression",
        "product_sku": anchor,
        "url": f"/p/{anchor}",
        "request_id": request_id,
        "shown_skus": shown,
        "model_name": "session-recommender",
        "model_version": version,
        "variant": variant,
        "fallback": None if version else "popularity",
    }


def _redelivered(event: dict[str, Any], server: dt.datetime) -> dict[str, Any]:
    """The same event delivered again (same event_id), received at `server`."""
    return {**event, "server_ts": epoch_ms(server)}


EVENTS: list[dict[str, Any]] = [
    # s-browse: the user id is known from its second event on; a reload (e03) repeats e02.
    _event("e01", "s-browse", at(D1, "10:00:00")),
    _impression("i01", "s-browse", at(D1, "10:00:10"), "sku-a", "r-1", ["sku-x", "sku-a"],
                "champion", "3"),
    _event("e02", "s-browse", at(D1, "10:00:30"), "detail", "sku-a", user_id="u-1",
           click=("r-1", 2)),
    _event("e03", "s-browse", at(D1, "10:00:31"), "detail", "sku-a", user_id="u-1",
           click=("r-1", 2)),
    _impression("i02", "s-browse", at(D1, "10:00:35"), "sku-a", "r-2",
                ["sku-b", "sku-c", "sku-d"], "champion", "3", user_id="u-1"),
    _event("e04", "s-browse", at(D1, "10:01:00"), user_id="u-1"),
    _event("e05", "s-browse", at(D1, "10:02:00"), "detail", "sku-b", user_id="u-1",
           click=("r-2", 1)),
    _event("e06", "s-browse", at(D1, "10:02:30"), "add", "sku-b", user_id="u-1"),
    _event("e07", "s-browse", at(D1, "10:03:00"), "detail", "sku-a", user_id="u-1"),
    _event("e08", "s-browse", at(D1, "10:05:00"), "purchase", "sku-b", user_id="u-1"),
    # s-pages: page views only (and a fallback carousel, which does not make a product event).
    _event("e10", "s-pages", at(D1, "12:00:00")),
    _impression("i10", "s-pages", at(D1, "12:00:10"), "sku-a", "r-10", ["sku-a", "sku-b"],
                "champion", None),
    _event("e11", "s-pages", at(D1, "12:05:00")),
    # s-midnight: crosses midnight; e24 happened at 23:59 on D1 but landed at 00:30 on D2.
    _event("e20", "s-midnight", at(D1, "23:50:00"), "detail", "sku-c", user_id="u-2"),
    _impression("i20", "s-midnight", at(D1, "23:50:05"), "sku-c", "r-20", ["sku-d", "sku-e"],
                "challenger", "4", user_id="u-2"),
    _event("e21", "s-midnight", at(D1, "23:58:00"), "detail", "sku-d", user_id="u-2",
           click=("r-20", 1)),
    _impression("i21", "s-midnight", at(D1, "23:58:05"), "sku-d", "r-21", ["sku-f", "sku-y"],
                "challenger", "4", user_id="u-2"),
    _event(
        "e24",
        "s-midnight",
        at(D1, "23:59:00"),
        "detail",
        "sku-f",
        user_id="u-2",
        server=at(D2, "00:30:00"),
        click=("r-21", 1),
    ),
    _event("e22", "s-midnight", at(D2, "00:03:00"), "detail", "sku-e", user_id="u-2"),
    _impression("i22", "s-midnight", at(D2, "00:03:05"), "sku-e", "r-22", ["sku-c"],
                "challenger", "4", user_id="u-2"),
    _event("e23", "s-midnight", at(D2, "00:04:00"), "add", "sku-e", user_id="u-2"),
    # s-single: one product view, a click on a request no impression carries.
    _event("e30", "s-single", at(D1, "15:00:00"), "detail", "sku-a", user_id="u-3",
           click=("r-99", 1)),
    _impression("i30", "s-single", at(D1, "15:00:05"), "sku-a", "r-30", ["sku-b"],
                "champion", "3", user_id="u-3"),
    # s-d2: a remove; e60 happened right after e44 but landed on D4, two days late.
    _event("e40", "s-d2", at(D2, "09:00:00")),
    _event("e41", "s-d2", at(D2, "09:01:00"), "detail", "sku-b"),
    _impression("i40", "s-d2", at(D2, "09:01:05"), "sku-b", "r-40", ["sku-g", "sku-h", "sku-b"],
                "champion", "3"),
    _event("e42", "s-d2", at(D2, "09:02:00"), "detail", "sku-g", click=("r-40", 1)),
    _event("e43", "s-d2", at(D2, "09:03:00"), "add", "sku-g"),
    _event("e44", "s-d2", at(D2, "09:04:00"), "remove", "sku-g"),
    _event("e60", "s-d2", at(D2, "09:05:00"), "detail", "sku-z", server=at(D4, "08:00:00"),
           click=("r-40", 2)),
    # s-offline: happened on D1, sent together after reconnecting on D2 (same server_ts).
    _event("e50", "s-offline", at(D1, "22:00:00"), "detail", "sku-h", server=at(D2, "01:00:00")),
    _impression("i50", "s-offline", at(D1, "22:00:05"), "sku-h", "r-50", ["sku-i", "sku-j"],
                "challenger", "4", server=at(D2, "01:00:00")),
    _event("e51", "s-offline", at(D1, "22:01:00"), "detail", "sku-i", server=at(D2, "01:00:00"),
           click=("r-50", 2)),
    # s-d4
    _event("e70", "s-d4", at(D4, "11:00:00"), "detail", "sku-a"),
    _impression("i70", "s-d4", at(D4, "11:00:05"), "sku-a", "r-70", ["sku-b", "sku-c"],
                "champion", "5"),
    _event("e71", "s-d4", at(D4, "11:01:00"), "detail", "sku-b", click=("r-70", 1)),
]  # fmt: skip
_BY_ID = {event["event_id"]: event for event in EVENTS}
DUPLICATES: list[dict[str, Any]] = [
    _redelivered(_BY_ID["e02"], at(D1, "10:00:45")),
    _redelivered(_BY_ID["e05"], at(D2, "00:10:00")),
    _redelivered(_BY_ID["e30"], at(D4, "09:00:00")),
    _redelivered(_BY_ID["i02"], at(D1, "10:00:50")),
    _redelivered(_BY_ID["i20"], at(D2, "07:00:00")),
]
RAW_EVENTS = EVENTS + DUPLICATES
IMPRESSION_IDS = frozenset(e["event_id"] for e in EVENTS if e["event_type"] == "impression")
RAW_EVENTS_WITHOUT_IMPRESSIONS = [e for e in RAW_EVENTS if e["event_type"] != "impression"]
RAW_IMPRESSIONS = [e for e in RAW_EVENTS if e["event_type"] == "impression"]


def land_fixture_days(warehouse: Any, *, impressions: bool = True) -> None:
    """Write the fixture's raw events into the warehouse's landing zone. The impressions go to
    files of their own (producer `carousel`), so that every other event has the same file and
    line with or without them."""
    warehouse.land(RAW_EVENTS_WITHOUT_IMPRESSIONS)
    if impressions:
        warehouse.land(RAW_IMPRESSIONS, producer="carousel")


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

# stg_impressions: each impression once, in the partition of its first copy.
IMPRESSION_COLUMNS = (
    "event_id", "event_date", "session_id", "request_id", "anchor_sku", "shown_skus",
    "shown_count", "variant", "model_version", "fallback", "is_late",
)  # fmt: skip
EXPECTED_IMPRESSIONS = [
    dict(zip(IMPRESSION_COLUMNS, row, strict=True))
    for row in [
        ("i01", D1, "s-browse", "r-1", "sku-a", ["sku-x", "sku-a"], 2, "champion", "3", None,
         False),
        ("i02", D1, "s-browse", "r-2", "sku-a", ["sku-b", "sku-c", "sku-d"], 3, "champion", "3",
         None, False),
        ("i10", D1, "s-pages", "r-10", "sku-a", ["sku-a", "sku-b"], 2, "champion", None,
         "popularity", False),
        ("i20", D1, "s-midnight", "r-20", "sku-c", ["sku-d", "sku-e"], 2, "challenger", "4",
         None, False),
        ("i21", D1, "s-midnight", "r-21", "sku-d", ["sku-f", "sku-y"], 2, "challenger", "4",
         None, False),
        ("i22", D2, "s-midnight", "r-22", "sku-e", ["sku-c"], 1, "challenger", "4", None, False),
        ("i30", D1, "s-single", "r-30", "sku-a", ["sku-b"], 1, "champion", "3", None, False),
        ("i40", D2, "s-d2", "r-40", "sku-b", ["sku-g", "sku-h", "sku-b"], 3, "champion", "3",
         None, False),
        ("i50", D2, "s-offline", "r-50", "sku-h", ["sku-i", "sku-j"], 2, "challenger", "4",
         None, True),
        ("i70", D4, "s-d4", "r-70", "sku-a", ["sku-b", "sku-c"], 2, "champion", "5", None, False),
    ]
]  # fmt: skip

# int_recommendation_clicks: (click, its partition, attribution, impression, its partition).
EXPECTED_CLICKS = [
    ("e02", D1, "attributed", "i01", D1),
    ("e03", D1, "attributed", "i01", D1),
    ("e05", D1, "attributed", "i02", D1),
    ("e21", D1, "attributed", "i20", D1),
    ("e24", D2, "attributed", "i21", D1),
    ("e30", D1, "impression_not_found", None, None),
    ("e42", D2, "attributed", "i40", D2),
    ("e51", D2, "sku_not_at_position", "i50", D2),
    ("e60", D4, "impression_not_found", None, None),
    ("e71", D4, "attributed", "i70", D4),
]
# int_recommendation_conversions: (add or purchase, action, its partition, click, impression).
EXPECTED_CONVERSIONS = [
    ("e06", "add", D1, "e05", "i02"),
    ("e08", "purchase", D1, "e05", "i02"),
    ("e43", "add", D2, "e42", "i40"),
]

PERFORMANCE_COLUMNS = (
    "partition_date", "variant", "model_version", "sessions", "impressions", "shown_items",
    "clicks", "ctr", "mean_clicked_position", "repeat_clicks", "add_to_carts_after_click",
    "purchases_after_click", "unattributed_clicks",
)  # fmt: skip
EXPECTED_RECOMMENDATION_PERFORMANCE = [
    dict(zip(PERFORMANCE_COLUMNS, row, strict=True))
    for row in [
        # i20 and i21, each clicked at position 1 (e24's click landed on D2).
        (D1, "challenger", "4", 1, 2, 4, 2, 1.0, 1.0, 0, 0, 0, 0),
        # i01 (card 2 clicked twice: one click, one repeat), i02 (card 1, then its add and
        # purchase), i30 (not clicked).
        (D1, "champion", "3", 2, 3, 6, 2, 2 / 3, 1.5, 1, 1, 1, 0),
        # i10, the fallback without a version.
        (D1, "champion", "unversioned", 1, 1, 2, 0, 0.0, None, 0, 0, 0, 0),
        # e30: no impression of r-99.
        (D1, None, None, 0, 0, 0, 0, None, None, 0, 0, 0, 1),
        # i22 and i50 (e51 names a position that showed another SKU).
        (D2, "challenger", "4", 2, 2, 3, 0, 0.0, None, 0, 0, 0, 1),
        # i40, card 1 clicked (e42), then an add (e43).
        (D2, "champion", "3", 1, 1, 3, 1, 1.0, 1.0, 0, 1, 0, 0),
        (D4, "champion", "5", 1, 1, 2, 1, 1.0, 1.0, 0, 0, 0, 0),
        # e60: r-40's impression landed on D2, more than lookback_days before.
        (D4, None, None, 0, 0, 0, 0, None, None, 0, 0, 0, 1),
    ]
]  # fmt: skip

RECOMMENDATION_SESSION_COLUMNS = (
    "session_id", "session_date", "variant", "model_version", "impressions", "clicks",
    "add_to_carts",
)  # fmt: skip
EXPECTED_RECOMMENDATION_SESSIONS = [
    dict(zip(RECOMMENDATION_SESSION_COLUMNS, row, strict=True))
    for row in [
        ("s-browse", D1, "champion", "3", 2, 2, 1),
        ("s-d2", D2, "champion", "3", 1, 1, 1),
        ("s-d4", D4, "champion", "5", 1, 1, 0),
        # i22 landed on D2, within the lookback of the session's first impression.
        ("s-midnight", D1, "challenger", "4", 3, 2, 0),
        ("s-offline", D2, "challenger", "4", 1, 0, 0),
        ("s-pages", D1, "champion", "unversioned", 1, 0, 0),
        ("s-single", D1, "champion", "3", 1, 0, 0),
    ]
]  # fmt: skip

MARTS = {
    "sessions": (EXPECTED_SESSIONS, ("session_id",)),
    "training_sessions": (EXPECTED_TRAINING_SESSIONS, ("session_id",)),
    "item_stats": (EXPECTED_ITEM_STATS, ("event_date", "product_sku")),
    "daily_session_stats": (EXPECTED_DAILY_SESSION_STATS, ("partition_date",)),
    "recommendation_performance": (
        EXPECTED_RECOMMENDATION_PERFORMANCE,
        ("partition_date", "variant", "model_version"),
    ),
    "recommendation_sessions": (
        EXPECTED_RECOMMENDATION_SESSIONS,
        ("session_id", "variant", "model_version"),
    ),
}
