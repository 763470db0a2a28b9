"""GRU4Rec, SASRec, the transition GRU and the latent-intent chains on tiny data: they learn,
repeat themselves, save, and fall back."""

import time

import numpy as np
import pytest

from recs_platform.evaluation.protocol import (
    next_item_targets,
    ranks_and_likelihoods,
    ranks_of_targets,
)
from recs_platform.models.base import load_recommender
from recs_platform.models.blend import BlendRecommender
from recs_platform.models.gru4rec import GRU4RecRecommender, TransitionGRURecommender
from recs_platform.models.latent_intent import LatentIntentRecommender
from recs_platform.models.popularity import PopularityRecommender
from recs_platform.models.sasrec import SASRecRecommender
from recs_platform.simulation import ShopConfig, simulate_sessions
from recs_platform.simulation.oracle import Oracle

N_ITEMS = 60
SMALL = {
    GRU4RecRecommender: {
        "epochs": 4,
        "batch_size": 32,
        "embedding_size": 16,
        "hidden_size": 32,
        "learning_rate": 0.01,
    },
    SASRecRecommender: {
        "epochs": 6,
        "batch_size": 32,
        "dimensions": 32,
        "blocks": 1,
        "heads": 2,
        "max_length": 10,
        "learning_rate": 0.01,
        "dropout": 0.1,
    },
}
SMALL[TransitionGRURecommender] = SMALL[GRU4RecRecommender]
SMALL[LatentIntentRecommender] = {"intents": 4, "epochs": 4, "batch_size": 32, "clusters": 3}
MODELS = list(SMALL)
# The transition term needs the full softmax.
SAMPLED_MODELS = [GRU4RecRecommender, SASRecRecommender]


def item(number: int) -> str:
    return f"p{number % N_ITEMS:02d}"


