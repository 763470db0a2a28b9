"""The sparse transition term: gathered exactly as a dense matrix would be, trained, saved."""

import numpy as np
import pytest
import torch

from recs_platform.models.base import load_recommender
from recs_platform.models.gru4rec import TransitionGRURecommender
from recs_platform.models.transitions import SparseTransitions, transition_counts

# Codes 1..4 (items 0..3).
SESSIONS = [np.array(codes) for codes in ([1, 2, 3], [1, 2], [2, 4, 1], [3, 3, 2], [4])]


def test_counts_are_the_observed_pairs_row_compressed():
    start, columns, counts = transition_counts(SESSIONS, n_items=4)
    assert start.tolist() == [0, 0, 1, 3, 5, 6]  # code 0 (padding) has no row entries
    # code 1 -> item 1 twice; code 2 -> items 2, 3; code 3 -> items 1, 2; code 4 -> item 0
    assert columns.tolist() == [1, 2, 3, 1, 2, 0]
    assert counts.tolist() == [2, 1, 1, 1, 1, 1]


def test_the_sparse_term_matches_a_dense_reference():
    transitions = SparseTransitions.from_sessions(SESSIONS, n_items=4, offset=0.5)
    with torch.no_grad():
        transitions.weight.copy_(torch.arange(1.0, 7.0))  # distinct weights, to see each one
    dense = torch.zeros(5, 4)
    start, columns, _ = transition_counts(SESSIONS, n_items=4)
    for code in range(5):
        for position in range(start[code], start[code + 1]):
            dense[code, columns[position]] = position + 1.0
    np.testing.assert_array_equal(transitions.dense().numpy(), dense.numpy())
    logits = torch.randn(6, 4)
    last = torch.tensor([3, 1, 4, 2, 2, 0])
    np.testing.assert_allclose(
        transitions.add_to(logits, last).detach().numpy(), (logits + dense[last]).numpy(), rtol=1e-6
    )


def test_the_weights_start_at_log_counts_and_get_gradients():
    transitions = SparseTransitions.from_sessions(SESSIONS, n_items=4, offset=1.0)
    np.testing.assert_allclose(
        transitions.weight.detach().numpy(), np.log([2, 1, 1, 1, 1, 1]) + 1.0, rtol=1e-6
    )
    logits = transitions.add_to(torch.zeros(2, 4), torch.tensor([2, 2]))
    torch.nn.functional.cross_entropy(logits, torch.tensor([3, 3])).backward()
    gradient = transitions.weight.grad.numpy()
    # Only code 2's pairs (positions 1, 2) are used: its target pair goes up, the other down.
    assert gradient[0] == gradient[3] == gradient[4] == gradient[5] == 0.0
    assert gradient[2] < 0 < gradient[1]


def item(number: int) -> str:
    return f"s{number % 30:02d}"


# The next item is always the last one + 7: a first-order pattern the transition term holds.
TRAIN = [[item(start + 7 * step) for step in range(5)] for start in range(30) for _ in range(8)]
SMALL = {"epochs": 3, "batch_size": 16, "embedding_size": 8, "hidden_size": 16}


@pytest.mark.parametrize(
    "settings",
    [{}, {"session_term": False}, {"encoder": "sum"}],
    ids=["gru", "transition-only", "sum-encoder"],
)
def test_learns_a_deterministic_transition(settings):
    model = TransitionGRURecommender(num_threads=1, **settings, **SMALL).fit(TRAIN)
    for start in range(30):
        assert model.rank([[item(start)]], k=1) == [[item(start + 7)]]
        assert model.rank([[item(start), item(start + 7)]], k=1) == [[item(start + 14)]]
    # Trained: the transition weights moved away from their log-count start.
    initial = SparseTransitions.from_sessions(
        [np.array([model.item_index()[sku] + 1 for sku in session]) for session in TRAIN],
        len(model.item_ids),
    )
    assert not torch.allclose(model.network.transitions.weight, initial.weight)


def test_only_the_observed_pairs_have_parameters():
    model = TransitionGRURecommender(num_threads=1, **SMALL).fit(TRAIN)
    # 30 items, one successor each in training (the last item of a session has none).
    assert model.network.transitions.weight.numel() == 30


def test_save_and_load_keep_the_transition_term(tmp_path):
    model = TransitionGRURecommender(num_threads=1, **SMALL).fit(TRAIN)
    loaded = load_recommender(model.save(tmp_path / "model"))
    assert type(loaded) is TransitionGRURecommender and loaded.name == "gru_transition"
    loaded.num_threads = 1  # not part of the model; two threads may round differently
    prefixes = [[item(3)], [item(3), item(10), item(17)], [], ["unknown"]]
    np.testing.assert_array_equal(loaded.score(prefixes), model.score(prefixes))
    assert loaded.network.transitions.weight.numel() == 30


def test_the_sum_encoder_learns_what_only_the_history_tells():
    # Two sessions kinds share their middle item m; what follows m depends on the first item.
    train = [["a", "m", "x"], ["b", "m", "y"]] * 200
    model = TransitionGRURecommender(
        num_threads=1, encoder="sum", epochs=8, batch_size=16, hidden_size=8, learning_rate=0.02
    ).fit(train)
    assert model.rank([["a", "m"]], k=1) == [["x"]]
    assert model.rank([["b", "m"]], k=1) == [["y"]]


def test_the_serving_code_loads_and_answers_with_it(tmp_path):
    from recs_platform.serving.inference import Instance, load_model, predict

    model = TransitionGRURecommender(num_threads=1, **SMALL).fit(TRAIN)
    served = load_model(model.save(tmp_path / "model"))
    assert isinstance(served.recommender, TransitionGRURecommender)
    served.recommender.num_threads = 1
    response = predict(served, [Instance((item(3), item(10)), 5), Instance(("unknown",), 3)])
    first, second = response["predictions"]
    assert first["items"] == model.rank([[item(3), item(10)]], k=5)[0]
    assert first["items"][0] == item(17) and first["fallback"] is None
    assert second["fallback"] is not None and second["unknown"] == ["unknown"]
