"""What `simulate_to_landing` writes: valid raw events whose statistics match the config."""

import datetime as dt
import gzip
import math
from collections import Counter, defaultdict

import numpy as np
import pytest

from recs_platform.events.contract import parse_line
from recs_platform.events.landing import arrival_date, list_local_dates, list_local_partition
from recs_platform.simulation import (
    SHOP_CONFIG_FILE,
    ShopConfig,
    build_catalogue,
    gini,
    simulate_days,
    simulate_sessions,
    simulate_to_landing,
)

SMALL_SHOP = ShopConfig(days=3, sessions_per_day=1000, seed=5)


def read_landing(root):
    """(folder date, event) for every line, in file order."""
    events = []
    for day in list_local_dates(root):
        for landing_file in list_local_partition(root, day):
            for line in gzip.decompress((root / landing_file.key).read_bytes()).splitlines():
                events.append((day, parse_line(line)))
    return events


def assert_binomial_rate(successes, trials, probability):
    """Within 4 standard deviations of the configured rate."""
    assert trials > 0
    spread = 4 * math.sqrt(trials * probability * (1 - probability))
    assert abs(successes - trials * probability) <= spread, (successes, trials, probability)


@pytest.fixture(scope="module")
def small_shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("landing")
    report = simulate_to_landing(SMALL_SHOP, root)
    return root, report, read_landing(root)


def test_every_line_is_a_valid_raw_event(small_shop):
    root, report, events = small_shop
    assert len(events) == report.events > 20_000
    assert {event["source"] for _, event in events} == {"simulator"}
    skus = set(build_catalogue(SMALL_SHOP).skus)
    for _, event in events:
        if event["event_type"] == "event_product":
            assert event["product_sku"] in skus
            assert event["url"] == f"/p/{event['product_sku']}"
        else:
            assert event["product_sku"] is None and event["product_action"] is None
            assert event["url"] == "/" or event["url"].startswith(("/c/", "/search?q=", "/check"))
        assert event["server_ts"] > event["client_ts"]
    files = sorted(root.glob("events/date=*/*.jsonl.gz"))
    assert [path.relative_to(root).as_posix() for path in files] == sorted(report.files_written)
    assert files[0].name == "simulator-seed5-2026-11-01-00000.jsonl.gz"


def test_each_event_lies_in_the_folder_of_its_arrival_day(small_shop):
    _, _, events = small_shop
    assert all(folder == arrival_date(event["server_ts"]) for folder, event in events)


def test_late_events_land_in_the_next_days_folder(small_shop):
    _, report, events = small_shop
    late = [
        (folder, event)
        for folder, event in events
        if arrival_date(event["server_ts"]) > arrival_date(event["client_ts"])
        and event["server_ts"] - event["client_ts"] > 60_000
    ]
    unique_late = {event["event_id"]: folder for folder, event in late}
    assert len(unique_late) == report.late_events
    for folder, event in late:
        assert folder == arrival_date(event["client_ts"]) + dt.timedelta(days=1)
    assert_binomial_rate(report.late_events, report.unique_events, SMALL_SHOP.late_rate)


def test_duplicates_repeat_the_event_later_with_the_same_event_id(small_shop):
    _, report, events = small_shop
    copies = defaultdict(list)
    for _, event in events:
        copies[event["event_id"]].append(event)
    repeated = [sent for sent in copies.values() if len(sent) > 1]
    assert len(repeated) == report.duplicates
    assert all(len(sent) == 2 for sent in repeated)
    for first, second in repeated:
        assert {**first, "server_ts": 0} == {**second, "server_ts": 0}
        assert first["server_ts"] != second["server_ts"]
    assert_binomial_rate(report.duplicates, report.unique_events, SMALL_SHOP.duplicate_rate)


def test_funnel_rates_match_the_config(small_shop):
    _, report, events = small_shop
    actions = Counter(event["product_action"] for _, event in events)
    assert actions["add"] >= report.adds and actions["purchase"] >= report.purchases
    assert 4 <= report.mean_session_length <= 6
    assert_binomial_rate(report.adds, report.product_views, SMALL_SHOP.add_to_cart_rate)
    assert_binomial_rate(report.removes, report.adds, SMALL_SHOP.remove_rate)
    assert_binomial_rate(
        report.sessions_with_purchase, report.sessions_with_cart, SMALL_SHOP.purchase_rate
    )
    assert_binomial_rate(report.reloads, report.product_views, SMALL_SHOP.reload_rate)
    assert report.sessions == sum(SMALL_SHOP.sessions_on(day) for day in range(3))
    table = report.format_table()
    assert "gini of product views" in table and "late rate" in table


