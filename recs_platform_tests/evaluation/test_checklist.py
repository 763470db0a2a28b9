"""The behavioural checklist: slices on a case counted by hand, and each invariant caught."""

import json
import re

import numpy as np
import pytest

from recs_platform.evaluation.checklist import (
    INVARIANTS,
    new_items,
    popularity_segments,
    run_checklist,
    sample_prefixes,
    slice_metrics,
)
from recs_platform.evaluation.protocol import evaluate_recommender, next_item_targets
from recs_platform.models.markov import MarkovRecommender
from recs_platform.models.popularity import PopularityRecommender

# Training views: a 5, b 2, c 2, d 1 (10 in all). Shares of views above each item: a 0 (head),
# b and c 5/10 (torso: ties share a segment), d 9/10 (tail). d is first viewed on day 2, the
# last training day: with new_item_days=1 it is the only new item.
TRAIN = [
    (1, ["a", "b", "c"]),
    (1, ["a", "b"]),
    (1, ["a"]),
    (2, ["a", "c"]),
    (2, ["d", "a"]),
]
TEST = [
    (3, ["b", "a"]),  # t0: (b) -> a: length 1, head, established
    (3, ["x", "y", "z", "w", "c", "d"]),  # t1: length 4 -> c torso; t2: length 5 -> d tail, new
    (3, ["a", "b", "d"]),  # t3: (a) -> b: length 1, torso; t4: (a, b) -> d: length 2, tail, new
]
MLFLOW_NAME = re.compile(r"^[/\w.\- :]*$")


def skus(dated):
    return [items for _, items in dated]


@pytest.fixture
def targets():
    targets = next_item_targets(TEST, ["a", "b", "c", "d"])
    assert targets.targets == ["a", "c", "d", "b", "d"]
    assert targets.skipped_unknown == 3  # y, z, w
    return targets


def test_popularity_segments_by_cumulative_share_of_training_views():
    assert popularity_segments(np.array([5, 2, 2, 1])) == ["head", "torso", "torso", "tail"]
    # Above b are 4 of 10 views (head: the item crossing 50% is still head), above c 7 (torso),
    # above d 9 (tail).
    assert popularity_segments(np.array([4, 3, 2, 1])) == ["head", "head", "torso", "tail"]
    assert popularity_segments(np.array([3, 3, 3])) == ["head"] * 3
    assert popularity_segments(np.array([0, 0])) == ["tail", "tail"]


def test_new_items_are_first_viewed_in_the_last_training_days():
    assert new_items(TRAIN, 1) == {"d"}
    assert new_items(list(reversed(TRAIN)), 1) == {"d"}  # order of sessions does not matter
    assert new_items(TRAIN, 2) == {"a", "b", "c", "d"}
    assert new_items(TRAIN, 0) == set()


def test_slices_on_a_case_counted_by_hand(targets):
    ranks = np.array([1, 3, 25, 2, 21])
    results = {
        (result.group, result.label): (result.targets, result.hit_rate, result.mrr)
        for result in slice_metrics(ranks, targets, TRAIN, k=20, new_item_days=1)
    }
    expected = {
        ("all", "all"): (5, 3 / 5, (1 + 1 / 3 + 1 / 2) / 5),
        ("prefix_length", "1"): (2, 1.0, (1 + 1 / 2) / 2),  # t0, t3
        ("prefix_length", "2-4"): (2, 0.5, (1 / 3) / 2),  # t1 (rank 3), t4 (21)
        ("prefix_length", "5+"): (1, 0.0, 0.0),  # t2
        ("target_popularity", "head"): (1, 1.0, 1.0),  # t0
        ("target_popularity", "torso"): (2, 1.0, (1 / 3 + 1 / 2) / 2),  # t1, t3
        ("target_popularity", "tail"): (2, 0.0, 0.0),  # t2, t4
        ("target_age", "new"): (2, 0.0, 0.0),  # t2, t4
        ("target_age", "established"): (3, 1.0, (1 + 1 / 3 + 1 / 2) / 3),
    }
    assert list(results) == list(expected)
    for key, values in expected.items():
        assert results[key] == pytest.approx(values), key


def test_an_empty_slice_has_no_metrics(targets):
    first_only = next_item_targets(TEST[:1], ["a", "b", "c", "d"])
    results = slice_metrics(np.array([4]), first_only, TRAIN, k=3, new_item_days=1)
    longest = next(r for r in results if (r.group, r.label) == ("prefix_length", "5+"))
    assert (longest.targets, longest.hit_rate, longest.mrr) == (0, None, None)
    with pytest.raises(ValueError, match="1 ranks for 5 targets"):
        slice_metrics(np.array([1]), targets, TRAIN)


@pytest.mark.parametrize("model_class", [PopularityRecommender, MarkovRecommender])
def test_the_baselines_pass_every_invariant(targets, model_class):
    model = model_class().fit(skus(TRAIN))
    checklist = run_checklist(model, TRAIN, targets, k=3, new_item_days=1)
    assert checklist.passed, checklist.format_table()
    assert checklist.failures() == []
    assert [result.name for result in checklist.invariants] == list(INVARIANTS)
    assert all(result.checked > 0 for result in checklist.invariants)
    # The slices use the protocol's ranks.
    _, results = evaluate_recommender(model, targets, k=3)
    assert checklist.slice("all", "all").hit_rate == pytest.approx(np.mean(results.ranks <= 3))