def pattern_sessions(count: int, seed: int) -> list[list[str]]:
    """Runs of consecutive items, p07 p08 p09 ...: the next item is always the last one + 1."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, N_ITEMS, size=count)
    lengths = rng.integers(3, 9, size=count)
    return [
        [item(start + step) for step in range(length)]
        for start, length in zip(starts, lengths, strict=True)
    ]


TRAIN = pattern_sessions(400, seed=1)
TEST = [(0, session) for session in pattern_sessions(60, seed=2)]


def small(model_class, **overrides):
    # One thread: these networks are too small to gain from two, and lose much on a busy CPU.
    return model_class(**{**SMALL[model_class], **overrides}, num_threads=1)


@pytest.fixture(scope="module", params=MODELS, ids=lambda cls: cls.__name__)
def fitted(request):
    return small(request.param).fit(TRAIN)


def hit_rate(model, targets, k):
    return float((ranks_of_targets(model, targets) <= k).mean())


def test_learns_the_pattern_far_beyond_popularity(fitted):
    targets = next_item_targets(TEST, fitted.item_ids)
    popularity = PopularityRecommender().fit(TRAIN)
    assert hit_rate(popularity, targets, 20) < 0.5
    assert hit_rate(fitted, targets, 20) > 0.95
    assert hit_rate(fitted, targets, 1) > 0.8
    assert fitted.rank([["p10", "p11"]], k=1) == [["p12"]]


@pytest.mark.parametrize("model_class", MODELS, ids=lambda cls: cls.__name__)
def test_beats_popularity_on_a_small_simulated_shop(model_class):
    config = ShopConfig(days=4, sessions_per_day=400, n_items=120, n_categories=6, seed=3)
    sessions = simulate_sessions(config)
    train = [session.skus for session in sessions if session.day < 3]
    test = [(session.day, session.skus) for session in sessions if session.day == 3]
    model = small(model_class, epochs=3, learning_rate=0.005).fit(train)
    targets = next_item_targets(test, model.item_ids)
    popularity = PopularityRecommender().fit(train)
    oracle = Oracle(config).ranker(3)
    assert hit_rate(popularity, targets, 20) < hit_rate(model, targets, 20)
    assert hit_rate(model, targets, 20) <= hit_rate(oracle, targets, 20) + 0.05


@pytest.mark.parametrize("model_class", MODELS, ids=lambda cls: cls.__name__)
def test_the_same_seed_gives_the_same_model(model_class):
    prefixes = [["p01"], ["p05", "p06", "p07"], ["p30", "p31"]]
    first = small(model_class, epochs=1, seed=5).fit(TRAIN[:100]).score(prefixes)
    second = small(model_class, epochs=1, seed=5).fit(TRAIN[:100]).score(prefixes)
    other = small(model_class, epochs=1, seed=6).fit(TRAIN[:100]).score(prefixes)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)


def test_the_likelihoods_read_from_the_logits_are_the_softmax_the_blend_weighs(fitted):
    targets = next_item_targets(TEST + [(0, ["unknown", item(3), item(4)])], fitted.item_ids)
    _, likelihoods = ranks_and_likelihoods(fitted, targets)
    blend = BlendRecommender([fitted]).target_likelihoods(targets.prefixes, targets.targets)[:, 0]
    np.testing.assert_allclose(likelihoods, blend, rtol=1e-5, atol=1e-9)
    assert likelihoods.mean() > 5 / N_ITEMS  # the pattern is learnt: these are no uniform shares


def test_saved_and_loaded_models_score_identically(fitted, tmp_path):
    loaded = load_recommender(fitted.save(tmp_path / "model"))
    assert type(loaded) is type(fitted) and loaded.name == fitted.name
    assert loaded.item_ids == fitted.item_ids
    assert loaded.hyperparameters == fitted.hyperparameters
    assert loaded.training_log == fitted.training_log
    prefixes = [[], ["p03"], ["p03", "p04", "p05"], ["unknown"], ["p40", "unknown"]]
    np.testing.assert_array_equal(loaded.score(prefixes), fitted.score(prefixes))


def test_prefixes_without_a_known_item_get_training_popularity(fitted):
    popularity = PopularityRecommender().fit(TRAIN)
    assert fitted.item_ids == popularity.item_ids
    scores = fitted.score([[], ["never-seen"], ["never-seen", "also-unknown"]])
    np.testing.assert_array_equal(scores, np.tile(popularity.counts, (3, 1)))
    assert fitted.rank([[]], k=5) == popularity.rank([[]], k=5)


def test_unknown_items_inside_a_prefix_are_ignored(fitted):
    np.testing.assert_array_equal(
        fitted.score([["p10", "unknown", "p11"], ["unknown", "p20"]]),
        fitted.score([["p10", "p11"], ["p20"]]),
    )


def test_batched_scores_match_one_prefix_at_a_time(fitted):
    prefixes = [["p02"], ["p10", "p11", "p12", "p13"], [], ["p50", "p51"]]
    batch = fitted.score(prefixes)
    for row, prefix in enumerate(prefixes):
        np.testing.assert_allclose(batch[row], fitted.score([prefix])[0], rtol=1e-5, atol=1e-5)


def test_rank_leaves_out_the_items_seen(fitted):
    prefix = ["p10", "p11", "p12"]
    ranked = fitted.rank([prefix], k=N_ITEMS)[0]
    assert len(ranked) == N_ITEMS - 3 and not set(prefix) & set(ranked)
    assert ranked[0] == "p13"
    assert fitted.rank([prefix], k=3, exclude_seen=False)[0][0] == "p13"


def test_training_log_has_every_epoch(fitted):
    epochs = SMALL[type(fitted)]["epochs"]
    assert [record["epoch"] for record in fitted.training_log] == list(range(1, epochs + 1))
    views = sum(len(session) for session in TRAIN)
    for record in fitted.training_log:
        assert record["events"] == views
        assert record["events_per_second"] > 0 and record["seconds"] > 0
        assert np.isfinite(record["loss"])
    assert fitted.training_log[-1]["loss"] < fitted.training_log[0]["loss"]


@pytest.mark.parametrize("model_class", MODELS, ids=lambda cls: cls.__name__)
def test_validation_keeps_the_best_epoch_and_patience_stops(model_class):
    figures = iter([0.5, 0.9, 0.1, 0.2, 0.3, 0.4])
    snapshots = []

    def validation(model):
        snapshots.append(model.score([["p05", "p06"]]))
        return next(figures)

    model = small(model_class, epochs=6).fit(TRAIN[:100], validation=validation, patience=2)
    assert [record["validation"] for record in model.training_log] == [0.5, 0.9, 0.1, 0.2]
    np.testing.assert_array_equal(model.score([["p05", "p06"]]), snapshots[1])
    assert (model.best_epoch(), model.best_validation()) == (2, 0.9)


@pytest.mark.parametrize("model_class", MODELS, ids=lambda cls: cls.__name__)
def test_a_passed_deadline_stops_inside_the_epoch_and_keeps_what_was_learnt(model_class):
    scored = []

    def validation(model):
        scored.append(model.score([["p05", "p06"]]))
        return 0.5

    # Past at once: the first batch trains, then the fit stops, scores it once and keeps it.
    model = small(model_class, epochs=5).fit(
        TRAIN, validation=validation, patience=2, deadline=time.perf_counter()
    )
    assert model.stopped_at_deadline
    (record,) = model.training_log
    assert record["stopped_at_deadline"] and 0 < record["epoch_share"] < 1
    assert record["events"] < sum(len(session) for session in TRAIN)
    assert record["validation"] == 0.5 and len(scored) == 1
    assert model.best_epoch() == 1
    np.testing.assert_array_equal(model.score([["p05", "p06"]]), scored[0])
    assert model.rank([["p05"]], k=3)[0]  # it serves like any fitted model


@pytest.mark.parametrize("model_class", MODELS, ids=lambda cls: cls.__name__)
def test_a_deadline_not_reached_changes_nothing(model_class):
    model = small(model_class, epochs=2).fit(TRAIN[:100], deadline=time.perf_counter() + 3600)
    twin = small(model_class, epochs=2).fit(TRAIN[:100])
    assert not model.stopped_at_deadline and len(model.training_log) == 2
    np.testing.assert_allclose(model.score([["p05", "p06"]]), twin.score([["p05", "p06"]]))


@pytest.mark.parametrize("model_class", MODELS, ids=lambda cls: cls.__name__)
def test_probabilities_are_the_softmax_of_the_scores(model_class):
    model = small(model_class, epochs=1).fit(TRAIN[:100])
    prefixes = [["p05", "p06"], ["never-seen"], []]
    probabilities = model.probabilities(prefixes)
    assert probabilities.sum(axis=1) == pytest.approx(np.ones(3))
    scores = model.score(prefixes[:1])[0]
    softmax = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
    assert probabilities[0] == pytest.approx(softmax, rel=1e-4, abs=1e-9)
    # A prefix the network cannot read gets the training popularity shares.
    assert probabilities[1] == pytest.approx(model.popularity / model.popularity.sum())
    assert model.best_epoch() == 1  # fitted without validation: the last epoch


@pytest.mark.parametrize("model_class", SAMPLED_MODELS, ids=lambda cls: cls.__name__)
def test_sampled_softmax_learns_the_pattern_too(model_class):
    model = small(model_class, loss="sampled", n_negatives=16).fit(TRAIN)
    targets = next_item_targets(TEST, model.item_ids)
    assert hit_rate(model, targets, 20) > 0.9


@pytest.mark.parametrize("bptt", [1, 3])
def test_gru_learns_the_pattern_whatever_the_backpropagation_window(bptt):
    model = small(GRU4RecRecommender, bptt=bptt).fit(TRAIN)
    targets = next_item_targets(TEST, model.item_ids)
    assert hit_rate(model, targets, 20) > 0.95
    assert len(model.training_log) == SMALL[GRU4RecRecommender]["epochs"]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="bptt must be at least 1"):
        GRU4RecRecommender(bptt=0)
    with pytest.raises(ValueError, match="unknown loss"):
        GRU4RecRecommender(loss="bpr")
    with pytest.raises(ValueError, match="unknown optimizer"):
        SASRecRecommender(optimizer="sgd", epochs=1).fit(TRAIN[:10])
    with pytest.raises(ValueError, match="no session with two items"):
        GRU4RecRecommender().fit([["a"], ["b"]])
    with pytest.raises(RuntimeError, match="call fit"):
        SASRecRecommender().score([["a"]])
    with pytest.raises(ValueError, match="transition_term needs the full cross-entropy"):
        TransitionGRURecommender(loss="sampled")
    with pytest.raises(ValueError, match="at least one of"):
        GRU4RecRecommender(session_term=False)


@pytest.mark.parametrize("model_class", [GRU4RecRecommender, SASRecRecommender])
def test_the_auto_loss_is_sampled_only_above_the_catalogue_size(model_class, monkeypatch):
    from recs_platform.models import torch_common

    prefixes = [session[:2] for session in TRAIN[:20]]

    def scores(loss):
        return small(model_class, epochs=1, loss=loss, n_negatives=16).fit(TRAIN).score(prefixes)

    n_items = len({sku for session in TRAIN for sku in session})
    assert torch_common.uses_sampled_loss("auto", torch_common.SAMPLED_LOSS_ABOVE_ITEMS + 1)
    assert not torch_common.uses_sampled_loss("auto", torch_common.SAMPLED_LOSS_ABOVE_ITEMS)
    assert scores("auto") == pytest.approx(scores("cross-entropy"))
    monkeypatch.setattr(torch_common, "SAMPLED_LOSS_ABOVE_ITEMS", n_items - 1)
    assert scores("auto") == pytest.approx(scores("sampled"))
    assert not np.allclose(scores("auto"), scores("cross-entropy"))