def test_sessions_in_memory_are_the_sessions_in_the_landing_zone(small_shop):
    """simulate_sessions takes the same random path: its views are the landed detail events,
    once deduplicated on event_id and with consecutive repeats (reloads) removed."""
    _, report, events = small_shop
    details = {}
    for _, event in events:
        if event["product_action"] == "detail":
            details[event["event_id"]] = event
    by_session = defaultdict(list)
    for event in sorted(details.values(), key=lambda event: event["client_ts"]):
        views = by_session[event["session_id"]]
        if not views or views[-1] != event["product_sku"]:
            views.append(event["product_sku"])
    sessions = simulate_sessions(SMALL_SHOP)
    assert len(sessions) == report.sessions
    assert {session.session_id: list(session.skus) for session in sessions} == by_session
    assert sum(len(session.items) for session in sessions) == report.product_views
    reloads = len(details) - report.product_views
    assert reloads == report.reloads > 0


def test_same_seed_same_files_and_another_seed_other_files(tmp_path):
    """Same names, same bytes (the gzip header records neither a time nor a file name)."""
    config = ShopConfig(days=2, sessions_per_day=300, seed=21)

    def landed(root, config):
        simulate_to_landing(config, root)
        return {
            path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.glob("events/*/*"))
        }

    first = landed(tmp_path / "first", config)
    assert len(first) == 3
    assert first == landed(tmp_path / "second", config)
    other = landed(tmp_path / "other", ShopConfig(days=2, sessions_per_day=300, seed=22))
    first_lines = set(b"".join(map(gzip.decompress, first.values())).splitlines())
    other_lines = set(b"".join(map(gzip.decompress, other.values())).splitlines())
    assert not first_lines & other_lines


def test_default_shop_has_the_intended_popularity_skew_and_lengths():
    config = ShopConfig()
    catalogue = build_catalogue(config)
    views = np.zeros(catalogue.n_items, dtype=np.int64)
    lengths = []
    for simulated in simulate_days(config, catalogue):
        views += np.bincount(simulated.items, minlength=catalogue.n_items)
        lengths.append(simulated.lengths)
    assert 0.8 <= gini(views) <= 0.9
    lengths = np.concatenate(lengths)
    assert 4 <= lengths.mean() <= 6
    assert lengths.max() > 25  # a long tail, capped
    assert lengths.max() <= config.max_session_length


def test_gini_on_hand_computed_cases():
    assert gini(np.array([3, 3, 3, 3])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 8])) == pytest.approx(0.75)
    assert gini(np.array([1, 2, 3, 4])) == pytest.approx(0.25)


def test_the_shop_configuration_is_written_beside_the_events(small_shop):
    root, _, _ = small_shop
    assert ShopConfig.read(root / SHOP_CONFIG_FILE) == SMALL_SHOP


def test_a_shop_with_return_visits_lands_its_repeated_views(tmp_path):
    """The same renderer serves every family: a session that goes back to a product lands a
    second detail of it, which stays once reloads (consecutive repeats) are removed."""
    config = ShopConfig(days=2, sessions_per_day=300, seed=5, family="revisits")
    simulate_to_landing(config, tmp_path)
    details = {
        event["event_id"]: event
        for _, event in read_landing(tmp_path)
        if event["product_action"] == "detail"
    }
    landed = defaultdict(list)
    for event in sorted(details.values(), key=lambda event: event["client_ts"]):
        views = landed[event["session_id"]]
        if not views or views[-1] != event["product_sku"]:
            views.append(event["product_sku"])
    sessions = {session.session_id: list(session.skus) for session in simulate_sessions(config)}
    assert landed == sessions
    assert sum(len(skus) - len(set(skus)) for skus in sessions.values()) > 100
    assert ShopConfig.read(tmp_path / SHOP_CONFIG_FILE).family == "revisits"
