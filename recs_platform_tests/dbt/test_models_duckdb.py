"""The dbt project on DuckDB (target `local`): exact rows for hand-built days, incremental runs
that equal a backfill and a full refresh, and dbt tests that stop a broken day.

Every test runs the real dbt CLI; dbt's start-up and parse take most of each run (~10 s), so
each build is followed by as many assertions as it can answer.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil

import duckdb
import pytest

from recs_platform_tests.dbt.fixture_days import (
    D1,
    D2,
    D3,
    D4,
    DAYS,
    EXPECTED_CLICKS,
    EXPECTED_CONVERSIONS,
    EXPECTED_DUPLICATES,
    EXPECTED_EVENT_PARTITIONS,
    EXPECTED_IMPRESSIONS,
    FIXTURE_VARS,
    IMPRESSION_COLUMNS,
    IMPRESSION_IDS,
    MARTS,
    RAW_EVENTS,
    RAW_EVENTS_WITHOUT_IMPRESSIONS,
    at,
    epoch_ms,
    land_fixture_days,
)
from recs_platform_tests.dbt.harness import (
    MODEL_KEYS,
    RECOMMENDATION_TABLES,
    Warehouse,
    assert_rows_equal,
    duckdb_checksums,
    duckdb_rows,
    load_duckdb_days,
    next_day,
    run_concurrently,
)

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("mart", sorted(MARTS))
def test_marts_hold_exactly_the_expected_rows(built_warehouse, mart):
    expected, _ = MARTS[mart]
    assert_rows_equal(duckdb_rows(built_warehouse, mart), expected)


def test_staging_keeps_each_event_once_in_the_partition_it_first_landed_in(built_warehouse):
    kept = {
        row["event_id"]: (row["event_date"], row["is_late"])
        for row in duckdb_rows(built_warehouse, "stg_events")
    }
    duplicates = [
        (row["event_id"], row["event_date"], row["first_event_date"])
        for row in duckdb_rows(built_warehouse, "stg_event_duplicates")
    ]

    assert kept == EXPECTED_EVENT_PARTITIONS
    assert sorted(duplicates) == EXPECTED_DUPLICATES
    assert len(kept) + len(duplicates) == len(RAW_EVENTS_WITHOUT_IMPRESSIONS)


def test_each_impression_is_staged_once_with_the_cards_it_showed(built_warehouse):
    """Twelve impression rows landed (i02 twice on D1, i20 again on D2): ten impressions."""
    impressions = [
        {column: row[column] for column in IMPRESSION_COLUMNS}
        for row in duckdb_rows(built_warehouse, "stg_impressions")
    ]
    cards = [
        (row["event_id"], row["position"], row["product_sku"], row["event_date"])
        for row in duckdb_rows(built_warehouse, "stg_impression_items")
    ]

    assert sum(event["event_type"] == "impression" for event in RAW_EVENTS) == 12
    assert_rows_equal(impressions, EXPECTED_IMPRESSIONS)
    assert cards == [
        (row["event_id"], position, sku, row["event_date"])
        for row in EXPECTED_IMPRESSIONS
        for position, sku in enumerate(row["shown_skus"], start=1)
    ]


def test_every_click_is_attributed_or_kept_with_its_reason(built_warehouse):
    clicks = [
        (row["event_id"], row["event_date"], row["attribution"], row["impression_event_id"],
         row["impression_date"])
        for row in duckdb_rows(built_warehouse, "int_recommendation_clicks")
    ]  # fmt: skip
    conversions = [
        (row["event_id"], row["product_action"], row["event_date"], row["click_event_id"],
         row["impression_event_id"])
        for row in duckdb_rows(built_warehouse, "int_recommendation_conversions")
    ]  # fmt: skip

    assert clicks == EXPECTED_CLICKS
    assert conversions == EXPECTED_CONVERSIONS


def test_the_marts_count_every_impression_and_click_landed_once(built_warehouse):
    """Checksums against what the fixture landed: each impression once (duplicates included),
    each click once, as a clicked card, a repeat or an unattributed click."""
    landed_clicks = {event["event_id"] for event in RAW_EVENTS if "request_id" in event}
    landed_clicks -= IMPRESSION_IDS
    performance = duckdb_rows(built_warehouse, "recommendation_performance")
    sessions = duckdb_rows(built_warehouse, "recommendation_sessions")

    assert sum(row["impressions"] for row in performance) == len(IMPRESSION_IDS) == 10
    assert sum(
        row["clicks"] + row["repeat_clicks"] + row["unattributed_clicks"] for row in performance
    ) == len(landed_clicks) == 10  # fmt: skip
    assert sum(row["impressions"] for row in sessions) == len(IMPRESSION_IDS)
    assert sum(row["clicks"] for row in sessions) == sum(row["clicks"] for row in performance)
    assert sum(row["add_to_carts"] for row in sessions) == sum(
        row["add_to_carts_after_click"] for row in performance
    )


def test_impressions_change_nothing_of_the_sessions_and_their_statistics(tmp_path, built_warehouse):
    """The same days without their impressions: every table but the carousel's is the same, row
    for row; the clicks, whose impressions never landed, are all kept as unattributed."""
    without = Warehouse(tmp_path / "without_impressions")
    without.root.mkdir()
    land_fixture_days(without, impressions=False)
    load_duckdb_days(without, DAYS)
    without.build((D1, next_day(D4)), extra_vars=FIXTURE_VARS).check()

    with_impressions, without_impressions = (
        duckdb_checksums(built_warehouse),
        duckdb_checksums(without),
    )
    for table in set(MODEL_KEYS) - RECOMMENDATION_TABLES:
        assert without_impressions[table] == with_impressions[table], table
    clicks = duckdb_rows(without, "int_recommendation_clicks")
    assert {row["attribution"] for row in clicks} == {"impression_not_found"}
    assert len(clicks) == len(EXPECTED_CLICKS)
    assert without_impressions["stg_impressions"][0] == 0
    assert without_impressions["recommendation_sessions"][0] == 0


def test_session_events_follow_the_shoppers_clock_across_midnight(built_warehouse):
    """e24 happened at 23:59 on D1 but landed after e22 and e23 (on D2): it is third."""
    midnight = [
        (row["event_index"], row["event_id"], row["session_date"], row["event_date"])
        for row in duckdb_rows(built_warehouse, "int_session_events")
        if row["session_id"] == "s-midnight"
    ]

    assert midnight == [
        (1, "e20", D1, D1),
        (2, "e21", D1, D1),
        (3, "e24", D1, D2),
        (4, "e22", D1, D2),
        (5, "e23", D1, D2),
    ]


@pytest.mark.slow(minutes=1)
def test_a_backfill_equals_day_by_day_runs_and_reruns_change_nothing(tmp_path, built_warehouse):
    """D1 is loaded and built first (the run that creates the tables). Then, on two copies of
    that warehouse: day by day, each day loaded and then built, as the landing sensor and the
    daily runs do, and D2 built once more at the end; and a backfill, the three days loaded and
    built in one run, then an incremental run without a window, then --full-refresh. Every state
    must equal, table for table, the warehouse built from scratch in one run over all four days.
    """
    day_by_day = Warehouse(tmp_path / "day_by_day")
    backfill = Warehouse(tmp_path / "backfill")
    for warehouse in (day_by_day, backfill):
        warehouse.root.mkdir()
        land_fixture_days(warehouse)
    load_duckdb_days(day_by_day, [D1])
    day_by_day.build((D1, D2), extra_vars=FIXTURE_VARS).check()
    shutil.copyfile(day_by_day.duckdb_path, backfill.duckdb_path)

    def run_day_by_day():
        states = {}
        for day in (D2, D3, D4):
            load_duckdb_days(day_by_day, [day])
            day_by_day.build((day, next_day(day)), extra_vars=FIXTURE_VARS).check()
        states["day by day"] = duckdb_checksums(day_by_day)
        day_by_day.build((D2, D3), extra_vars=FIXTURE_VARS).check()
        states["D2 re-run after D4"] = duckdb_checksums(day_by_day)
        return states

    def run_backfill():
        states = {}
        load_duckdb_days(backfill, (D2, D3, D4))
        backfill.build((D2, next_day(D4)), extra_vars=FIXTURE_VARS).check()
        states["backfill of D2..D4 in one run"] = duckdb_checksums(backfill)
        backfill.build(extra_vars=FIXTURE_VARS).check()
        states["incremental run without a window"] = duckdb_checksums(backfill)
        backfill.build(extra_vars=FIXTURE_VARS, flags=["--full-refresh"]).check()
        states["--full-refresh"] = duckdb_checksums(backfill)
        return states

    day_by_day_states, backfill_states = run_concurrently(run_day_by_day, run_backfill)
    reference = duckdb_checksums(built_warehouse)

    assert set(reference) == set(MODEL_KEYS)
    assert all(count > 0 for count, _ in reference.values())
    for state, checksums in (day_by_day_states | backfill_states).items():
        differing = sorted(table for table in reference if checksums[table] != reference[table])
        assert not differing, f"{state}: {differing} differ from the one-run build"


def _insert_raw_rows(warehouse: Warehouse, events: list[dict], day: dt.date) -> None:
    """Rows written straight into raw.events, as a loader that skipped validation would."""
    with duckdb.connect(str(warehouse.duckdb_path)) as conn:
        for line_number, event in enumerate(events, start=1):
            conn.execute(
                """
                insert into raw.events values (
                    $event_id, $session_id, $user_id, $event_type, $product_action, $product_sku,
                    $url, $client_ts, $server_ts, $source, $day, $payload, 'hand-written.jsonl',
                    $line_number
                )
                """,
                {**event, "day": day, "payload": json.dumps(event), "line_number": line_number},
            )


def _event(event_id, session_id, clock, event_type="event_product", action=None, sku=None):
    client_ms = epoch_ms(at(D1, clock))
    return {
        "event_id": event_id,
        "session_id": session_id,
        "user_id": None,
        "event_type": event_type,
        "product_action": action,
        "product_sku": sku,
        "url": "/",
        "client_ts": client_ms,
        "server_ts": client_ms + 100,
        "source": "test",
    }


def _failing_tests(output: str) -> list[str]:
    """Names of the tests dbt reports as failed ("Failure in test <name> (<file>)")."""
    prefix = "Failure in test "
    return sorted(
        line.split(prefix, 1)[1].split(" ", 1)[0] for line in output.splitlines() if prefix in line
    )


def _build_contract_breaking_day(warehouse: Warehouse):
    """An unknown product_action and an unknown event_type, as a loader that skipped
    validation would let through."""
    load_duckdb_days(warehouse, [])
    _insert_raw_rows(
        warehouse,
        [
            _event("x1", "s-x", "10:00:00", action="detail", sku="sku-a"),
            _event("x2", "s-x", "10:01:00", action="wishlist", sku="sku-a"),
            _event("x3", "s-x", "10:02:00", event_type="click"),
        ],
        D1,
    )
    return warehouse.build((D1, D2))


def _build_implausible_day(warehouse: Warehouse):
    """More sessions add to cart than view a product (the funnel step goes above 1), and the
    mean session length is below the bound this run sets."""
    load_duckdb_days(warehouse, [])
    _insert_raw_rows(
        warehouse,
        [
            _event("y1", "s-viewer", "10:00:00", action="detail", sku="sku-a"),
            _event("y2", "s-viewer", "10:01:00", action="add", sku="sku-a"),
            _event("y3", "s-adder-1", "11:00:00", action="add", sku="sku-b"),
            _event("y4", "s-adder-2", "12:00:00", action="add", sku="sku-c"),
        ],
        D1,
    )
    return warehouse.build((D1, D2), extra_vars={"mean_session_events_min": 2})


def test_dbt_build_fails_on_a_broken_day_naming_the_failed_tests(tmp_path):
    contract_breaking, implausible = Warehouse(tmp_path / "contract"), Warehouse(tmp_path / "odd")
    for warehouse in (contract_breaking, implausible):
        warehouse.root.mkdir()

    contract_result, implausible_result = run_concurrently(
        lambda: _build_contract_breaking_day(contract_breaking),
        lambda: _build_implausible_day(implausible),
    )

    assert contract_result.returncode != 0
    assert _failing_tests(contract_result.output) == [
        "accepted_values_stg_events_event_type__pageview__event_product",
        "accepted_values_stg_events_product_action__detail__add__remove__purchase",
    ]
    # Nothing downstream of the failed tests was built.
    assert "SKIP relation analytics.sessions" in contract_result.output
    assert implausible_result.returncode != 0
    failing = _failing_tests(implausible_result.output)
    assert len(failing) == 2, failing
    assert failing[0].startswith("within_range_daily_session_stats_mean_session_events")
    assert failing[1].startswith("within_range_daily_session_stats_view_to_add_rate")


def test_the_carousel_tests_fail_on_a_click_without_its_card_and_on_counts_that_disagree(
    tmp_path, built_warehouse
):
    """Rows broken after the build: an attributed click naming a card that showed another SKU,
    an impression lost from staging, a day with more clicks than cards shown, a CTR above 1."""
    broken = Warehouse(tmp_path / "broken")
    broken.root.mkdir()
    shutil.copyfile(built_warehouse.duckdb_path, broken.duckdb_path)
    with duckdb.connect(str(broken.duckdb_path)) as conn:
        conn.execute(
            "update analytics.int_recommendation_clicks set position = 3 where event_id = 'e05'"
        )
        conn.execute("delete from analytics.stg_impressions where event_id = 'i30'")
        conn.execute(
            "update analytics.recommendation_performance set clicks = 7 "
            "where partition_date = ? and variant = 'champion'",
            [D2],
        )
        conn.execute(
            "update analytics.recommendation_performance set ctr = 1.5 "
            "where partition_date = ? and variant = 'challenger'",
            [D1],
        )

    result = broken.dbt("test", dbt_vars=FIXTURE_VARS)

    assert result.returncode != 0
    failing = _failing_tests(result.output)
    assert failing[:-1] == [
        "attributed_clicks_have_their_impression",
        "expression_is_true_recommendation_performance_clicks_shown_items",
        "landed_impressions_are_kept",
        "recommendation_performance_counts_every_event",
        "relationships_stg_impression_items_event_id__event_id__event_date__ref_stg_impressions_",
    ]
    assert failing[-1].startswith("within_range_recommendation_performance_ctr")


def test_a_partition_runs_tests_read_only_the_partitions_it_rebuilt(tmp_path, built_warehouse):
    """Two D1 rows broken after the build (a session ending before it starts, an event kept
    twice): a run of D4 does not read D1 and passes; a run of D2 reads D1 (its lookback day,
    whose sessions it rebuilds) and fails on both."""
    broken = Warehouse(tmp_path / "broken")
    broken.root.mkdir()
    shutil.copyfile(built_warehouse.duckdb_path, broken.duckdb_path)
    with duckdb.connect(str(broken.duckdb_path)) as conn:
        (session_id,) = conn.execute(
            "select min(session_id) from analytics.sessions where session_date = ?", [D1]
        ).fetchone()
        conn.execute(
            "update analytics.sessions set ended_at = started_at - interval 1 hour "
            "where session_id = ?",
            [session_id],
        )
        conn.execute(
            "insert into analytics.stg_events "
            "select * from analytics.stg_events where event_date = ? limit 1",
            [D1],
        )

    def window_vars(start, end):
        return FIXTURE_VARS | {"min_date": start.isoformat(), "max_date": end.isoformat()}

    d4 = broken.dbt("test", dbt_vars=window_vars(D4, next_day(D4)))
    d2 = broken.dbt("test", dbt_vars=window_vars(D2, D3))

    assert d4.returncode == 0, d4.output
    assert d2.returncode != 0
    assert _failing_tests(d2.output) == [
        "expression_is_true_sessions_ended_at_started_at",
        "unique_within_days_stg_events_event_id__event_date",
    ]


def test_relationships_find_the_parent_row_in_the_partition_the_child_names(
    tmp_path, built_warehouse
):
    """A session event whose event_date no longer matches its staged event (the event exists,
    in another partition) fails the relationships test to stg_events, which looks the parent up
    in that partition only. A D4 run tests the sessions of D3 and D4 only (the moved event's
    session began on D1), so it passes."""
    moved = Warehouse(tmp_path / "moved")
    moved.root.mkdir()
    shutil.copyfile(built_warehouse.duckdb_path, moved.duckdb_path)
    with duckdb.connect(str(moved.duckdb_path)) as conn:
        conn.execute(
            "update analytics.int_session_events set event_date = ? where event_id = "
            "(select min(event_id) from analytics.int_session_events where event_date = ?)",
            [D3, D1],
        )

    every_row = moved.dbt("test")
    d4 = moved.dbt(
        "test", dbt_vars=FIXTURE_VARS | {"min_date": D4.isoformat(), "max_date": "2026-03-05"}
    )

    assert every_row.returncode != 0
    assert _failing_tests(every_row.output) == [
        "relationships_int_session_events_event_id__event_id__event_date__ref_stg_events_"
    ]
    assert d4.returncode == 0, d4.output


def test_a_day_rewrites_only_the_earlier_sessions_its_events_reach(tmp_path, built_warehouse):
    """Every D1 session is marked in a copy of the built tables, then D2 is built again. The D1
    session that D2's events reach (it crosses midnight, and one of its views landed late) is
    rebuilt, unmarked; the other D1 sessions are not rewritten, so they keep the mark (a run
    rebuilt every session of its lookback day before)."""
    marked = Warehouse(tmp_path / "marked")
    marked.root.mkdir()
    shutil.copyfile(built_warehouse.duckdb_path, marked.duckdb_path)
    with duckdb.connect(str(marked.duckdb_path)) as conn:
        reached = {
            row[0]
            for row in conn.execute(
                "select distinct session_id from analytics.int_session_events "
                "where session_date = ? and event_date = ?",
                [D1, D2],
            ).fetchall()
        }
        conn.execute(
            "update analytics.sessions set user_id = 'marked' where session_date = ?", [D1]
        )

    marked.build((D2, D3), extra_vars=FIXTURE_VARS).check()

    d1_sessions = {
        row["session_id"]: row["user_id"]
        for row in duckdb_rows(marked, "sessions")
        if row["session_date"] == D1
    }
    assert reached and reached < set(d1_sessions)
    assert {session for session, user in d1_sessions.items() if user != "marked"} == reached
    assert (
        duckdb_checksums(marked)["int_session_events"]
        == duckdb_checksums(built_warehouse)["int_session_events"]
    )


def test_source_freshness_reports_raw_events_stale(built_warehouse):
    """The fixture's newest partition is D4 (2026-03-04): long past the error threshold."""
    result = built_warehouse.dbt("source", "freshness")

    assert result.returncode == 1
    assert "ERROR STALE freshness of raw.events" in result.output
    sources = json.loads((built_warehouse.root / "dbt_target" / "sources.json").read_text())
    (freshness,) = sources["results"]
    assert freshness["max_loaded_at"].startswith(D4.isoformat())


