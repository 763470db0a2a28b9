"""The oracle against the generator it describes."""

import math
from collections import Counter

import numpy as np
import pytest

from recs_platform.simulation import Oracle, ShopConfig, build_catalogue
from recs_platform.simulation.dynamics import ShopDay
from recs_platform.simulation.generator import simulate_day
from recs_platform.simulation.sampler import DaySampler

# 12 items in 3 categories, 6 intents, 3 items launched during the window; day 2 exercises
# launches and drift as well as the intent posterior and the exclusion.
TINY_SHOP = ShopConfig(
    n_items=12,
    n_categories=3,
    n_neighbours=3,
    n_styles=2,
    n_price_levels=3,
    days=3,
    sessions_per_day=150_000,
    new_item_share=0.25,
    popularity_exponent=1.0,
    popularity_offset=0.1,
    mean_session_length=4,
)
DAY = 2


def chi_square(observed, probabilities):
    expected = observed.sum() * probabilities
    support = probabilities > 0
    assert observed[~support].sum() == 0, "the generator produced an item the oracle rules out"
    statistic = ((observed[support] - expected[support]) ** 2 / expected[support]).sum()
    return statistic, int(support.sum()) - 1


def critical_value(degrees_of_freedom):
    """Chi-square quantile at about 1 - 1e-6 (Wilson-Hilferty), so a correct oracle fails
    less than once in a million seeds."""
    k = degrees_of_freedom
    return k * (1 - 2 / (9 * k) + 4.75 * math.sqrt(2 / (9 * k))) ** 3


@pytest.fixture(scope="module")
def tiny_day():
    return simulate_day(TINY_SHOP, build_catalogue(TINY_SHOP), DAY)


def test_empirical_third_product_matches_the_oracle(tiny_day):
    starts = tiny_day.offsets[:-1][tiny_day.lengths >= 3]
    first_two = Counter(zip(tiny_day.items[starts], tiny_day.items[starts + 1], strict=True))
    (prefix, count), *_ = first_two.most_common(1)
    assert count > 3000
    matching = starts[
        (tiny_day.items[starts] == prefix[0]) & (tiny_day.items[starts + 1] == prefix[1])
    ]
    observed = np.bincount(tiny_day.items[matching + 2], minlength=TINY_SHOP.n_items)

    oracle = Oracle(TINY_SHOP)
    probabilities = oracle.next_item_probabilities(list(prefix), DAY)
    statistic, degrees = chi_square(observed, probabilities)
    assert statistic < critical_value(degrees)
    assert 0.5 * np.abs(observed / count - probabilities).sum() < 0.03

    # The test has the power to see a wrong oracle: ignoring what the prefix says about the
    # intent (a uniform posterior) is rejected by a wide margin.
    intent_blind = oracle.next_item_probabilities_by_intent(tuple(prefix), DAY).mean(axis=0)
    assert chi_square(observed, intent_blind)[0] > 10 * critical_value(degrees)


def test_empirical_first_product_matches_the_oracle(tiny_day):
    observed = np.bincount(tiny_day.items[tiny_day.offsets[:-1]], minlength=TINY_SHOP.n_items)
    probabilities = Oracle(TINY_SHOP).next_item_probabilities([], DAY)
    statistic, degrees = chi_square(observed, probabilities)
    assert statistic < critical_value(degrees)


def test_probabilities_sum_to_one_and_skip_seen_and_unlaunched_items():
    oracle = Oracle(TINY_SHOP)
    catalogue = oracle.catalogue
    unlaunched = np.flatnonzero(catalogue.launch_day > 0)
    assert unlaunched.size == 3
    available = [item for item in range(12) if catalogue.launch_day[item] == 0]
    for prefix in ([], available[:1], available[:3], available[:8]):
        probabilities = oracle.next_item_probabilities(prefix, 0)
        assert probabilities.sum() == pytest.approx(1.0)
        assert (probabilities[prefix] == 0).all()
        assert (probabilities[unlaunched] == 0).all()
        unseen = np.setdiff1d(available, prefix)
        assert (probabilities[unseen] > 0).all()
        posterior = oracle.intent_posterior(prefix, 0)
        assert posterior.sum() == pytest.approx(1.0)


