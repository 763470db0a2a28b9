"""The sparse draws (component, then product) against the families' exact rows."""

import dataclasses

import numpy as np
import pytest

from recs_platform.simulation import FAMILY_NAMES, ShopConfig, build_catalogue, build_family
from recs_platform.simulation.families.draws import CategoryDraws, OneWayWalk
from recs_platform.simulation.generator import simulate_day
from recs_platform.simulation.sampler import exact_draws
from recs_platform_tests.simulation.test_oracle import TINY_SHOP, chi_square, critical_value

DAY = 1
DRAWS = 30_000
# 400 products in 8 categories (50 each on average: orders long enough to walk along), a fifth
# launched during the window so some neighbours, accessories and slots are unavailable.
SHOP = ShopConfig(n_items=400, n_categories=8, days=3, new_item_share=0.2, sessions_per_day=400)


def binned_chi_square(observed, probabilities, minimum_expected=5.0):
    """chi_square with the products expected fewer than `minimum_expected` times pooled into
    one cell, so rare products do not dominate the statistic."""
    expected = observed.sum() * probabilities
    common = expected >= minimum_expected
    pooled_observed = np.append(observed[common], observed[~common].sum())
    pooled_probabilities = np.append(probabilities[common], probabilities[~common].sum())
    return chi_square(pooled_observed, pooled_probabilities)


def draw_many(family, history, state, rng):
    """DRAWS next products after `history` in `state`, as the generator draws them: the
    family's sampler, the undecided ones from the exact rows."""
    histories = np.tile(np.asarray(history, dtype=np.int64), (DRAWS, 1))
    states = np.full(DRAWS, state)
    sampler = family.sampler(DAY)
    drawn = sampler.next(rng, histories, states) if len(history) else sampler.first(rng, states)
    undecided = np.flatnonzero(drawn < 0)
    drawn[undecided] = exact_draws(family, DAY, rng, histories[undecided], states[undecided])
    return drawn


@pytest.mark.parametrize("family_name", FAMILY_NAMES)
def test_sparse_draws_follow_the_familys_rows(family_name):
    config = dataclasses.replace(SHOP, family=family_name)
    catalogue = build_catalogue(config)
    family = build_family(config, catalogue)
    simulated = simulate_day(config, catalogue, DAY, family)
    rng = np.random.default_rng(11)
    # Prefixes the shop itself drew (so they are possible), each with its session's state.
    long_sessions = np.flatnonzero(simulated.lengths >= 4)[:3]
    assert len(long_sessions) == 3
    for session in long_sessions:
        items = simulated.items[simulated.offsets[session] : simulated.offsets[session + 1]]
        state = int(simulated.states[session])
        for length in range(4):
            history = items[:length]
            row = family.step_probabilities(DAY, history[None, :], np.array([state]))[0]
            drawn = draw_many(family, history, state, rng)
            assert (drawn >= 0).all()
            observed = np.bincount(drawn, minlength=config.n_items)
            statistic, degrees = binned_chi_square(observed, row)
            assert statistic < critical_value(degrees), (family_name, list(history), state)


@pytest.mark.parametrize("family_name", FAMILY_NAMES)
def test_a_session_that_has_seen_everything_is_drawn_from_the_exact_rows(family_name):
    """Where nothing unseen is left, the sampler leaves the draw to the exact rows: the
    session ends, or (with returns) goes back to r_2 or r_3."""
    config = dataclasses.replace(TINY_SHOP, family=family_name)
    catalogue = build_catalogue(config)
    family = build_family(config, catalogue)
    available = np.flatnonzero(catalogue.launch_day <= DAY)
    history = np.array([available] * 200)
    states = np.random.default_rng(2).integers(family.n_states, size=200)
    rng = np.random.default_rng(3)
    drawn = family.sampler(DAY).next(rng, history, states)
    undecided = np.flatnonzero(drawn < 0)
    drawn[undecided] = exact_draws(family, DAY, rng, history[undecided], states[undecided])
    rows = family.step_probabilities(DAY, history, states)
    if family.revisits:
        returns = rows.sum(axis=1) > 0  # the revisits sessions of a mixed shop
        assert returns.any()
        assert set(drawn[returns]) <= {int(available[-2]), int(available[-3])}
        assert (drawn[~returns] == -1).all()
    else:
        assert (rows == 0).all()
        assert (drawn == -1).all()


def test_category_draws_give_each_product_its_share_of_its_category():
    config = dataclasses.replace(SHOP, days=1)
    catalogue = build_catalogue(config)
    weights = catalogue.base_popularity * (np.arange(config.n_items) % 5 != 0)
    draws = CategoryDraws(catalogue, weights)
    grid = (np.arange(100_000) + 0.5) / 100_000  # evenly spaced uniforms: inverse CDF exactly
    for category in (0, 3, 7):
        drawn = draws.draw(np.full(len(grid), category), grid)
        members = catalogue.category == category
        expected = np.where(members, weights, 0.0) / weights[members].sum()
        frequencies = np.bincount(drawn, minlength=config.n_items) / len(grid)
        assert np.abs(frequencies - expected).max() < 2e-5
    empty = CategoryDraws(catalogue, np.zeros(config.n_items))
    assert (empty.draw(np.array([0, 1]), np.array([0.0, 0.5])) == -1).all()


def test_a_one_way_walk_steps_with_the_discounted_weights():
    # Two categories of 6 and 5 slots; zeros are unavailable products.
    start = np.array([0, 6, 11])
    appeal = np.array([3.0, 0.0, 1.0, 5.0, 0.0, 0.0, 1.0, 4.0, 0.0, 0.0, 0.5])
    walk = OneWayWalk(start, appeal, kappa=0.5)
    grid = (np.arange(200_000) + 0.5) / 200_000
    for slot in (0, 1, 2, 6, 7, 9):
        end = start[np.searchsorted(start, slot, side="right")]
        later = np.arange(slot + 1, end)
        weights = 0.5 ** (later - slot - 1) * appeal[later]
        assert walk.mass(np.array([slot]))[0] == pytest.approx(weights.sum())
        drawn = walk.draw(np.full(len(grid), slot), grid)
        frequencies = np.bincount(drawn, minlength=len(appeal))[later] / len(grid)
        assert np.abs(frequencies - weights / weights.sum()).max() < 2e-5
    # Past the category's last slot, or only unavailable slots after it: no mass.
    assert walk.mass(np.array([3, 5, 10])).tolist() == [0.0, 0.0, 0.0]
