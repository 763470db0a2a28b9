"""The shop families: each generator against its oracle, and each family's defining behaviour."""

import dataclasses
from collections import Counter

import numpy as np
import pytest

from recs_platform.evaluation.protocol import next_item_targets
from recs_platform.simulation import (
    FAMILY_NAMES,
    FAMILY_SUMMARIES,
    Oracle,
    ShopConfig,
    build_catalogue,
)
from recs_platform.simulation.dynamics import ShopDay
from recs_platform.simulation.families import IntentFamily, MixedFamily, build_family
from recs_platform.simulation.families.revisits import recent_distinct
from recs_platform.simulation.generator import simulate_day, simulate_days, simulate_sessions
from recs_platform.simulation.sampler import draw_from_rows, sample_views
from recs_platform_tests.simulation.test_oracle import TINY_SHOP, chi_square, critical_value

DAY = 2
# A shop big enough for categories with a visible order, accessories and surges.
MEDIUM_SHOP = ShopConfig(n_items=400, n_categories=8, days=1)


@pytest.fixture(scope="module", params=FAMILY_NAMES)
def tiny_family_day(request):
    config = dataclasses.replace(TINY_SHOP, family=request.param)
    return config, simulate_day(config, build_catalogue(config), DAY)


def most_common_prefix(simulated, length):
    """The most frequent first `length` products and the sessions that start with them."""
    starts = simulated.offsets[:-1][simulated.lengths > length]
    heads = Counter(zip(*(simulated.items[starts + k] for k in range(length)), strict=True))
    (prefix, _), *_ = heads.most_common(1)
    matching = np.ones(len(starts), dtype=bool)
    for position, item in enumerate(prefix):
        matching &= simulated.items[starts + position] == item
    return [int(item) for item in prefix], starts[matching]


def test_each_family_generates_what_its_oracle_computes(tiny_family_day):
    config, simulated = tiny_family_day
    oracle = Oracle(config)
    first = np.bincount(simulated.items[simulated.offsets[:-1]], minlength=config.n_items)
    statistic, degrees = chi_square(first, oracle.next_view_probabilities([], DAY))
    assert statistic < critical_value(degrees)

    prefix, sessions = most_common_prefix(simulated, 2)
    assert len(sessions) > 3000
    observed = np.bincount(simulated.items[sessions + 2], minlength=config.n_items)
    probabilities = oracle.next_view_probabilities(prefix, DAY)
    statistic, degrees = chi_square(observed, probabilities)
    assert statistic < critical_value(degrees)
    assert 0.5 * np.abs(observed / len(sessions) - probabilities).sum() < 0.03

    # What a recommender ranks: the next new product (returns set aside).
    new = observed.copy()
    new[prefix] = 0
    statistic, degrees = chi_square(new, oracle.next_item_probabilities(prefix, DAY))
    assert statistic < critical_value(degrees)


def test_the_mixed_shops_oracle_reads_the_family_off_the_prefix():
    config = dataclasses.replace(TINY_SHOP, family="mixed")
    simulated = simulate_day(config, build_catalogue(config), DAY)
    oracle = Oracle(config)
    prefix, sessions = most_common_prefix(simulated, 1)
    observed = np.bincount(simulated.items[sessions + 1], minlength=config.n_items)
    statistic, degrees = chi_square(observed, oracle.next_view_probabilities(prefix, DAY))
    assert statistic < critical_value(degrees)
    # The test sees a wrong posterior: mixing the states' rows by the prior alone is rejected.
    blind = oracle.family.state_prior() @ oracle.step_rows(prefix, DAY)
    assert chi_square(observed, blind / blind.sum())[0] > 3 * critical_value(degrees)
    assert oracle.state_posterior(prefix, DAY).sum() == pytest.approx(1.0)


def test_a_mixed_shop_draws_its_families_in_equal_shares():
    config = dataclasses.replace(TINY_SHOP, family="mixed", sessions_per_day=5000, days=1)
    family = build_family(config, build_catalogue(config))
    assert isinstance(family, MixedFamily)
    (simulated,) = simulate_days(config)
    shares = np.bincount(family.member_of(simulated.states), minlength=5) / len(simulated.states)
    assert np.allclose(shares, 0.2, atol=0.03)


def test_the_intent_familys_rows_are_the_intent_shops_mixture():
    config = ShopConfig(n_items=300, n_categories=6, days=2)
    catalogue = build_catalogue(config)
    family = IntentFamily(config, catalogue)
    shop_day = ShopDay(config, catalogue, 1)
    rng = np.random.default_rng(0)
    history = np.stack([rng.choice(300, size=3, replace=False) for _ in range(40)])
    history = history[shop_day.available[history].all(axis=1)]
    intents = rng.integers(config.n_intents, size=len(history))
    rows = family.step_probabilities(1, history, intents)
    for row, items, intent in zip(rows, history, intents, strict=True):
        expected = shop_day.mixture_rows(int(items[-1]))[intent]
        expected[items] = 0.0
        assert np.allclose(row, expected / expected.sum(), rtol=1e-12, atol=1e-15)
    first = family.step_probabilities(1, history[:, :0], intents)
    assert np.array_equal(first, shop_day.first_probabilities()[intents])