def test_evidence_about_the_intent_accumulates_over_the_prefix():
    config = ShopConfig(n_items=400, n_categories=8, days=1)
    oracle = Oracle(config)
    catalogue = oracle.catalogue
    # A prefix of items sharing one style: each adds evidence for that style.
    style_zero = [
        item for item in np.argsort(-catalogue.base_popularity) if catalogue.style[item] == 0
    ]
    belief_in_style_zero = [
        oracle.intent_posterior(style_zero[:length], 0)
        .reshape(config.n_styles, config.n_price_levels)
        .sum(axis=1)[0]
        for length in (1, 2, 4)
    ]
    assert belief_in_style_zero[0] < 0.95
    assert belief_in_style_zero[0] < belief_in_style_zero[1] < belief_in_style_zero[2]


def test_impossible_prefixes_are_refused():
    oracle = Oracle(TINY_SHOP)
    unlaunched = int(np.flatnonzero(oracle.catalogue.launch_day > 0)[0])
    with pytest.raises(ValueError, match="twice"):
        oracle.next_item_probabilities([0, 0], 0)
    with pytest.raises(ValueError, match="impossible"):
        oracle.next_item_probabilities([unlaunched], 0)
    with pytest.raises(ValueError, match="outside the catalogue"):
        oracle.next_item_probabilities([12], 0)


def test_the_ranker_for_a_day_follows_the_recommender_interface():
    oracle = Oracle(TINY_SHOP)
    ranker = oracle.ranker(DAY).fit([])
    skus = oracle.catalogue.skus
    prefix = [skus[0], skus[4]]
    scores = ranker.score([prefix])
    assert scores.shape == (1, 12)
    assert np.allclose(scores[0], oracle.next_item_probabilities([0, 4], DAY))
    (ranking,) = ranker.rank([prefix], k=5)
    assert len(ranking) == 5 and not set(ranking) & set(prefix)
    best = np.argsort(-scores[0], kind="stable")[:5]
    assert ranking == [skus[item] for item in best]
    with pytest.raises(ValueError, match="not in the shop"):
        ranker.score([["sku-unknown"]])


def test_components_without_available_products_drop_out_in_sampler_and_oracle_alike():
    # On day 0 of this shop, category 0 has no launched item yet and item 9's neighbours are
    # all unlaunched: the neighbour component and category 0 must both get zero mass.
    config = ShopConfig(
        n_items=12, n_categories=3, n_neighbours=2, days=5, new_item_share=0.6, seed=10
    )
    catalogue = build_catalogue(config)
    shop_day = ShopDay(config, catalogue, 0)
    item = 9
    assert shop_day.available[item] and not shop_day.has_neighbours[item]
    assert not shop_day.category_has_items[0]
    neighbour, own, other = (weight.item() for weight in shop_day.source_weights(np.array([item])))
    assert neighbour == 0 and own + other == pytest.approx(1.0)
    assert own / other == pytest.approx(config.p_stay * (1 - config.alpha) / (1 - config.p_stay))

    intent = 4
    expected = shop_day.mixture_rows(item)[intent]
    assert expected.sum() == pytest.approx(1.0)
    assert (expected[~shop_day.available] == 0).all()
    expected[item] = 0.0
    expected /= expected.sum()

    draws = 60_000
    drawn = DaySampler(shop_day).next(
        np.random.default_rng(1),
        np.full(draws, item),
        np.full(draws, intent),
        np.full((draws, 1), item),
    )
    observed = np.bincount(drawn, minlength=config.n_items)
    statistic, degrees = chi_square(observed, expected)
    assert statistic < critical_value(degrees)
