"""The latent-intent mixture of Markov chains: an exact likelihood, the history it reads, its
item clusters, and the sparse pair look-up it needs."""

import json

import numpy as np
import pytest
import torch

from recs_platform.models.base import load_recommender
from recs_platform.models.latent_intent import (
    LatentIntentNetwork,
    LatentIntentRecommender,
    item_clusters,
)
from recs_platform.models.torch_common import HYPERPARAMETERS_FILE, pad_right
from recs_platform.models.transitions import SparseTransitions, transition_counts

N_ITEMS = 30


def random_sessions(count: int, seed: int) -> list[np.ndarray]:
    """Sessions of distinct item codes, as the simulated shops have them."""
    rng = np.random.default_rng(seed)
    codes = np.arange(1, N_ITEMS + 1)
    return [rng.choice(codes, size=rng.integers(2, 7), replace=False) for _ in range(count)]


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    sessions = random_sessions(200, seed=0)
    network = LatentIntentNetwork(N_ITEMS, 4, None, 0.5, sessions, clusters=3)
    with torch.no_grad():  # move everything off its initial values, T included
        for parameter in network.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    return network


def log_likelihood(network, codes) -> float:
    padded, lengths = pad_right([np.asarray(codes)])
    with torch.no_grad():
        return torch.logsumexp(network.session_log_joint(padded, lengths), dim=1).item()


@pytest.mark.parametrize("prefix", [[3], [3, 17, 5], [8, 2, 30, 11, 4]])
def test_the_next_item_probabilities_over_unseen_items_sum_to_one(network, prefix):
    prefix_likelihood = log_likelihood(network, prefix)
    unseen = [code for code in range(1, N_ITEMS + 1) if code not in prefix]
    log_next = np.array([log_likelihood(network, [*prefix, code]) for code in unseen])
    log_next -= prefix_likelihood
    assert np.exp(log_next).sum() == pytest.approx(1.0, abs=1e-4)
    # The scores served are these log-probabilities, up to one constant per prefix.
    padded, lengths = pad_right([np.array(prefix)])
    with torch.no_grad():
        scores = network.next_scores(padded, lengths)[0].numpy()
    difference = scores[np.array(unseen) - 1] - log_next
    assert np.ptp(difference) < 1e-4


@pytest.mark.parametrize("pseudo_count", [2.0, 50.0])
def test_the_initial_chain_is_markov_with_dirichlet_back_off(pseudo_count):
    # Item 1 is followed 40 times, item 3 only twice: 1 trusts its own counts, 3 its back-off.
    sessions = [np.array(s) for s in [[1, 2]] * 30 + [[1, 4, 2]] * 10 + [[3, 4, 1]] * 2]
    network = LatentIntentNetwork(
        4, 1, None, 0.0, sessions, clusters=1, pseudo_count=pseudo_count
    )  # one intent, theta = 0, one cluster: the chain is the smoothed Markov chain alone
    counts = np.zeros((5, 5))
    for session in sessions:
        for a, b in zip(session[:-1], session[1:], strict=True):
            counts[a, b] += 1
    views = np.bincount(np.concatenate(sessions), minlength=5)[1:]
    popularity = (views + 1) / (views.sum() + 4)
    # The back-off: every transition into j, plus 20 popularity-shaped pseudo-counts.
    back_off = (counts[:, 1:].sum(axis=0) + 20 * popularity) / (counts.sum() + 20)
    for last in (1, 3):
        out = counts[last, 1:].sum()
        weight = pseudo_count / (out + pseudo_count)
        expected = (1 - weight) * counts[last, 1:] / out + weight * back_off
        unseen = np.arange(4) != last - 1
        expected = expected[unseen] / expected[unseen].sum()
        padded, lengths = pad_right([np.array([last])])
        with torch.no_grad():
            scores = network.next_scores(padded, lengths)[0].numpy()
        served = np.exp(scores[unseen]) / np.exp(scores[unseen]).sum()
        np.testing.assert_allclose(served, expected, rtol=1e-5)


