import json

import numpy as np
import pytest

from recs_platform.evaluation.protocol import (
    evaluate,
    evaluate_recommender,
    next_item_targets,
    rank_targets,
    ranks_and_likelihoods,
    ranks_of_targets,
    shop_headroom,
    split_by_time,
)
from recs_platform.models.base import SessionRecommender
from recs_platform.models.blend import BlendRecommender
from recs_platform.models.markov import MarkovRecommender
from recs_platform.simulation import FAMILY_NAMES, ShopConfig


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
    assert split.dated_train == [(1, ["a"]), (2, ["c"]), (1, ["e"])]
    with pytest.raises(ValueError, match="test_days"):
        split_by_time(sessions, test_days=3)


def test_targets_at_every_position_skipping_items_unknown_to_training():
    targets = next_item_targets([(5, ["a", "b", "e", "d"]), (5, ["c"])], ["d", "c", "b", "a"])
    assert targets.prefixes == [("a",), ("a", "b", "e")]
    assert targets.targets == ["b", "d"]
    assert targets.skipped_unknown == 1
    assert targets.sessions == 2
    assert targets.candidate_items == ["a", "b", "c", "d"]


def test_a_return_to_a_product_of_the_prefix_is_no_target():
    # b -> a -> c -> a: the second a is a return visit no exclude-seen recommender may show.
    targets = next_item_targets([(5, ["b", "a", "c", "a", "d"])], ["a", "b", "c", "d"])
    assert targets.targets == ["a", "c", "d"]
    assert targets.prefixes[-1] == ("b", "a", "c", "a")
    assert (targets.skipped_seen, targets.skipped_unknown) == (1, 0)
    report = evaluate({"fixed": FixedScores({"a": 1.0})}, targets, k=2)
    assert report.skipped_seen == 1 and "1 (return visits)" in report.format_table()


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
    for row in report.rows:
        assert row.metrics["hr_10"] <= row.metrics["hr_20"] == row.hit_rate
        assert row.metrics["mrr_10"] <= row.metrics["mrr_20"] == row.mrr
    # Popularity shows the same few head items to everyone; the models that read the prefix
    # spread over the catalogue and reach further into it.
    assert popularity.metrics["coverage_20"] < 0.2 < markov.metrics["coverage_20"]
    assert oracle.metrics["coverage_20"] > 0.5
    assert (
        oracle.metrics["popularity_bias_20"]
        < markov.metrics["popularity_bias_20"]
        < popularity.metrics["popularity_bias_20"]
    )
    table = report.format_table()
    assert "oracle" in table and "Cov@20" in table and "PopBias@20" in table


# Targets b after [a], d after [a, b, e] (e unknown to training: its target is skipped).
# FixedScores below does not know a and knows x, which is no candidate.
# Masked candidate scores (a, b, c, d): [-inf, .2, .9, .2] and [-inf, -inf, .9, .2].
TRAIN = [["a", "b", "c"], ["c", "d"], ["c"]]  # a 1, b 1, c 3, d 1


def fixed_case():
    targets = next_item_targets([(5, ["a", "b", "e", "d"])], ["a", "b", "c", "d"])
    return targets, FixedScores({"d": 0.2, "c": 0.9, "b": 0.2, "x": 5.0})


def test_top_k_lists_come_from_the_same_masked_scores_as_the_ranks():
    targets, model = fixed_case()
    results = rank_targets(model, targets, k=3)
    # Ranks count ties against the model (b ties with d: rank 3), while the lists break them
    # toward the lower index (b before d), as SessionRecommender.rank does.
    assert results.ranks.tolist() == [3, 2]
    assert results.top.tolist() == [[2, 1, 3], [2, 3, -1]]
    assert rank_targets(model, targets, k=3, batch_size=1).top.tolist() == results.top.tolist()


def test_likelihoods_are_the_targets_shares_of_the_unseen_known_items_and_ranks_unchanged():
    targets, model = fixed_case()  # prefixes [a] -> b and [a, b] -> d; e is not a candidate
    ranks, likelihoods = ranks_and_likelihoods(model, targets, batch_size=1)
    assert ranks.tolist() == ranks_of_targets(model, targets).tolist()
    # Nothing of the prefix is in the model's catalogue: b's share of d, c, b, x.
    # After [a, b, e]: b is seen, d's share of d, c, x.
    np.testing.assert_allclose(likelihoods, [0.2 / 6.3, 0.2 / 6.1])
    # What a blend of this one member weighs it by, from scoring the prefixes again.
    np.testing.assert_allclose(
        likelihoods,
        BlendRecommender([model]).target_likelihoods(targets.prefixes, targets.targets)[:, 0],
    )


