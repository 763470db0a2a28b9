import numpy as np
import pytest

from recs_platform.evaluation.protocol import (
    evaluate,
    next_item_targets,
    ranks_of_targets,
    shop_headroom,
    split_by_time,
)
from recs_platform.models.base import SessionRecommender
from recs_platform.simulation import ShopConfig


class FixedScores(SessionRecommender):
    """Scores its own catalogue the same way for every prefix."""

    def __init__(self, scores: dict[str, float]):
        self.name = "fixed"
        self.item_ids = list(scores)
        self.scores = np.array(list(scores.values()))

    def fit(self, sessions):
        return self

    def score(self, prefixes):
        return np.tile(self.scores, (len(prefixes), 1))


def test_split_by_time_keeps_the_last_days_for_testing():
    sessions = [(1, ["a"]), (3, ["b", "c"]), (2, ["c"]), (3, ["d"]), (1, ["e"])]
    split = split_by_time(sessions, test_days=1)
    assert split.train == [["a"], ["c"], ["e"]]
    assert split.test == [(3, ["b", "c"]), (3, ["d"])]
    assert (split.train_days, split.test_days) == ([1, 2], [3])
    with pytest.raises(ValueError, match="test_days"):
        split_by_time(sessions, test_days=3)


def test_targets_at_every_position_skipping_items_unknown_to_training():
    targets = next_item_targets([(5, ["a", "b", "e", "d"]), (5, ["c"])], ["d", "c", "b", "a"])
    assert targets.prefixes == [("a",), ("a", "b", "e")]
    assert targets.targets == ["b", "d"]
    assert targets.skipped_unknown == 1
    assert targets.sessions == 2
    assert targets.candidate_items == ["a", "b", "c", "d"]


def test_ranks_map_each_model_onto_the_candidates_and_exclude_seen_items():
    targets = next_item_targets([(5, ["a", "b", "e", "d"])], ["a", "b", "c", "d"])
    # The model does not know "a" (scored -inf) and knows "x", which is no candidate.
    model = FixedScores({"d": 0.2, "c": 0.9, "b": 0.2, "x": 5.0})
    # Target b after [a]: c scores higher, d ties -> rank 3. Target d after [a, b, e]: a and b
    # are seen, c scores higher -> rank 2.
    assert ranks_of_targets(model, targets).tolist() == [3, 2]
    assert ranks_of_targets(model, targets, batch_size=1).tolist() == [3, 2]
    report = evaluate({"fixed": model}, targets, k=2)
    assert (report.row("fixed").hit_rate, report.row("fixed").mrr) == (0.5, 0.25)
    assert report.targets == 2 and report.skipped_unknown == 1
    assert "fixed" in report.format_table()


def test_day_dependent_recommenders_get_each_targets_own_day():
    targets = next_item_targets([(5, ["a", "b"]), (6, ["a", "d"])], ["a", "b", "c", "d"])
    asked = []

    def recommender_for(day):
        asked.append(day)
        favourite = {5: "b", 6: "d"}[day]
        return FixedScores({sku: float(sku == favourite) for sku in "abcd"})

    report = evaluate({"by-day": recommender_for}, targets, k=1)
    assert sorted(asked) == [5, 6]
    assert report.row("by-day").hit_rate == 1.0


def test_oracle_is_clearly_ahead_of_markov_which_is_far_ahead_of_popularity():
    config = ShopConfig(n_items=500, n_categories=10, days=5, sessions_per_day=2000)
    report = shop_headroom(config, test_days=1)
    oracle, markov, popularity = (report.row(name) for name in ("oracle", "markov", "popularity"))
    assert report.targets > 5000
    assert oracle.mrr >= 1.08 * markov.mrr
    assert oracle.hit_rate > markov.hit_rate
    assert markov.mrr > 2 * popularity.mrr
    assert "oracle" in report.format_table()
