"""The blend: mixture weights by EM, distributions over the unseen items, length buckets, saving."""

import numpy as np
import pytest

from recs_platform.models.base import load_recommender
from recs_platform.models.blend import (
    BlendRecommender,
    length_buckets,
    mean_log_likelihood,
    members_worth_keeping,
    mixture_weights,
    weights_by_bucket,
)
from recs_platform.models.markov import MarkovRecommender
from recs_platform.models.popularity import PopularityRecommender

# Occurrences: a 2, b 3, c 3, d 1. Transitions: a->b 2, b->c 2, c->d 1, c->a 1.
SESSIONS = [["a", "b", "c"], ["b", "c", "d"], ["c", "a", "b"]]


def members():
    return [MarkovRecommender().fit(SESSIONS), PopularityRecommender().fit(SESSIONS)]


def test_em_finds_the_maximum_likelihood_weights():
    # Member 0 alone explains targets 1 and 3, member 1 target 2: the optimum is (2/3, 1/3).
    likelihoods = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert mixture_weights(likelihoods) == pytest.approx([2 / 3, 1 / 3])
    # A member better on every target takes all the weight.
    assert mixture_weights(np.array([[0.5, 0.25], [0.4, 0.1]])) == pytest.approx([1, 0], abs=1e-6)
    # Targets no member gives any probability say nothing.
    with_blank = np.vstack([likelihoods, [[0.0, 0.0]]])
    assert mixture_weights(with_blank) == pytest.approx([2 / 3, 1 / 3])


def test_the_prior_pulls_a_bucket_with_few_targets_towards_it():
    likelihoods = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    # MAP: (2 + 3 * 0.5) / (3 + 3) for member 0.
    weights = mixture_weights(likelihoods, np.array([0.5, 0.5]), prior_strength=3)
    assert weights == pytest.approx([3.5 / 6, 2.5 / 6])
    # No targets at all: the prior itself.
    empty = mixture_weights(np.zeros((0, 2)), np.array([0.3, 0.7]), prior_strength=10)
    assert empty == pytest.approx([0.3, 0.7])
    with pytest.raises(ValueError, match="non-negative"):
        mixture_weights(np.array([[-1.0, 1.0]]))


def test_prefix_lengths_fall_in_buckets_1_2_3to4_5plus():
    assert length_buckets([1, 2, 3, 4, 5, 9], (1, 2, 4)).tolist() == [0, 1, 2, 2, 3, 3]
    by_bucket = weights_by_bucket(
        np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 3]), 4, prior_strength=1.0
    )
    assert by_bucket.shape == (4, 2)
    assert by_bucket[0, 0] > 0.5 > by_bucket[3, 0]
    assert by_bucket[1] == pytest.approx([0.5, 0.5])  # no targets: the overall weights


def test_each_member_speaks_over_the_unseen_items_only():
    blend = BlendRecommender(members())
    assert blend.item_ids == ["a", "b", "c", "d"]
    rows = blend.member_probabilities([["a", "b"]])
    markov, popularity = rows[:, 0]
    # After b, Markov saw only c (twice): everything but a sliver of popularity on c.
    assert markov[[0, 1]].tolist() == [0.0, 0.0] and markov.sum() == pytest.approx(1.0)
    assert markov[2] > 0.8
    # Popularity over the unseen c (3) and d (1).
    assert popularity.tolist() == pytest.approx([0, 0, 0.75, 0.25])
    scores = blend.score([["a", "b"]])[0]
    assert scores == pytest.approx(0.5 * markov + 0.5 * popularity)
    assert blend.rank([["a", "b"]], k=2) == [["c", "d"]]


def test_weights_fitted_on_held_out_pairs_follow_the_better_member():
    blend = BlendRecommender(members(), prior_strength=0.0)
    # Held-out pairs that always follow the chain: Markov earns the weight in every bucket
    # that has targets; popularity keeps a little for the pairs the chain never saw.
    prefixes = [["a"], ["b"], ["a", "b"], ["b", "c"], ["a", "b", "c"]]
    targets = ["b", "c", "c", "d", "d"]
    blend.fit_weights(prefixes, targets)
    overall = mixture_weights(blend.target_likelihoods(prefixes, targets))
    assert overall[0] > 0.6
    assert blend.weights[0, 0] > 0.9 and blend.weights.sum(axis=1) == pytest.approx(np.ones(4))
    described = blend.described_weights()
    assert list(described) == ["1", "2", "3-4", "5+"]
    assert set(described["1"]) == {"markov", "popularity"}


def test_targets_no_member_knows_are_refused():
    with pytest.raises(ValueError, match="unknown to every member: \\['zz'\\]"):
        BlendRecommender(members()).target_likelihoods([["a"]], ["zz"])


def test_small_weights_are_dropped_and_the_rest_renormalised():
    weights = np.array([[0.995, 0.005]] * 4)
    blend = BlendRecommender(members(), weights).without_small_weights(0.01)
    assert [member.name for member in blend.members] == ["markov"]
    assert blend.weights.tolist() == [[1.0]] * 4
    kept = BlendRecommender(members(), np.array([[0.995, 0.005]] * 3 + [[0.5, 0.5]]))
    assert kept.without_small_weights(0.01) is kept