def test_evaluate_reports_every_metric_on_hand_computed_values():
    targets, model = fixed_case()
    report = evaluate({"fixed": model}, targets, k=2, ks=(1, 2), train_sessions=TRAIN)
    row = report.row("fixed")
    # Ranks 3 and 2. Top-2 lists [c, b] and [c, d]: 3 of 4 candidates covered. Percentiles
    # (share of candidates viewed strictly less): a, b, d 0; c 3/4 -> (3/4 + 0 + 3/4 + 0) / 4.
    assert row.metrics == pytest.approx(
        {
            "hr_1": 0.0,
            "hr_2": 0.5,
            "mrr_1": 0.0,
            "mrr_2": 0.25,
            "coverage_2": 0.75,
            "popularity_bias_2": 0.375,
        }
    )
    assert (row.hit_rate, row.mrr) == (0.5, 0.25)
    assert report.ks == (1, 2)
    assert report.metric_names() == [
        "hr_1",
        "hr_2",
        "mrr_1",
        "mrr_2",
        "coverage_2",
        "popularity_bias_2",
    ]
    as_dict = json.loads(json.dumps(report.as_dict()))
    assert as_dict["rows"] == [{"name": "fixed", **row.metrics}]
    assert as_dict["skipped_unknown"] == 1 and as_dict["targets"] == 2
    header = report.format_table().splitlines()[1].split()
    assert header == ["model", "HR@1", "HR@2", "MRR@1", "MRR@2", "Cov@2", "PopBias@2"]
    compact = report.format_table(["hr_2", "mrr_2"]).splitlines()
    assert compact[1].split() == ["model", "HR@2", "MRR@2"]
    assert compact[2].split() == ["fixed", "0.5000", "0.2500"]

    counted = evaluate({"fixed": model}, targets, k=2, ks=(1, 2), train_counts={"c": 3, "a": 1})
    assert counted.row("fixed").metrics == row.metrics
    with pytest.raises(ValueError, match="not both"):
        evaluate({"fixed": model}, targets, train_sessions=TRAIN, train_counts={"c": 3})


def test_without_training_popularity_the_bias_is_left_out():
    targets, model = fixed_case()
    row = evaluate({"fixed": model}, targets, k=2, ks=(2, 10)).row("fixed")
    assert set(row.metrics) == {"hr_2", "hr_10", "mrr_2", "mrr_10", "coverage_2"}


def test_evaluate_recommender_gives_the_row_and_the_per_target_ranks():
    targets, model = fixed_case()
    row, results = evaluate_recommender(model, targets, k=2, ks=(1, 2), train_sessions=TRAIN)
    report = evaluate({"fixed": model}, targets, k=2, ks=(1, 2), train_sessions=TRAIN)
    assert row == report.row("fixed")
    assert results.ranks.tolist() == ranks_of_targets(model, targets).tolist() == [3, 2]
    assert results.k == 2


def test_top_k_lists_agree_with_the_recommenders_own_rank():
    sessions = [["a", "b", "c"], ["b", "c"], ["c", "d"], ["d", "a"], ["e"]]
    model = MarkovRecommender().fit(sessions)
    test = [(9, ["b", "a", "c", "d"]), (9, ["e", "d", "zz", "c"])]
    targets = next_item_targets(test, model.item_ids)
    results = rank_targets(model, targets, k=4)
    expected = model.rank(targets.prefixes, k=4)
    lists = [[targets.candidate_items[i] for i in row if i >= 0] for row in results.top.tolist()]
    assert lists == expected


class NaNScores(FixedScores):
    def score(self, prefixes):
        scores = super().score(prefixes)
        scores[:, 0] = np.nan
        return scores


def test_nan_scores_are_refused_rather_than_counted_as_hits():
    targets, _ = fixed_case()
    with pytest.raises(ValueError, match="NaN"):
        evaluate({"nan": NaNScores({sku: 0.1 for sku in "abcd"})}, targets)


def test_day_dependent_recommenders_get_their_own_top_k_lists():
    targets = next_item_targets([(5, ["a", "b"]), (6, ["a", "d"])], ["a", "b", "c", "d"])

    def recommender_for(day):
        favourite = {5: "b", 6: "d"}[day]
        return FixedScores({sku: float(sku == favourite) for sku in "abcd"})

    results = rank_targets(recommender_for, targets, k=2)
    assert results.top.tolist() == [[1, 2], [3, 1]]
    row = evaluate({"by-day": recommender_for}, targets, k=2).row("by-day")
    assert row.metrics["coverage_2"] == 0.75


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_every_shop_family_has_its_oracle_above_markov_on_the_same_targets(family):
    config = ShopConfig(n_items=300, n_categories=6, days=3, sessions_per_day=600, family=family)
    report = shop_headroom(config, test_days=1)
    assert f"({family} family, seed 7" in report.title
    assert report.targets > 1000
    assert report.row("oracle").mrr > report.row("markov").mrr
    # Only shops with return visits have targets already in their prefix, never scored.
    assert (report.skipped_seen > 0) == (family in ("revisits", "mixed"))
