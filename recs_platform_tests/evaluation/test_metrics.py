import numpy as np
import pytest

from recs_platform.evaluation.metrics import hit_rate_at, mrr_at, target_ranks


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
