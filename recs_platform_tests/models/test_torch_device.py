"""The torch models' device and precision: CUDA with mixed precision when present, float32 on the
CPU, a runtime choice never saved with the model, and a model saved on a GPU loading on a CPU."""

import json

import numpy as np
import pytest
import torch

from recs_platform.evaluation.protocol import next_item_targets
from recs_platform.models.base import load_recommender
from recs_platform.models.gru4rec import GRU4RecRecommender
from recs_platform.models.latent_intent import LatentIntentRecommender
from recs_platform.models.sasrec import SASRecRecommender
from recs_platform.models.torch_common import (
    HYPERPARAMETERS_FILE,
    Precision,
    autocast_dtype,
)
from recs_platform_tests.models.test_torch_models import MODELS, TEST, TRAIN, hit_rate, small

CUDA = torch.cuda.is_available()
NEEDS_CUDA = pytest.mark.skipif(
    not CUDA, reason="no CUDA device here: the CPU side of this behaviour is tested beside it"
)
MIXED_PRECISION_MODELS = [cls for cls in MODELS if cls.supports_mixed_precision]
PREFIXES = [[], ["p01"], ["p05", "p06", "p07"], ["p30", "p31", "p50"], ["unknown", "p02"]]


def test_the_mixed_precision_models_are_the_networks_with_a_softmax_over_the_catalogue():
    assert {cls.__name__ for cls in MIXED_PRECISION_MODELS} == {
        "GRU4RecRecommender",
        "SASRecRecommender",
        "TransitionGRURecommender",
    }


@pytest.mark.parametrize("model_class", MODELS, ids=lambda cls: cls.__name__)
def test_mixed_precision_is_how_a_model_runs_not_what_it_is(model_class, tmp_path):
    model = small(model_class, epochs=1, mixed_precision=False).fit(TRAIN[:100])
    assert "mixed_precision" not in model.hyperparameters
    folder = model.save(tmp_path / "model")
    assert "mixed_precision" not in json.loads((folder / HYPERPARAMETERS_FILE).read_text())
    assert load_recommender(folder).mixed_precision is None


@pytest.mark.parametrize("model_class", MODELS, ids=lambda cls: cls.__name__)
def test_the_cpu_trains_in_float32_whatever_the_setting_allows(model_class):
    auto = small(model_class, epochs=1, seed=4, device="cpu")
    off = small(model_class, epochs=1, seed=4, device="cpu", mixed_precision=False)
    assert auto.precision.dtype is None and off.precision.dtype is None
    np.testing.assert_array_equal(
        auto.fit(TRAIN[:100]).score(PREFIXES), off.fit(TRAIN[:100]).score(PREFIXES)
    )
    with pytest.raises(ValueError, match="CUDA only|float32 only"):
        small(model_class, device="cpu", mixed_precision=True)


def test_the_latent_intent_chains_refuse_mixed_precision_on_any_device():
    with pytest.raises(ValueError, match="float32 only"):
        LatentIntentRecommender(device="cuda", mixed_precision=True)
    assert LatentIntentRecommender(device="cuda").precision.dtype is None


@pytest.mark.filterwarnings("ignore:.*CUDA is not available")
@pytest.mark.parametrize(("bf16", "dtype"), [(True, torch.bfloat16), (False, torch.float16)])
def test_cuda_autocasts_to_bfloat16_where_the_gpu_has_it_else_float16(monkeypatch, bf16, dtype):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)
    cuda = torch.device("cuda")
    assert autocast_dtype(cuda, None) is dtype
    assert autocast_dtype(cuda, True) is dtype
    assert autocast_dtype(cuda, False) is None
    assert autocast_dtype(cuda, None, supported=False) is None
    assert autocast_dtype(torch.device("cpu"), None) is None
    # Only float16 needs the gradient scaler (its range flushes small gradients to zero).
    assert (Precision(cuda, dtype).scaler is not None) is (dtype == torch.float16)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("model_class", MIXED_PRECISION_MODELS, ids=lambda cls: cls.__name__)
def test_the_mixed_precision_training_step_learns(model_class, dtype):
    """The autocast path of the training loop (forward under autocast, float32 loss, float16's
    gradient scaler), run with the CPU's autocast where no GPU is at hand."""
    model = small(model_class)
    model.precision = Precision(torch.device("cpu"), dtype)
    model.fit(TRAIN)
    assert model.precision.dtype is dtype
    targets = next_item_targets(TEST, model.item_ids)
    assert hit_rate(model, targets, 20) > 0.95
    assert model.score(PREFIXES).dtype == np.float64


@pytest.mark.parametrize("model_class", [GRU4RecRecommender, SASRecRecommender])
def test_the_sampled_softmax_learns_under_autocast_too(model_class):
    model = small(model_class, loss="sampled", n_negatives=20)
    model.precision = Precision(torch.device("cpu"), torch.bfloat16)
    targets = next_item_targets(TEST, model.fit(TRAIN).item_ids)
    assert hit_rate(model, targets, 20) > 0.95


def test_a_model_saved_on_a_gpu_loads_on_a_machine_without_one(monkeypatch, tmp_path):
    model = small(GRU4RecRecommender, epochs=1).fit(TRAIN[:100])  # on CUDA where there is one
    if CUDA:
        expected = model.score(PREFIXES)
        folder = model.save(tmp_path / "model")
    else:
        # What torch writes on a GPU machine: every tensor's storage tagged with its CUDA device.
        expected = model.score(PREFIXES)
        monkeypatch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        folder = model.save(tmp_path / "model")
        monkeypatch.undo()
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(folder / "network.pt", weights_only=True)
    loaded = load_recommender(folder)
    assert loaded.device == torch.device("cuda" if CUDA else "cpu")
    on_cpu = type(model)._load_state(folder, device="cpu")
    assert {tensor.device.type for tensor in on_cpu.network.state_dict().values()} == {"cpu"}
    np.testing.assert_allclose(on_cpu.score(PREFIXES), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(loaded.score(PREFIXES), expected, rtol=1e-4, atol=1e-4)


@NEEDS_CUDA
@pytest.mark.parametrize("model_class", MODELS, ids=lambda cls: cls.__name__)
def test_on_cuda_the_models_train_and_score_on_the_gpu_in_mixed_precision(model_class):
    model = small(model_class)
    assert model.device.type == "cuda"
    expected_dtype = None
    if model_class.supports_mixed_precision:
        expected_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert model.precision.dtype is expected_dtype
    model.fit(TRAIN)
    assert {p.device.type for p in model.network.parameters()} == {"cuda"}
    targets = next_item_targets(TEST, model.item_ids)
    assert hit_rate(model, targets, 20) > 0.95
    scores = model.score(PREFIXES)
    assert scores.dtype == np.float64 and np.isfinite(scores).all()
    np.testing.assert_allclose(
        model.probabilities(PREFIXES).sum(axis=1), np.ones(len(PREFIXES)), rtol=1e-9
    )