def test_an_empty_partition_window_fails_before_anything_runs(tmp_path):
    one_day_wrongly = {"min_date": D2.isoformat(), "max_date": D2.isoformat()}

    result = Warehouse(tmp_path).dbt("parse", dbt_vars=one_day_wrongly)

    assert result.returncode != 0
    assert "Empty partition window: max_date (2026-03-02) must be after min_date" in result.output


# A history lookback of one day (as short as the session lookback allows), so that four days
# show every case: what lies within it, and what lands after it.
SHORT_HISTORY_VARS = FIXTURE_VARS | {"history_lookback_days": 1}


def _view(event_id, session_id, client, sku, server=None):
    """A product view happening at `client`, received (so landing) at `server` if given."""
    client_ms = epoch_ms(client)
    return {
        "event_id": event_id,
        "session_id": session_id,
        "user_id": None,
        "event_type": "event_product",
        "product_action": "detail",
        "product_sku": sku,
        "url": f"/p/{sku}",
        "client_ts": client_ms,
        "server_ts": epoch_ms(server) if server else client_ms + 100,
        "source": "test",
    }


def _short_history_events() -> list[dict]:
    """a1 lands on D1 and again on D2 and D3: each copy within a day of the previous one, so
    both are duplicates of D1's (D3's run reads D2 only, where the copy names D1). b1 lands on
    D1 and again on D3, two days later: a new event. s-gone's second event lands on D4, after
    two days of silence. sku-a is viewed on D1 and D2; sku-b on D1 and D3 (b1's new copy)."""
    a1 = _view("a1", "s-a", at(D1, "10:00:00"), "sku-a")
    b1 = _view("b1", "s-b", at(D1, "11:00:00"), "sku-b")
    return [
        a1,
        b1,
        _view("a2", "s-a2", at(D2, "09:00:00"), "sku-a"),
        {**a1, "server_ts": epoch_ms(at(D2, "08:00:00"))},
        {**a1, "server_ts": epoch_ms(at(D3, "08:00:00"))},
        {**b1, "server_ts": epoch_ms(at(D3, "08:00:00"))},
        _view("g1", "s-gone", at(D1, "12:00:00"), "sku-c"),
        _view("g2", "s-gone", at(D1, "12:01:00"), "sku-c", server=at(D4, "07:00:00")),
    ]