def test_every_familys_rows_are_distributions_over_available_products():
    config = dataclasses.replace(MEDIUM_SHOP, days=3, new_item_share=0.2, family="mixed")
    catalogue = build_catalogue(config)
    family = build_family(config, catalogue)
    available = catalogue.launch_day <= 1
    rng = np.random.default_rng(3)
    history = np.stack(
        [rng.choice(np.flatnonzero(available), size=4, replace=False) for _ in range(200)]
    )
    states = rng.integers(family.n_states, size=len(history))
    for length in range(5):
        rows = family.step_probabilities(1, history[:, :length], states)
        assert np.allclose(rows.sum(axis=1), 1.0)
        assert (rows[:, ~available] == 0).all()
        assert (
            rows[np.arange(len(rows))[:, None], history[:, max(length - 1, 0) : length]] == 0
        ).all()


def test_draws_follow_the_rows_and_never_pick_an_item_without_weight():
    rows = np.array([[0.0, 0.5, 0.0, 0.5], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    uniform = np.array([0.0, 0.3, np.nextafter(1.0, 0.0)])
    assert draw_from_rows(rows, uniform).tolist() == [1, -1, 2]
    assert draw_from_rows(rows[:1], np.array([np.nextafter(1.0, 0.0)])).tolist() == [3]


def test_rows_drawn_sessions_do_not_depend_on_the_block_size(monkeypatch):
    config = dataclasses.replace(MEDIUM_SHOP, sessions_per_day=300, family="revisits")
    family = build_family(config, build_catalogue(config))
    states = np.zeros(300, dtype=np.int64)
    lengths = np.random.default_rng(1).integers(1, 12, size=300)

    def views():
        return sample_views(family, 0, np.random.default_rng(2), states, lengths)

    whole = views()
    monkeypatch.setattr("recs_platform.simulation.sampler.BLOCK_CELLS", 7 * config.n_items)
    assert np.array_equal(whole, views())


def test_ordered_browsing_keeps_its_direction():
    config = dataclasses.replace(MEDIUM_SHOP, family="ordered")
    oracle = Oracle(config)
    catalogue, position = oracle.catalogue, oracle.family.position
    at = {
        (int(catalogue.category[item]), int(position[item])): item
        for item in range(catalogue.n_items)
    }
    other_category = {c: next(i for (k, _), i in at.items() if k != c) for c in range(8)}
    # P(one up) / P(one down) after a step up, over the same odds without a direction: the
    # products' popularity cancels, what is left is what the direction does.
    odds_ratios = []
    for (category, place), item in at.items():
        below, above, two_below = (at.get((category, place + s)) for s in (-1, 1, -2))
        if None in (below, above, two_below):
            continue
        after_step_up = oracle.next_item_probabilities([two_below, item], 0)
        undirected = oracle.next_item_probabilities([other_category[category], item], 0)
        odds_ratios.append(
            after_step_up[above] / after_step_up[below] / (undirected[above] / undirected[below])
        )
    assert len(odds_ratios) > 300
    assert np.median(odds_ratios) > 3

    # In the data too: a step inside a category mostly goes on the way the last one went.
    (simulated,) = simulate_days(dataclasses.replace(config, sessions_per_day=2000))
    kept = turned = 0
    for session in range(len(simulated.session_ids)):
        items = simulated.items[simulated.offsets[session] : simulated.offsets[session + 1]]
        for first, second, third in zip(items, items[1:], items[2:], strict=False):
            if len({int(catalogue.category[item]) for item in (first, second, third)}) == 1:
                same = np.sign(position[second] - position[first]) == np.sign(
                    position[third] - position[second]
                )
                kept, turned = kept + same, turned + (not same)
    assert kept > 3 * turned > 0


def test_accessories_follow_their_main_product_far_more_often_than_the_reverse():
    config = dataclasses.replace(MEDIUM_SHOP, family="complements")
    oracle = Oracle(config)
    family = oracle.family
    main_items = np.flatnonzero(family.is_main)
    assert 0 < len(main_items) < config.n_items
    forward = backward = 0.0
    anchored = alone = 0.0
    pairs = 0
    for main in main_items[:60]:
        accessories = [int(item) for item in family.accessories[main] if item >= 0]
        after_main = oracle.next_item_probabilities([main], 0)
        for accessory in accessories:
            forward += after_main[accessory]
            backward += oracle.next_item_probabilities([accessory], 0)[main]
            # After an accessory, the anchor (the main product before it) leads the way.
            others = [item for item in accessories if item != accessory]
            anchored += oracle.next_item_probabilities([main, accessory], 0)[others].sum()
            alone += oracle.next_item_probabilities([accessory], 0)[others].sum()
            pairs += 1
    assert pairs > 100
    assert forward > 10 * backward
    assert anchored > 2 * alone


def test_a_surging_product_gains_share_on_its_surge_day():
    config = dataclasses.replace(
        MEDIUM_SHOP, days=6, sessions_per_day=3000, family="trends", new_item_share=0.0
    )
    catalogue = build_catalogue(config)
    family = build_family(config, catalogue)
    views = np.stack(
        [
            np.bincount(simulated.items, minlength=config.n_items)
            for simulated in simulate_days(config, catalogue)
        ]
    )
    shares = views / views.sum(axis=1, keepdims=True)
    inside = (family.surge_day >= 1) & (family.surge_day < config.days)
    surging, day = family.surging[inside], family.surge_day[inside]
    assert len(surging) > 20
    on_the_day = shares[day, surging].sum()
    the_day_before = shares[day - 1, surging].sum()
    assert on_the_day > 3 * the_day_before
    # The oracle knows the day: a surging product ranks higher on its day than before it.
    oracle = Oracle(config)
    item, surge = int(surging[0]), int(day[0])
    assert (
        oracle.next_item_probabilities([], surge)[item]
        > 3 * (oracle.next_item_probabilities([], surge - 1)[item])
    )


def test_shoppers_return_to_products_and_the_returns_are_not_targets():
    config = dataclasses.replace(MEDIUM_SHOP, days=2, sessions_per_day=1000, family="revisits")
    sessions = simulate_sessions(config)
    returns = sum(len(session.items) - len(set(session.items)) for session in sessions)
    longer = [session for session in sessions if len(session.items) >= 3]
    with_return = sum(len(set(session.items)) < len(session.items) for session in longer)
    assert with_return > 0.25 * len(longer)
    assert all(
        first != second
        for session in sessions
        for first, second in zip(session.items, session.items[1:], strict=False)
    )
    targets = next_item_targets(
        [(session.day, session.skus) for session in sessions], build_catalogue(config).skus
    )
    assert targets.skipped_seen == returns > 0
    pairs = zip(targets.prefixes, targets.targets, strict=True)
    assert not any(target in prefix for prefix, target in pairs)

    # Returns go to the products before the last one; what comes next depends on them too.
    oracle = Oracle(config)
    ranked = np.argsort(-oracle.catalogue.popularity_on(0))
    first, second, third = (int(item) for item in ranked[:3])
    views = oracle.next_view_probabilities([first, second, third], 0)
    assert views[third] == 0
    assert views[second] + views[first] == pytest.approx(0.25)
    assert not np.allclose(
        oracle.next_item_probabilities([first, third], 0),
        oracle.next_item_probabilities([second, third], 0),
    )


def test_recent_distinct_products_in_the_order_of_their_last_view():
    history = np.array([[5, 6, 5, 7], [1, 2, 1, 2], [4, 4, 4, 4]])
    assert recent_distinct(history).tolist() == [[7, 5, 6], [2, 1, -1], [4, -1, -1]]


def test_only_families_with_returns_accept_a_product_viewed_twice():
    twice = [0, 4, 0]
    for family in ("ordered", "complements", "trends", "intent"):
        with pytest.raises(ValueError, match="twice"):
            Oracle(dataclasses.replace(TINY_SHOP, family=family)).next_item_probabilities(twice, 0)
    available = [item for item in range(12) if build_catalogue(TINY_SHOP).launch_day[item] == 0]
    for family in ("revisits", "mixed"):
        oracle = Oracle(dataclasses.replace(TINY_SHOP, family=family))
        revisit = [available[0], available[1], available[0]]
        assert oracle.next_item_probabilities(revisit, 0)[available[2]] > 0
        with pytest.raises(ValueError, match="impossible"):
            oracle.next_item_probabilities([available[0], available[0]], 0)


def test_every_family_name_builds_its_family_and_has_a_summary():
    catalogue = build_catalogue(TINY_SHOP)
    assert list(FAMILY_SUMMARIES) == list(FAMILY_NAMES)
    for name in FAMILY_NAMES:
        family = build_family(dataclasses.replace(TINY_SHOP, family=name), catalogue)
        assert family.name == name
        assert family.state_prior().sum() == pytest.approx(1.0)
        assert len(family.state_prior()) == family.n_states
    assert build_family(TINY_SHOP, catalogue).n_states == TINY_SHOP.n_intents
    with pytest.raises(ValueError, match="the trends shop has no intents"):
        Oracle(dataclasses.replace(TINY_SHOP, family="trends")).intent_posterior([0], 0)


def test_family_structures_leave_the_catalogue_alone():
    intent = build_catalogue(ShopConfig(n_items=300, n_categories=6))
    for family in FAMILY_NAMES:
        other = build_catalogue(ShopConfig(n_items=300, n_categories=6, family=family))
        assert np.array_equal(other.category, intent.category)
        assert np.array_equal(other.neighbours, intent.neighbours)
        assert np.array_equal(other.base_popularity, intent.base_popularity)