def test_the_checklist_is_plain_data_for_logging(targets):
    model = MarkovRecommender().fit(skus(TRAIN))
    checklist = run_checklist(model, TRAIN, targets, k=3)
    as_dict = json.loads(json.dumps(checklist.as_dict(), allow_nan=False))
    assert as_dict["passed"] is True and as_dict["recommender"] == "markov"
    assert {result["name"] for result in as_dict["invariants"]} == set(INVARIANTS)
    metrics = checklist.metrics()
    assert all(MLFLOW_NAME.match(name) for name in metrics), list(metrics)
    assert metrics["prefix_length/5_plus/targets"] == 1.0
    assert metrics["invariant/exclude_seen"] == 1.0
    assert "FAIL" not in checklist.format_table()


def test_given_ranks_are_used_instead_of_scoring_again(targets):
    model = PopularityRecommender().fit(skus(TRAIN))
    checklist = run_checklist(model, TRAIN, targets, k=20, ranks=np.array([1, 3, 25, 2, 21]))
    assert checklist.slice("prefix_length", "5+").hit_rate == 0.0
    assert checklist.slice("target_age", "new").targets == 2


def test_the_sample_of_prefixes_is_bounded_and_seeded(targets):
    assert sample_prefixes(targets, 10) == targets.prefixes
    sample = sample_prefixes(targets, 3, seed=1)
    assert len(sample) == 3 and sample == sample_prefixes(targets, 3, seed=1)
    assert set(sample) <= set(targets.prefixes)


# Broken recommenders, each breaking exactly one invariant. Popularity with distinct scores
# except the b/c tie (counts a 5, b 2, c 2, d 1).


class LeaksSeenItems(PopularityRecommender):
    def rank(self, prefixes, k, exclude_seen=True):
        return super().rank(prefixes, k, exclude_seen=False)


class RandomEveryCall(PopularityRecommender):
    """Scales all scores by a fresh random factor: the order never changes, the scores do."""

    rng = np.random.default_rng()

    def score(self, prefixes):
        return super().score(prefixes) * self.rng.uniform(1, 2)


class NoPopularityFallback(PopularityRecommender):
    """Least popular first when nothing in the prefix is known."""

    def score(self, prefixes):
        scores = super().score(prefixes)
        index = self.item_index()
        for row, prefix in enumerate(prefixes):
            if not any(sku in index for sku in prefix):
                scores[row] = -scores[row]
        return scores


class UnsortedRanking(PopularityRecommender):
    """Returns its lists backwards whenever the prefix has a known item."""

    def rank(self, prefixes, k, exclude_seen=True):
        rankings = super().rank(prefixes, k, exclude_seen)
        index = self.item_index()
        return [
            ranking[::-1] if any(sku in index for sku in prefix) else ranking
            for prefix, ranking in zip(prefixes, rankings, strict=True)
        ]


class FailsOnUnknownSkus(PopularityRecommender):
    def score(self, prefixes):
        index = self.item_index()
        if any(sku not in index for prefix in prefixes for sku in prefix):
            raise KeyError("unknown sku")
        return super().score(prefixes)


@pytest.mark.parametrize(
    ("model_class", "failing", "detail"),
    [
        (LeaksSeenItems, "exclude_seen", r"prefix \('b',\): its item 'b' is ranked at position 2"),
        (RandomEveryCall, "deterministic", r"item 'a' scored \d\.\d+ then \d\.\d+"),
        (
            NoPopularityFallback,
            "popularity_fallback",
            r"empty prefix: ranked \['d', 'b', 'c'\], popularity ranks \['a', 'b', 'c'\] "
            r"\(first difference at position 1\)",
        ),
        (UnsortedRanking, "sorted_scores", r"'d' \(score 1\.0\) is ranked before 'c' \(score 2"),
    ],
)
def test_each_broken_recommender_fails_exactly_its_invariant(targets, model_class, failing, detail):
    model = model_class().fit(skus(TRAIN))
    checklist = run_checklist(model, TRAIN, targets, k=3)
    assert not checklist.passed
    assert [result.name for result in checklist.failures()] == [failing]
    assert re.search(detail, checklist.invariant(failing).detail), checklist.invariant(
        failing
    ).detail
    assert checklist.as_dict()["passed"] is False
    assert checklist.metrics()[f"invariant/{failing}"] == 0.0
    assert f"FAIL {failing}" in checklist.format_table()


def test_a_recommender_that_raises_fails_with_the_error_as_detail(targets):
    model = FailsOnUnknownSkus().fit(skus(TRAIN))
    checklist = run_checklist(model, TRAIN, targets, k=3, ranks=np.ones(len(targets)))
    failures = {result.name: result.detail for result in checklist.failures()}
    assert "popularity_fallback" in failures
    assert failures["popularity_fallback"] == "raised KeyError: 'unknown sku'"