def _kept_duplicates_and_first_seen(warehouse: Warehouse) -> tuple:
    kept = sorted(
        (row["event_id"], row["event_date"]) for row in duckdb_rows(warehouse, "stg_events")
    )
    duplicates = sorted(
        (row["event_id"], row["event_date"], row["first_event_date"])
        for row in duckdb_rows(warehouse, "stg_event_duplicates")
    )
    first_seen = {
        (row["product_sku"], row["event_date"]): row["first_seen_date"]
        for row in duckdb_rows(warehouse, "item_stats")
    }
    return kept, duplicates, first_seen


@pytest.mark.slow(minutes=1)
def test_a_run_reads_history_lookback_days_back_and_the_rule_holds_whatever_the_runs(tmp_path):
    """history_lookback_days 1. Day by day (each day loaded, then built), and all four days
    loaded and built in one run: the same kept events, duplicates and first-seen days, as
    dbt_project.yml says. Sessions differ in the one documented case: s-gone's event landing
    after more than the lookback of silence makes a session of its own in D4's run, and its
    D1 session keeps its row; a run that scans D1 too leaves that event out of any session."""
    day_by_day, one_run = Warehouse(tmp_path / "day_by_day"), Warehouse(tmp_path / "one_run")
    for warehouse in (day_by_day, one_run):
        warehouse.root.mkdir()
        warehouse.land(_short_history_events())

    def run_day_by_day():
        for day in (D1, D2, D3, D4):
            load_duckdb_days(day_by_day, [day])
            day_by_day.build((day, next_day(day)), extra_vars=SHORT_HISTORY_VARS).check()

    def run_in_one_run():
        load_duckdb_days(one_run, (D1, D2, D3, D4))
        one_run.build((D1, next_day(D4)), extra_vars=SHORT_HISTORY_VARS).check()

    run_concurrently(run_day_by_day, run_in_one_run)

    kept, duplicates, first_seen = _kept_duplicates_and_first_seen(day_by_day)
    assert ("a1", D1) in kept and ("a1", D2) not in kept and ("a1", D3) not in kept
    assert [(event_id, day) for event_id, day in kept if event_id == "b1"] == [
        ("b1", D1),
        ("b1", D3),
    ]
    assert duplicates == [("a1", D2, D1), ("a1", D3, D1)]
    assert first_seen[("sku-a", D2)] == D1
    assert first_seen[("sku-b", D3)] == D3
    assert _kept_duplicates_and_first_seen(one_run) == (kept, duplicates, first_seen)
    for table in ("stg_events", "stg_event_duplicates", "item_stats"):
        assert duckdb_checksums(day_by_day)[table] == duckdb_checksums(one_run)[table], table

    def gone_sessions(warehouse):
        return [
            (row["session_date"], row["event_count"])
            for row in duckdb_rows(warehouse, "sessions")
            if row["session_id"] == "s-gone"
        ]

    def outside_sessions_on_d4(warehouse):
        (d4,) = [
            r for r in duckdb_rows(warehouse, "daily_session_stats") if r["partition_date"] == D4
        ]
        return d4["events_outside_sessions"]

    assert gone_sessions(day_by_day) == [(D1, 1), (D4, 1)]
    assert outside_sessions_on_d4(day_by_day) == 0
    assert gone_sessions(one_run) == [(D1, 1)]
    assert outside_sessions_on_d4(one_run) == 1


def test_a_history_lookback_shorter_than_the_session_lookback_fails_before_anything_runs(
    tmp_path,
):
    result = Warehouse(tmp_path).dbt(
        "parse", dbt_vars={"history_lookback_days": 1, "lookback_days": 2}
    )

    assert result.returncode != 0
    assert "history_lookback_days (1) must be at least lookback_days (2)" in result.output