def test_the_pair_term_keeps_each_items_most_frequent_successors():
    # Item 1 is followed by 2 (5 times), 3 (3 times), 4 (twice) and 5 (once).
    sessions = [np.array(s) for s in [[1, 2]] * 5 + [[1, 3]] * 3 + [[1, 4]] * 2 + [[1, 5], [2, 5]]]
    capped = LatentIntentNetwork(5, 1, None, 0.0, sessions, clusters=1, max_successors=2)
    whole = LatentIntentNetwork(5, 1, None, 0.0, sessions, clusters=1)
    kept = capped.transitions.dense().detach().numpy()
    every = whole.transitions.dense().detach().numpy()
    # By code: after item 1 only 2 and 3 keep their pair weights (columns 1 and 2), unchanged;
    # item 2's one successor stays.
    assert np.flatnonzero(kept[1]).tolist() == [1, 2]
    np.testing.assert_allclose(kept[1, [1, 2]], every[1, [1, 2]])
    np.testing.assert_allclose(kept[2], every[2])
    assert np.count_nonzero(every[1]) == 4


def test_without_exclusion_the_seen_items_keep_their_share(network):
    network.exclude_seen = False
    try:
        prefix = [3, 17, 5]
        every = [log_likelihood(network, [*prefix, code]) for code in range(1, N_ITEMS + 1)]
        total = np.exp(np.array(every) - log_likelihood(network, prefix)).sum()
    finally:
        network.exclude_seen = True
    assert total == pytest.approx(1.0, abs=1e-4)


def test_clusters_are_the_groups_of_items_that_follow_each_other():
    # Items 0-9 only ever follow each other, as do items 10-19: two categories.
    rng = np.random.default_rng(1)
    sessions = [rng.choice(np.arange(1, 11) + 10 * (index % 2), size=4) for index in range(300)]
    start, columns, counts = transition_counts(sessions, 20)
    sources = np.repeat(np.arange(21), np.diff(start)) - 1
    clusters = item_clusters(20, sources, columns, counts, clusters=2)
    assert len(set(clusters[:10])) == 1 and len(set(clusters[10:])) == 1
    assert clusters[0] != clusters[10]
    assert item_clusters(20, sources, columns, counts, clusters=1).tolist() == [0] * 20


def test_pair_weights_read_the_observed_pairs_and_zero_elsewhere():
    sessions = [np.array(codes) for codes in ([1, 2, 3], [1, 2], [2, 4, 1], [3, 3, 2], [4])]
    transitions = SparseTransitions.from_sessions(sessions, n_items=4)
    with torch.no_grad():
        transitions.weight.copy_(torch.arange(1.0, 7.0))
    dense = transitions.dense()
    sources = torch.tensor([1, 1, 2, 2, 3, 4, 4, 0, 3])
    columns = torch.tensor([1, 0, 2, 3, 1, 0, 3, 2, 3])
    np.testing.assert_array_equal(
        transitions.pair_weights(sources, columns).detach().numpy(),
        dense[sources, columns].numpy(),
    )


SMALL = {"intents": 4, "epochs": 10, "batch_size": 32, "learning_rate": 0.05}


def test_the_intent_carries_what_only_the_history_tells():
    # Two kinds of session share their middle item m; what follows m depends on the first.
    train = [["a", "m", "x"], ["b", "m", "y"]] * 100
    model = LatentIntentRecommender(num_threads=1, **SMALL).fit(train)
    assert model.rank([["a", "m"]], k=1) == [["x"]]
    assert model.rank([["b", "m"]], k=1) == [["y"]]
    # Not by a hair: the first item moves the odds of x against y many times over.
    after_a, after_b = model.score([["a", "m"], ["b", "m"]])
    index = model.item_index()
    assert after_a[index["x"]] - after_a[index["y"]] > 2
    assert after_b[index["y"]] - after_b[index["x"]] > 2


def test_save_and_load_keep_the_clusters_and_the_chains(tmp_path):
    train = [[f"s{(start + 3 * step) % 20:02d}" for step in range(4)] for start in range(20)] * 5
    model = LatentIntentRecommender(num_threads=1, clusters=3, **SMALL).fit(train)
    loaded = load_recommender(model.save(tmp_path / "model"))
    assert type(loaded) is LatentIntentRecommender and loaded.name == "latent_intent"
    loaded.num_threads = 1
    prefixes = [["s03"], ["s03", "s06", "s09"], [], ["unknown"]]
    np.testing.assert_array_equal(loaded.score(prefixes), model.score(prefixes))
    assert torch.equal(loaded.network.cluster_of, model.network.cluster_of)
    assert model.rank([["s03", "s06"]], k=1) == [["s09"]]


