"""The shopper kinds: found without labels, told apart within a session, saved and served."""

from __future__ import annotations

import numpy as np
import pytest

from recs_platform.evaluation.metrics import mrr_at
from recs_platform.evaluation.protocol import next_item_targets, ranks_of_targets
from recs_platform.models import shopper_kinds
from recs_platform.models.base import load_recommender
from recs_platform.models.context_chains import ContextChainsRecommender
from recs_platform.models.shopper_kinds import (
    ShopperKindsRecommender,
    assign_kinds,
    find_kinds,
    kmeans,
    refine_kinds,
)
from recs_platform.training.candidates import CANDIDATE_NAMES, candidate

N_ITEMS = 200
# Two kinds of shopper walk a ring of products: one steps 1 or 3 ahead, the other 2 or 3. After
# a step of 3 the last steps do not say which kind this is; the session's earlier steps do.
STEPS = {0: (1, 3), 1: (2, 3)}


def sku(item: int) -> str:
    return f"p{item % N_ITEMS:03d}"


def ring_shop(n_sessions: int, seed: int, length: int = 6) -> tuple[list[list[str]], np.ndarray]:
    rng = np.random.default_rng(seed)
    sessions, kinds = [], rng.integers(2, size=n_sessions)
    for kind in kinds:
        item = int(rng.integers(N_ITEMS))
        session = [item]
        for _ in range(length - 1):
            item += int(rng.choice(STEPS[int(kind)]))
            session.append(item)
        sessions.append([sku(item) for item in session])
    return sessions, kinds


@pytest.fixture(scope="module")
def shop():
    train, kinds = ring_shop(4000, seed=0)
    pooled = ContextChainsRecommender().fit(train)
    return train, kinds, pooled, ShopperKindsRecommender(kinds=2).fit(train)


def test_the_kinds_are_found_without_labels(shop):
    train, kinds, pooled, _ = shop
    labels = find_kinds(train, 2, pooled)
    agreement = np.mean(labels == kinds)
    assert max(agreement, 1 - agreement) > 0.9  # chance: 0.5; all-3 sessions are either kind


def test_refining_moves_each_session_to_the_kind_whose_chains_explain_it(shop):
    train, kinds, pooled, _ = shop
    # A poor start: a third of the sessions in the wrong kind.
    wrong = np.random.default_rng(3).random(len(kinds)) < 0.35
    start = np.where(wrong, 1 - kinds, kinds)
    refined, cut = refine_kinds(train, start, 2, pooled, rounds=3, backoff=50.0)
    assert np.mean(start == kinds) < 0.7
    assert np.mean(refined == kinds) > 0.9 and not cut
    assert refine_kinds(train, start, 2, pooled, rounds=0, backoff=50.0) == (start, False)


def test_a_deadline_stops_the_refinement_between_rounds(shop, monkeypatch):
    """A retrain's time budget: no round starts after the deadline, the best labels measured
    by then are kept, and the model says the deadline cut its fit."""
    train, kinds, pooled, _ = shop
    start = np.where(np.random.default_rng(3).random(len(kinds)) < 0.35, 1 - kinds, kinds)
    # Past at once: nothing is refined.
    assert refine_kinds(train, start, 2, pooled, 3, 50.0, deadline=0.0) == (start, True)
    # A clock that passes the deadline once the start's labels are measured: they are kept.
    measured = []
    real_of = shopper_kinds._CrossFittedKinds.of

    def counted(self, labels):
        measured.append(labels)
        return real_of(self, labels)

    monkeypatch.setattr(shopper_kinds._CrossFittedKinds, "of", counted)
    clock = iter([0.0, 2.0])
    monkeypatch.setattr(shopper_kinds, "perf_counter", lambda: next(clock))
    labels, cut = refine_kinds(train, start, 2, pooled, 3, 50.0, deadline=1.0)
    assert cut and labels is start and len(measured) == 1
    # The model: the kinds found and counted, unrefined, and the cut said.
    monkeypatch.setattr(shopper_kinds, "perf_counter", lambda: 10.0)
    model = ShopperKindsRecommender(kinds=2).fit(train, deadline=5.0)
    assert model.stopped_at_deadline and len(model.kind_models) == 2
    assert not ShopperKindsRecommender(kinds=2).fit(train, deadline=20.0).stopped_at_deadline


def test_sessions_outside_the_sample_get_the_kind_they_walk_like(shop):
    train, kinds, pooled, _ = shop
    # The sample's kinds given (here the true ones), the other sessions are assigned by
    # their steps, in chunks.
    assigned = assign_kinds(train[1000:], train[:1000], kinds[:1000], 2, pooled, chunk=700)
    assert np.mean(assigned == kinds[1000:]) > 0.85  # chance: 0.5


def test_a_sample_finds_the_kinds_and_every_session_is_counted(shop):
    train, _, _, _ = shop
    model = ShopperKindsRecommender(kinds=2, sample_sessions=1000, refine_sessions=500).fit(train)
    assert not model.refined  # 500 sessions hold 15 views per product: too few to refine by
    assert len(model.kind_models) == 2
    assert model.views.sum() == sum(len(session) for session in train)
    assert sorted(np.round(model.shares, 1)) == [0.5, 0.5]


