"""The context chains: counts of what followed the last items, mixed by held-out likelihood."""

import numpy as np
import pytest

from recs_platform.evaluation.checklist import run_checklist
from recs_platform.evaluation.metrics import mrr_at
from recs_platform.evaluation.protocol import next_item_targets, ranks_of_targets
from recs_platform.models.base import load_recommender
from recs_platform.models.context_chains import COMPONENTS, ContextChainsRecommender
from recs_platform.models.markov import MarkovRecommender
from recs_platform.models.popularity import PopularityRecommender
from recs_platform.simulation import ShopConfig, simulate_sessions
from recs_platform.training.candidates import CANDIDATE_NAMES, candidate


def directional_shop(sessions: int = 600, seed: int = 0) -> list[list[str]]:
    """A row of shelves s0 .. s19 walked in one direction per session, one or two shelves a step:
    after (s3, s5) comes s7, after (s7, s5) comes s3, after (s4, s5) s6. The last item alone
    cannot tell them apart."""
    rng = np.random.default_rng(seed)
    shop = []
    for _ in range(sessions):
        start, step = int(rng.integers(3, 17)), int(rng.choice([-2, -1, 1, 2]))
        length = int(rng.integers(3, 6))
        shop.append(
            [
                f"s{start + step * offset}"
                for offset in range(length)
                if 0 <= start + step * offset < 20
            ]
        )
    return shop


def anchored_shop(sessions: int = 900, seed: int = 0) -> list[list[str]]:
    """A main product, then a random filler, then the main product's own accessory: the item two
    steps back decides the next one."""
    rng = np.random.default_rng(seed)
    return [
        [f"main{main}", f"filler{int(rng.integers(0, 30))}", f"accessory{main}"]
        for main in rng.integers(0, 15, size=sessions)
    ]


def test_the_direction_of_the_last_step_decides_where_the_last_item_alone_cannot():
    shop = directional_shop()
    model = ContextChainsRecommender().fit(shop)
    prefixes = [["s4", "s5"], ["s6", "s5"], ["s3", "s5"], ["s7", "s5"]]
    assert model.rank(prefixes, k=1) == [["s6"], ["s4"], ["s7"], ["s3"]]
    # The Markov chain, reading s5 alone, gives one order for all four (the seen item left out).
    markov = MarkovRecommender().fit(shop)
    firsts = {tuple(ranked) for ranked in markov.rank(prefixes, k=1)}
    assert firsts != {("s6",), ("s4",), ("s7",), ("s3",)}
    # The held-out sessions taught the weights that: after two or more items, the ordered pair
    # carries the most weight.
    pair = COMPONENTS.index("pair")
    assert all(row.argmax() == pair for row in model.weights[1:])


def test_an_anchor_two_steps_back_decides_when_the_shop_says_so():
    model = ContextChainsRecommender().fit(anchored_shop())
    assert model.rank([["main3", "filler7"], ["main11", "filler7"]], k=1) == [
        ["accessory3"],
        ["accessory11"],
    ]
    second = COMPONENTS.index("second")
    assert model.weights[1].argmax() == second


def test_probabilities_are_a_distribution_over_the_unseen_items():
    model = ContextChainsRecommender().fit(directional_shop())
    prefixes = [["s4", "s5"], ["s9"], ["never-seen"], []]
    probabilities = model.probabilities(prefixes)
    assert probabilities.shape == (4, len(model.item_ids))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    index = model.item_index()
    unseen = [j for j in range(len(model.item_ids)) if j not in (index["s4"], index["s5"])]
    # Renormalised over the unseen items: their mass is 1 in every component and the mixture.
    np.testing.assert_allclose(model.score([["s4", "s5"]])[0, unseen].sum(), 1.0)


def test_unknown_items_and_an_empty_prefix_rank_by_popularity():
    shop = [["a", "b"], ["b", "c"], ["c", "b"], ["d", "b"]] * 30
    model = ContextChainsRecommender().fit(shop)
    popularity = PopularityRecommender().fit(shop)
    for prefix in ([], ["never-seen"], ["never-seen", "nor-this"]):
        assert model.rank([prefix], k=4) == popularity.rank([prefix], k=4)
    assert model.rank([["b"]], k=3)[0][0] == "c"  # b -> c is the only successor of b


def test_weighted_scores_added_into_a_wider_catalogue_are_the_scores_on_their_columns():
    """What a mixture of several chains (the shopper kinds) adds for this one: each row's
    scores times its weight, on this model's columns of a larger catalogue, nothing elsewhere."""
    model = ContextChainsRecommender().fit(directional_shop())
    prefixes = [["s4", "s5"], ["s9"], ["never-seen"], [], ["s3", "s5", "s7"]]
    weights = np.array([0.5, 2.0, 0.25, 1.0, 0.0])
    rng = np.random.default_rng(0)
    wider = len(model.item_ids) + 7  # the catalogue holds 7 items this model never saw
    columns = np.sort(rng.choice(wider, len(model.item_ids), replace=False))
    target = rng.random((len(prefixes), wider))
    expected = target.copy()
    expected[:, columns] += weights[:, None] * model.score(prefixes)
    model.add_weighted_scores(prefixes, weights, target, columns)
    np.testing.assert_allclose(target, expected, rtol=1e-12)