def test_a_model_saved_before_the_pseudo_count_loads_as_trained(tmp_path):
    train = [[f"s{(start + 3 * step) % 20:02d}" for step in range(4)] for start in range(20)] * 5
    model = LatentIntentRecommender(num_threads=1, clusters=3, pseudo_count=None, **SMALL).fit(
        train
    )
    folder = model.save(tmp_path / "model")
    saved = json.loads((folder / HYPERPARAMETERS_FILE).read_text())
    del saved["pseudo_count"], saved["max_successors"]  # what an earlier version wrote
    (folder / HYPERPARAMETERS_FILE).write_text(json.dumps(saved))
    loaded = load_recommender(folder)
    assert loaded.hyperparameters["pseudo_count"] is None
    assert loaded.hyperparameters["max_successors"] is None
    assert loaded.hyperparameters["smoothing"] == model.hyperparameters["smoothing"]
    loaded.num_threads = 1
    np.testing.assert_array_equal(loaded.score([["s03"]]), model.score([["s03"]]))


def test_members_average_their_next_item_distributions(tmp_path):
    train = [[f"s{(start + 3 * step) % 20:02d}" for step in range(4)] for start in range(20)] * 5
    model = LatentIntentRecommender(num_threads=1, clusters=3, members=2, **SMALL).fit(train)
    first, second = model.network.members
    # Each member starts from its own seed, so they are two different models ...
    assert not torch.equal(first.theta(), second.theta())
    prefixes = [["s03"], ["s03", "s06", "s09"]]
    encoded = [np.array([model.item_index()[sku] + 1 for sku in prefix]) for prefix in prefixes]
    padded, lengths = pad_right(encoded)
    with torch.no_grad():
        one, other = first.next_scores(padded, lengths), second.next_scores(padded, lengths)
    # ... and the ensemble's probabilities are the average of theirs.
    average = np.log((np.exp(one.numpy()) + np.exp(other.numpy())) / 2)
    np.testing.assert_allclose(model.score(prefixes), average, rtol=1e-5, atol=1e-5)
    assert model.rank([["s03", "s06"]], k=1) == [["s09"]]
    loaded = load_recommender(model.save(tmp_path / "model"))
    loaded.num_threads = 1
    np.testing.assert_array_equal(loaded.score(prefixes), model.score(prefixes))
    # The reported loss is per member, on the scale of a single network's.
    single = LatentIntentRecommender(num_threads=1, clusters=3, **SMALL).fit(train)
    assert model.training_log[-1]["loss"] == pytest.approx(single.training_log[-1]["loss"], rel=0.2)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="intents must be at least 1"):
        LatentIntentRecommender(intents=0)
    with pytest.raises(ValueError, match="intent_rank must be at least 1"):
        LatentIntentRecommender(intent_rank=0)
    with pytest.raises(ValueError, match="smoothing must be between 0 and 1"):
        LatentIntentRecommender(smoothing=1.0)
    with pytest.raises(ValueError, match="pseudo_count must be positive or None"):
        LatentIntentRecommender(pseudo_count=0.0)
    with pytest.raises(ValueError, match="clusters must be at least 1"):
        LatentIntentRecommender(clusters=0)
    with pytest.raises(ValueError, match="members must be at least 1"):
        LatentIntentRecommender(members=0)
    with pytest.raises(ValueError, match="max_successors must be at least 1 or None"):
        LatentIntentRecommender(max_successors=0)
    with pytest.raises(ValueError, match="clusters must be at most the 3 items"):
        item_clusters(3, np.array([0, 1]), np.array([1, 2]), np.array([1.0, 1.0]), clusters=5)
    # The model itself caps its clusters at the catalogue's size.
    tiny = LatentIntentRecommender(clusters=5, epochs=1, num_threads=1).fit([["a", "b", "c"]] * 3)
    assert tiny.network.background.shape == (3, 3)