def test_a_session_earlier_steps_say_which_kind_continues_it(shop):
    _, _, pooled, model = shop
    # Both sessions end with a step of 3; the first stepped 1 twice before it, the second 2.
    one_then_three = [sku(10), sku(11), sku(12), sku(15)]
    two_then_three = [sku(10), sku(12), sku(14), sku(17)]
    first, second = model.kind_posterior(one_then_three), model.kind_posterior(two_then_three)
    assert first.max() > 0.8 and second.max() > 0.8 and first.argmax() != second.argmax()
    top_one, top_two = model.rank([one_then_three, two_then_three], 2)
    assert set(top_one) == {sku(16), sku(18)}  # 1 or 3 ahead, never 2
    assert set(top_two) == {sku(19), sku(20)}  # 2 or 3 ahead, never 1
    # The pooled chains read mostly the last steps: the same steps ahead for both sessions.
    pooled_one, pooled_two = pooled.rank([one_then_three, two_then_three], 3)
    assert {int(s[1:]) - 15 for s in pooled_one} == {int(s[1:]) - 17 for s in pooled_two}


def test_held_out_sessions_are_ranked_better_than_by_the_pooled_chains(shop):
    _, _, pooled, model = shop
    assert model.refined  # 4,000 sessions of six views: 120 views per product
    test, _ = ring_shop(500, seed=1)
    targets = next_item_targets([(0, session) for session in test], pooled.item_ids)
    assert mrr_at(ranks_of_targets(model, targets), 20) > mrr_at(
        ranks_of_targets(pooled, targets), 20
    )


def test_scores_are_the_kinds_rows_mixed_by_the_posterior(shop):
    _, _, pooled, model = shop
    prefix = [sku(40), sku(42), sku(45)]
    scores = model.score([prefix])[0]
    index = model.item_index()
    expected = np.zeros(len(model.item_ids))
    posterior = model.kind_posterior(prefix)
    for slot, (kind, weight) in enumerate(zip(model.kind_models, posterior, strict=True)):
        row = np.zeros(len(model.item_ids))
        row[[index[s] for s in kind.item_ids]] = kind.score([prefix])[0]
        views = model.views[slot, index[prefix[-1]]]
        backoff = model.backoff
        expected += weight * (views * row + backoff * pooled.score([prefix])[0]) / (views + backoff)
    np.testing.assert_allclose(scores, expected, rtol=1e-9)
    # The empty prefix and one of unknown products: what everyone views.
    np.testing.assert_allclose(model.score([[], ["unknown"]]), [pooled.popular] * 2)


def test_a_long_session_and_a_cold_cache_give_the_same_posterior(shop):
    _, _, _, model = shop
    walk = [sku(5 + step) for step in range(3000)]  # longer than Python's recursion limit
    model._evidence.clear()
    warm = [model.kind_posterior(walk[:length]) for length in (1, 2, 10, 3000)]
    model._evidence.clear()
    cold = model.kind_posterior(walk)
    np.testing.assert_allclose(cold, warm[-1])
    assert warm[-1].max() > 0.99  # its steps of 1 (to the products not seen yet) say the kind


def test_a_session_scored_in_one_batch_scores_as_each_prefix_alone(shop):
    _, _, _, model = shop
    session = [sku(10), sku(13), sku(15), sku(10), sku(18), "unknown", sku(21)]
    prefixes = [session[:length] for length in range(1, len(session) + 1)]
    model._evidence.clear()
    together = model.score(prefixes)  # each prefix's last step read from the row before
    alone = []
    for prefix in prefixes:
        model._evidence.clear()
        for chains in (model.pooled, *model.kind_models):
            chains._mixtures.clear()
        alone.append(model.score([prefix])[0])
    np.testing.assert_allclose(together, alone, rtol=1e-12)


def test_a_saved_model_loads_and_scores_the_same(shop, tmp_path):
    _, _, _, model = shop
    loaded = load_recommender(model.save(tmp_path / "kinds"))
    prefixes = [[sku(3)], [sku(3), sku(6), sku(8)], [sku(100), "unknown", sku(103)]]
    assert type(loaded) is ShopperKindsRecommender and loaded.item_ids == model.item_ids
    np.testing.assert_allclose(loaded.score(prefixes), model.score(prefixes))


def test_too_few_sessions_for_the_kinds_leaves_one_kind():
    sessions, _ = ring_shop(30, seed=2)
    model = ShopperKindsRecommender(kinds=3, min_sessions=50).fit(sessions)
    assert len(model.kind_models) == 1 and model.shares.tolist() == [1.0]
    assert np.isfinite(model.score([sessions[0][:3]])).all()


@pytest.mark.parametrize(
    "settings",
    [
        {"kinds": 0},
        {"backoff": 0.0},
        {"sample_sessions": 0},
        {"min_sessions": 0},
        {"refine_rounds": -1},
        {"refine_sessions": 0},
        {"refine_min_views": -1.0},
    ],
)
def test_bad_settings_are_refused(settings):
    with pytest.raises(ValueError):
        ShopperKindsRecommender(**settings)


def test_kmeans_separates_clear_groups():
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(0, 0.1, (50, 2)), rng.normal(5, 0.1, (40, 2))])
    labels = kmeans(points, 2)
    assert len(set(labels[:50])) == 1 and len(set(labels[50:])) == 1 and labels[0] != labels[-1]


def test_the_shopper_kinds_are_a_default_candidate_with_nothing_to_search():
    assert "shopper_kinds" in CANDIDATE_NAMES
    found = candidate("shopper_kinds", {"kinds": 3})
    assert found.search_space is None
    model = found.make()
    assert model.name == "shopper_kinds" and model.kinds == 3