def test_saved_and_loaded_context_chains_score_the_same(tmp_path):
    model = ContextChainsRecommender(pseudo_count=2.0, window=2).fit(directional_shop())
    loaded = load_recommender(model.save(tmp_path / "chains"))
    assert isinstance(loaded, ContextChainsRecommender)
    assert loaded.item_ids == model.item_ids and loaded.window == 2
    prefixes = [["s4", "s5"], ["s10"], ["s2", "s3", "s4", "s5"], ["x"]]
    np.testing.assert_allclose(loaded.score(prefixes), model.score(prefixes))
    np.testing.assert_allclose(loaded.weights, model.weights)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"pseudo_count": 0}, "pseudo_count must be positive"),
        ({"window": 0}, "window must be at least 1"),
        ({"holdout_share": 1.0}, "holdout_share must be between 0 and 1"),
        ({"recent_share": 0}, "recent_share must be between 0 and 1"),
    ],
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        ContextChainsRecommender(**settings)


def test_a_refitted_model_scores_its_new_counts_not_the_prefixes_it_kept():
    prefixes = [["s4", "s5"], ["s6", "s5"], ["s9"]]
    model = ContextChainsRecommender().fit(directional_shop(seed=1))
    before = model.score(prefixes)
    after = model.fit(directional_shop(seed=2)).score(prefixes)
    fresh = ContextChainsRecommender().fit(directional_shop(seed=2))
    np.testing.assert_array_equal(after, fresh.score(prefixes))
    assert not np.allclose(before, after)
    np.testing.assert_array_equal(
        model.next_probabilities(["s6", "s5"], ["s3", "s4"]),
        after[1, [model.item_index()["s3"], model.item_index()["s4"]]],
    )


def test_every_step_scored_at_once_is_what_each_prefix_alone_gives():
    model = ContextChainsRecommender(window=2).fit(directional_shop() + anchored_shop(300))
    sessions = [
        ["s3", "s5", "s7", "s9"],
        ["main1", "filler3", "accessory1", "main1", "filler4"],  # a return: no step to it
        ["never-seen", "s5", "also-unknown", "s9", "s7"],  # unknown items in the prefix
        ["s4", "s4", "nor-this", "never-seen"],  # a repeat at once, unknown targets
        [],
        ["s12"],
        ["main2", "s8", "s6", "main2", "s2", "filler9", "accessory2", "s4"],
    ]
    steps, probabilities = model.step_probabilities(sessions, chunk=3)
    expected = [
        (number, position)
        for number, session in enumerate(sessions)
        for position in range(1, len(session))
        if session[position] not in session[:position]
    ]
    assert list(zip(steps.session, steps.position, strict=True)) == expected
    for (number, position), probability, target, previous in zip(
        expected, probabilities, steps.target, steps.previous, strict=True
    ):
        prefix, sku = sessions[number][:position], sessions[number][position]
        assert target == model.item_index().get(sku, -1)
        assert previous == model.item_index().get(prefix[-1], -1)
        assert probability == pytest.approx(model.next_probabilities(prefix, [sku])[0], abs=1e-15)
    assert (probabilities[steps.target < 0] == 0).all() and (steps.target < 0).sum() == 3
    unknown = steps.take(steps.target < 0)
    assert list(zip(unknown.session, unknown.position, strict=True)) == [(2, 2), (3, 2), (3, 3)]
    known = steps.target >= 0
    _, components = model.step_component_probabilities(sessions)
    for (number, position), values in zip(
        np.array(expected)[known], components[known], strict=True
    ):
        prefix, sku = sessions[number][:position], sessions[number][position]
        np.testing.assert_allclose(values, model.component_probabilities(prefix, sku), atol=1e-15)


def test_fit_needs_items_and_score_needs_fit():
    with pytest.raises(ValueError, match="no items"):
        ContextChainsRecommender().fit([[], []])
    with pytest.raises(RuntimeError, match="call fit"):
        ContextChainsRecommender().score([["a"]])


def test_the_context_chains_are_a_default_candidate_with_nothing_to_search():
    assert "context_chains" in CANDIDATE_NAMES
    found = candidate("context_chains", {"window": 4})
    model = found.make()
    assert isinstance(model, ContextChainsRecommender)
    assert model.name == "context_chains" and model.window == 4
    assert found.search_space is None


def test_the_checklist_invariants_hold_on_a_simulated_shop():
    shop = ShopConfig(days=5, sessions_per_day=300, n_items=200, n_categories=8, seed=5)
    sessions = [(s.date, list(s.skus)) for s in simulate_sessions(shop) if len(s.skus) >= 2]
    last_day = max(day for day, _ in sessions)
    train = [session for session in sessions if session[0] < last_day]
    model = ContextChainsRecommender().fit([skus for _, skus in train])
    targets = next_item_targets([s for s in sessions if s[0] == last_day], model.item_ids)
    checklist = run_checklist(model, train, targets, k=20)
    assert checklist.passed, [check for check in checklist.invariants if not check.passed]
    # And it learned the shop: better than the Markov chain on the held-out day.
    markov = MarkovRecommender().fit([skus for _, skus in train])
    assert mrr_at(ranks_of_targets(model, targets), 20) > mrr_at(
        ranks_of_targets(markov, targets), 20
    )
