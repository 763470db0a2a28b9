"""Popularity and the Markov chain on sessions small enough to rank by hand."""

import numpy as np
import pytest

from recs_platform.models.base import SessionRecommender, load_recommender
from recs_platform.models.markov import MarkovRecommender
from recs_platform.models.popularity import PopularityRecommender

# Occurrences: a 1, b 2, c 3, d 1. Transitions: a->b 1, b->c 2, c->d 1.
SESSIONS = [["a", "b", "c"], ["b", "c"], ["c", "d"]]


def test_popularity_ranks_by_occurrences_ties_to_the_lower_index():
    model = PopularityRecommender().fit(SESSIONS)
    assert model.item_ids == ["a", "b", "c", "d"]
    assert model.score([[]]).tolist() == [[1, 2, 3, 1]]
    assert model.rank([[]], k=4) == [["c", "b", "a", "d"]]
    assert model.rank([["c"], ["c", "b"]], k=10) == [["b", "a", "d"], ["a", "d"]]
    assert model.rank([["c"]], k=2, exclude_seen=False) == [["c", "b"]]


def test_markov_ranks_successors_of_the_last_item_then_popularity():
    model = MarkovRecommender().fit(SESSIONS)
    assert model.rank([["b"]], k=3) == [["c", "a", "d"]]
    assert model.rank([["c"]], k=3) == [["d", "b", "a"]]
    # After a: its successor b first, then c (most popular), seen a left out.
    assert model.rank([["d", "a"]], k=2) == [["b", "c"]]
    # Only the last item matters; seen items are left out.
    assert model.rank([["c", "a", "b"]], k=3) == [["d"]]


def test_markov_falls_back_to_popularity_for_items_without_successors_or_unknown():
    model = MarkovRecommender().fit(SESSIONS)
    assert model.rank([["d"]], k=3) == [["c", "b", "a"]]
    assert model.rank([["never-seen"]], k=4) == [["c", "b", "a", "d"]]
    assert model.rank([[]], k=1) == [["c"]]


def test_markov_popularity_only_breaks_ties_between_equal_counts():
    # x->p once, x->q once; q (4 occurrences) is more popular than p (3), so it wins the tie.
    # y->p twice beats any popularity.
    sessions = [["x", "p"], ["x", "q"], ["q"], ["q"], ["q"], ["y", "p"], ["y", "p"]]
    model = MarkovRecommender().fit(sessions)
    assert model.rank([["x"]], k=2) == [["q", "p"]]
    assert model.rank([["y"]], k=2) == [["p", "q"]]
    scores = model.score([["x"]])[0]
    index = model.item_index()
    assert 1 <= scores[index["p"]] < scores[index["q"]] < 2


def test_rank_returns_fewer_than_k_when_the_catalogue_runs_out():
    model = PopularityRecommender().fit(SESSIONS)
    assert model.rank([["a", "b", "c", "d"]], k=3) == [[]]
    with pytest.raises(ValueError, match="k must be at least 1"):
        model.rank([[]], k=0)


def test_fit_needs_items_and_score_needs_fit():
    with pytest.raises(ValueError, match="no items"):
        MarkovRecommender().fit([[], []])
    with pytest.raises(RuntimeError, match="call fit"):
        PopularityRecommender().score([["a"]])


class FixedScores(SessionRecommender):
    name = "fixed"

    def __init__(self, scores):
        self.item_ids = [f"i{index}" for index in range(len(scores))]
        self.scores = np.asarray(scores, dtype=float)

    def fit(self, sessions):
        return self

    def score(self, prefixes):
        return np.tile(self.scores, (len(prefixes), 1))


def test_base_rank_breaks_ties_by_item_index_across_the_cut():
    model = FixedScores([0.5, 0.9, 0.5, 0.5, 0.1, 0.5])
    assert model.rank([[]], k=3) == [["i1", "i0", "i2"]]
    assert model.rank([["i0", "i1"]], k=3) == [["i2", "i3", "i5"]]
    assert model.rank([["unknown"]], k=2) == [["i1", "i0"]]


@pytest.mark.parametrize("model_class", [PopularityRecommender, MarkovRecommender])
def test_saved_and_loaded_models_rank_the_same(tmp_path, model_class):
    model = model_class(name="saved").fit(SESSIONS)
    prefixes = [[], ["a"], ["b", "c"], ["unknown"]]
    loaded = load_recommender(model.save(tmp_path / "model"))
    assert type(loaded) is model_class and loaded.name == "saved"
    assert loaded.rank(prefixes, k=3) == model.rank(prefixes, k=3)
    np.testing.assert_array_equal(loaded.score(prefixes), model.score(prefixes))


def test_loading_a_folder_without_a_model_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved recommender"):
        load_recommender(tmp_path)