def even_and_odd(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two members' likelihoods of 400 targets: the first explains the even ones, the second
    the odd ones."""
    rng = np.random.default_rng(seed)
    good = rng.uniform(0.2, 0.6, size=400)
    poor = rng.uniform(0.001, 0.01, size=400)
    even = np.arange(400) % 2 == 0
    return np.where(even, good, poor), np.where(even, poor, good)


def test_members_the_others_make_redundant_are_left_out_and_the_useful_ones_kept():
    # Member 0 explains the even targets, member 1 the odd ones; member 2 says what member 0
    # says; member 3 is worse than member 1 on every target.
    first, second = even_and_odd(0)
    likelihoods = np.column_stack([first, second, first, second / 2])
    buckets = np.zeros(400, dtype=int)
    kept, dropped = members_worth_keeping(likelihoods, buckets, 1, 0.0, tolerance=0.005)
    assert sorted(kept) in ([0, 1], [1, 2]) and set(dropped) | set(kept) == {0, 1, 2, 3}
    assert all(0 <= loss <= 0.005 for loss in dropped.values())
    everything = mean_log_likelihood(
        likelihoods, buckets, weights_by_bucket(likelihoods, buckets, 1, 0.0)
    )
    pruned = likelihoods[:, kept]
    assert (
        everything
        - mean_log_likelihood(pruned, buckets, weights_by_bucket(pruned, buckets, 1, 0.0))
        <= 0.005
    )
    # Without a tolerance the useful members stay whatever; with a large one the best alone.
    assert len(members_worth_keeping(likelihoods, buckets, 1, 0.0, tolerance=0.0)[0]) >= 2
    alone, _ = members_worth_keeping(likelihoods, buckets, 1, 0.0, tolerance=10.0)
    assert len(alone) == 1


def test_a_serving_budget_keeps_the_likeliest_members_that_fit_it():
    # Members 0 and 1 explain the even and the odd targets; member 2 says what member 0 says, a
    # little better, and costs ten times as much. Dropping the least useful member per
    # millisecond one at a time would drop 0 first (2 makes it redundant), then 2 for its cost,
    # and serve 1 alone: the likeliest affordable blend is 0 and 1.
    first, second = even_and_odd(1)
    likelihoods = np.column_stack([first, second, first * 1.05])
    buckets = np.zeros(400, dtype=int)
    costs = np.array([1.0, 1.0, 10.0])
    unlimited, _ = members_worth_keeping(likelihoods, buckets, 1, 0.0, tolerance=0.0)
    assert 2 in unlimited  # without a budget the better copy stays
    kept, dropped = members_worth_keeping(
        likelihoods, buckets, 1, 0.0, tolerance=0.005, costs=costs, budget=5.0
    )
    assert sorted(kept) == [0, 1] and set(dropped) == {2}
    everything = mean_log_likelihood(
        likelihoods, buckets, weights_by_bucket(likelihoods, buckets, 1, 0.0)
    )
    pruned = likelihoods[:, kept]
    lost = everything - mean_log_likelihood(
        pruned, buckets, weights_by_bucket(pruned, buckets, 1, 0.0)
    )
    assert dropped[2] == pytest.approx(max(lost, 0.0))
    # A budget no member fits: the cheapest alone; a generous one changes nothing.
    assert members_worth_keeping(likelihoods, buckets, 1, 0.0, 0.0, costs, 0.5)[0] == [0]
    assert members_worth_keeping(likelihoods, buckets, 1, 0.0, 0.0, costs, 100.0)[0] == unlimited
    with pytest.raises(ValueError, match="one cost per member"):
        members_worth_keeping(likelihoods, buckets, 1, 0.0, 0.0, costs[:2], 5.0)


def test_a_saved_blend_loads_and_scores_the_same(tmp_path):
    weights = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
    blend = BlendRecommender(members(), weights)
    blend.save(tmp_path / "blend")
    loaded = load_recommender(tmp_path / "blend")
    assert isinstance(loaded, BlendRecommender)
    assert [member.name for member in loaded.members] == ["markov", "popularity"]
    prefixes = [["a"], ["b", "c"], ["c", "a", "b", "d", "a"], ["unknown"]]
    assert loaded.score(prefixes) == pytest.approx(blend.score(prefixes))


def test_refitting_refits_every_member_and_keeps_the_weights():
    weights = np.array([[0.9, 0.1]] * 4)
    blend = BlendRecommender([MarkovRecommender(), PopularityRecommender()], weights)
    assert blend.item_ids == []
    blend.fit(SESSIONS + [["d", "e"]])
    assert blend.item_ids == ["a", "b", "c", "d", "e"]
    assert blend.weights.tolist() == weights.tolist()
    assert blend.rank([["d"]], k=1) == [["e"]]


def test_members_of_different_windows_fall_back_on_the_longest_windows_popularity(tmp_path):
    # The Markov chain learned from the recent sessions only ("d" most viewed there), the
    # popularity member from all of them; their empty-prefix lists disagree.
    recent = [["d", "a"], ["d", "b"], ["d", "c"]]
    everything = SESSIONS * 3 + recent
    fallback = PopularityRecommender().fit(everything)
    blend = BlendRecommender(
        [MarkovRecommender().fit(recent), PopularityRecommender(name="p").fit(everything)],
        np.array([[0.9, 0.1]] * 4),
        fallback=fallback,
    )
    without = BlendRecommender(blend.members, blend.weights)
    for prefix in ([], ["unknown-sku"]):
        assert blend.rank([prefix], 4) == fallback.rank([prefix], 4)
        assert without.rank([prefix], 4) != fallback.rank([prefix], 4)
    # A prefix with a known item is the mixture's, with or without the fallback.
    assert blend.score([["a"]]) == pytest.approx(without.score([["a"]]))
    blend.save(tmp_path / "blend")
    loaded = load_recommender(tmp_path / "blend")
    assert loaded.rank([[]], 4) == fallback.rank([[]], 4)
    assert loaded.without_small_weights(0.2).fallback is not None
