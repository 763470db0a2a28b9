"""V-SKNN on sessions small enough to check the neighbourhood scores by hand."""

import math

import numpy as np
import pytest

from recs_platform.models.base import load_recommender
from recs_platform.models.vsknn import POPULARITY_SCALE, VSKNNRecommender

# In time order: s0 [a b], s1 [b c], s2 [a c d], s3 [e]. Occurrences: a 2, b 2, c 2, d 1, e 1.
SESSIONS = [["a", "b"], ["b", "c"], ["a", "c", "d"], ["e"]]
POPULARITY_SHARE = np.array([2, 2, 2, 1, 1]) / 9

# Prefix [a b]: weights a 1/2, b 1 (linear decay), |w| = sqrt(1.25).
NORM = math.sqrt(1.25)
SIM_S0 = (0.5 + 1) / (NORM * math.sqrt(2))  # shares a and b
SIM_S1 = 1 / (NORM * math.sqrt(2))  # shares b
SIM_S2 = 0.5 / (NORM * math.sqrt(3))  # shares a


def expected(neighbourhood: dict[str, float]) -> np.ndarray:
    scores = np.array([neighbourhood.get(item, 0.0) for item in "abcde"])
    smallest = scores[scores > 0].min()
    return scores + POPULARITY_SCALE * smallest * POPULARITY_SHARE


def test_every_sharing_session_votes_with_its_cosine_similarity():
    model = VSKNNRecommender(k=10, sample_size=10).fit(SESSIONS)
    assert model.item_ids == list("abcde")
    scores = model.score([["a", "b"]])[0]
    np.testing.assert_allclose(
        scores,
        expected(
            {
                "a": SIM_S0 + SIM_S2,
                "b": SIM_S0 + SIM_S1,
                "c": SIM_S1 + SIM_S2,
                "d": SIM_S2,
            }
        ),
    )
    # Seen items left out: c (two neighbours) before d, then popularity for e.
    assert model.rank([["a", "b"]], k=3) == [["c", "d", "e"]]


def test_k_keeps_the_most_similar_neighbours():
    model = VSKNNRecommender(k=2, sample_size=10).fit(SESSIONS)
    scores = model.score([["a", "b"]])[0]
    np.testing.assert_allclose(scores, expected({"a": SIM_S0, "b": SIM_S0 + SIM_S1, "c": SIM_S1}))
    # d has no kept neighbour: popularity orders it with e.
    assert model.rank([["a", "b"]], k=3) == [["c", "d", "e"]]


def test_sample_size_keeps_the_most_recent_sharing_sessions():
    # The latest two sessions sharing an item with [a b] are s1 and s2; s0 is not sampled.
    model = VSKNNRecommender(k=10, sample_size=2).fit(SESSIONS)
    scores = model.score([["a", "b"]])[0]
    np.testing.assert_allclose(
        scores, expected({"a": SIM_S2, "b": SIM_S1, "c": SIM_S1 + SIM_S2, "d": SIM_S2})
    )


def test_the_latest_item_weighs_most():
    model = VSKNNRecommender().fit(SESSIONS)
    # [b a]: a (weight 1) now outweighs b; s2 (shares a) beats s1 (shares b) and d scores.
    by_b_last = model.score([["a", "b"]])[0]
    by_a_last = model.score([["b", "a"]])[0]
    assert by_a_last[3] > by_b_last[3]  # d, only in s2 which shares a


def test_popularity_ranks_when_no_neighbour_shares_an_item():
    model = VSKNNRecommender().fit(SESSIONS)
    for prefix in ([], ["never-seen"]):
        np.testing.assert_array_equal(model.score([prefix])[0], POPULARITY_SHARE)
    # Unknown SKUs inside a prefix are ignored.
    np.testing.assert_array_equal(
        model.score([["a", "never-seen", "b"]]), model.score([["a", "b"]])
    )
    # e's only session holds nothing else: the rest by popularity, ties to the lower index.
    assert model.rank([["e"]], k=4) == [["a", "b", "c", "d"]]


def test_a_batch_scores_each_row_like_alone():
    model = VSKNNRecommender(k=2).fit(SESSIONS)
    prefixes = [["a"], ["c", "d"], [], ["b", "a", "e"]]
    batch = model.score(prefixes)
    for row, prefix in enumerate(prefixes):
        np.testing.assert_array_equal(batch[row], model.score([prefix])[0])


def test_saved_and_loaded_vsknn_scores_the_same(tmp_path):
    model = VSKNNRecommender(name="knn", k=2, sample_size=3).fit(SESSIONS)
    loaded = load_recommender(model.save(tmp_path / "vsknn"))
    assert isinstance(loaded, VSKNNRecommender) and loaded.name == "knn"
    assert (loaded.k, loaded.sample_size) == (2, 3)
    prefixes = [[], ["a"], ["a", "b"], ["c", "unknown"]]
    np.testing.assert_array_equal(loaded.score(prefixes), model.score(prefixes))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        VSKNNRecommender(k=0)
    with pytest.raises(RuntimeError, match="call fit"):
        VSKNNRecommender().score([["a"]])


def test_the_per_item_cut_keeps_exactly_the_latest_neighbours():
    """Each item keeps only its latest sample_size sessions for the overlap product; the
    neighbours found are the same as with every session of every item."""
    rng = np.random.default_rng(5)
    sessions = [[f"i{item}" for item in rng.choice(12, rng.integers(2, 6))] for _ in range(400)]
    prefixes = [[f"i{item}" for item in rng.choice(12, rng.integers(1, 5))] for _ in range(60)]
    model = VSKNNRecommender(k=7, sample_size=15).fit(sessions)
    assert np.diff(model.sessions_by_item.indptr).max() == 15
    uncut = VSKNNRecommender(k=7, sample_size=15).fit(sessions)
    uncut.sessions_by_item = uncut.sessions.T.tocsr()
    assert np.diff(uncut.sessions_by_item.indptr).max() > 100
    got, expected = model.neighbours(prefixes), uncut.neighbours(prefixes)
    assert (got != expected).nnz == 0
    assert model.score(prefixes) == pytest.approx(uncut.score(prefixes))
