import numpy as np
import pytest

from recs_platform.evaluation.metrics import (
    hit_rate_at,
    item_coverage_at,
    mrr_at,
    popularity_bias_at,
    popularity_percentiles,
    target_ranks,
    top_k,
)


def test_rank_counts_every_other_item_scoring_at_least_the_target():
    scores = np.array(
        [
            [0.1, 0.5, 0.3, 0.5],  # target 2: items 1 and 3 score higher -> rank 3
            [0.1, 0.5, 0.3, 0.5],  # target 1: item 3 ties with it -> rank 2, not 1
            [1.0, 1.0, 1.0, 1.0],  # constant scorer: ranked last
            [0.9, 0.1, 0.2, 0.3],  # target 0: clear winner -> rank 1
            [-np.inf, 0.1, 0.2, 0.3],  # excluded target: last
        ]
    )
    ranks = target_ranks(scores, np.array([2, 1, 0, 0, 0]))
    assert ranks.tolist() == [3, 2, 4, 1, 4]


def test_hit_rate_and_mrr_on_hand_computed_ranks():
    ranks = np.array([3, 2, 4, 1])
    assert hit_rate_at(ranks, 2) == 0.5
    assert mrr_at(ranks, 2) == pytest.approx((0 + 1 / 2 + 0 + 1) / 4)
    assert hit_rate_at(ranks, 3) == 0.75
    assert mrr_at(ranks, 3) == pytest.approx((1 / 3 + 1 / 2 + 0 + 1) / 4)
    assert hit_rate_at(ranks, 20) == 1.0


def test_metrics_refuse_empty_input_and_bad_k():
    with pytest.raises(ValueError, match="no targets"):
        hit_rate_at(np.array([]), 20)
    with pytest.raises(ValueError, match="k must be at least 1"):
        mrr_at(np.array([1]), 0)


def slow_top_k(row, k):
    """Reference: sort every finite candidate by (score descending, index ascending)."""
    finite = [item for item in range(len(row)) if np.isfinite(row[item])]
    best = sorted(finite, key=lambda item: (-row[item], item))[:k]
    return best + [-1] * (k - len(best))


def test_top_k_breaks_ties_to_the_lower_index_and_leaves_out_excluded_items():
    scores = np.array(
        [
            [0.5, 0.9, 0.5, 0.5, 0.1, 0.5],  # tie at the cut: the lower indices 0, 2 win
            [-np.inf, 0.9, 0.5, -np.inf, 0.5, 0.1],  # excluded 0 and 3 never come back
            [-np.inf, 0.2, -np.inf, -np.inf, -np.inf, -np.inf],  # one item left: padded
            [-np.inf] * 6,  # nothing left
            [1.0] * 6,  # constant scorer: catalogue order
        ]
    )
    assert top_k(scores, 3).tolist() == [
        [1, 0, 2],
        [1, 2, 4],
        [1, -1, -1],
        [-1, -1, -1],
        [0, 1, 2],
    ]
    # More wanted than there are items.
    assert top_k(np.array([[0.1, 0.3]]), 3).tolist() == [[1, 0, -1]]


def test_top_k_matches_a_plain_sort_on_tie_heavy_random_scores():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, size=(200, 12)).astype(float)
    scores[rng.random(scores.shape) < 0.2] = -np.inf
    for k in (1, 3, 12, 15):
        expected = [slow_top_k(row, k) for row in scores]
        assert top_k(scores, k).tolist() == expected


def test_top_k_refuses_nan_and_bad_k():
    with pytest.raises(ValueError, match="NaN"):
        top_k(np.array([[0.1, np.nan]]), 1)
    with pytest.raises(ValueError, match="k must be at least 1"):
        top_k(np.array([[0.1]]), 0)


def test_item_coverage_counts_distinct_candidates_in_the_top_k_lists():
    top = np.array([[0, 1], [1, 2], [0, -1]])
    assert item_coverage_at(top, 2, n_candidates=5) == pytest.approx(3 / 5)  # 0, 1, 2
    assert item_coverage_at(top, 1, n_candidates=5) == pytest.approx(2 / 5)  # 0, 1
    assert item_coverage_at(np.array([[-1, -1]]), 2, n_candidates=5) == 0.0
    with pytest.raises(ValueError, match="between 1 and"):
        item_coverage_at(top, 3, n_candidates=5)
    with pytest.raises(ValueError, match="no candidates"):
        item_coverage_at(top, 2, n_candidates=0)


def test_popularity_percentile_is_the_share_of_candidates_viewed_strictly_less():
    # Sorted counts 0, 3, 3, 5, 9: below 5 are three items, below either 3 one, below 0 none.
    assert popularity_percentiles(np.array([5, 0, 3, 3, 9])).tolist() == pytest.approx(
        [3 / 5, 0, 1 / 5, 1 / 5, 4 / 5]
    )
    # All tied: nothing is viewed strictly less than anything.
    assert popularity_percentiles(np.array([2, 2, 2])).tolist() == [0, 0, 0]


def test_popularity_bias_averages_over_every_recommended_item_of_every_list():
    percentiles = popularity_percentiles(np.array([5, 0, 3, 3, 9]))  # .6 0 .2 .2 .8
    top = np.array([[4, 0], [2, -1], [4, 3]])
    # @2: 4, 0 | 2 | 4, 3 -> (.8 + .6 + .2 + .8 + .2) / 5; an item counts once per list.
    assert popularity_bias_at(top, 2, percentiles) == pytest.approx(2.6 / 5)
    assert popularity_bias_at(top, 1, percentiles) == pytest.approx((0.8 + 0.2 + 0.8) / 3)
    assert np.isnan(popularity_bias_at(np.array([[-1]]), 1, percentiles))
