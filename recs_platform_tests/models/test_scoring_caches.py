"""What scoring keeps between calls (the output layer's transposed copy, the latent-intent chains'
catalogue-wide terms) gives the scores computed afresh, and follows every change of the weights."""

import numpy as np
import pytest
import torch

from recs_platform.models.gru4rec import GRU4RecRecommender, TransitionGRURecommender
from recs_platform.models.latent_intent import LatentIntentNetwork, LatentIntentRecommender
from recs_platform.models.sasrec import SASRecRecommender
from recs_platform.models.torch_common import ScoringLayout
from recs_platform_tests.models.test_torch_models import TRAIN, small

PREFIXES = [["p01"], ["p05", "p06", "p07"], ["p30", "p31", "p50"], ["p02", "p09"]]
LAYER_MODELS = [GRU4RecRecommender, TransitionGRURecommender, SASRecRecommender]


def fresh_scores(model, monkeypatch) -> np.ndarray:
    """The scores with nothing kept: the output layer read as it is, every term recomputed."""
    with monkeypatch.context() as patched:
        patched.setattr(ScoringLayout, "transposed", lambda self, weights: weights.detach().T)
        patched.setattr(
            LatentIntentNetwork,
            "_catalogue_terms",
            lambda self: (self.theta(), self._chain_terms(self.theta()), None),
        )
        return model.score(PREFIXES)


def output_weights(model) -> torch.Tensor:
    if isinstance(model, SASRecRecommender):
        return model.network.items.weight
    return model.network.output


@pytest.mark.parametrize("model_class", LAYER_MODELS, ids=lambda cls: cls.__name__)
def test_the_output_layers_copy_scores_as_the_layer_and_follows_its_changes(
    model_class, monkeypatch
):
    model = small(model_class, epochs=1).fit(TRAIN[:100])
    np.testing.assert_allclose(model.score(PREFIXES), fresh_scores(model, monkeypatch), rtol=1e-5)
    with torch.no_grad():
        output_weights(model).mul_(-0.5)  # what an optimizer step does: in place
    np.testing.assert_allclose(model.score(PREFIXES), fresh_scores(model, monkeypatch), rtol=1e-5)
    other = small(model_class, epochs=1, seed=9).fit(TRAIN[:100])
    model.network.load_state_dict(other.network.state_dict())
    np.testing.assert_allclose(model.score(PREFIXES), other.score(PREFIXES), rtol=1e-5)


@pytest.mark.parametrize("members", [1, 2])
def test_the_latent_intent_terms_kept_score_as_computed_afresh_and_follow_changes(
    members, monkeypatch
):
    model = small(LatentIntentRecommender, epochs=1, members=members).fit(TRAIN[:100])
    np.testing.assert_array_equal(model.score(PREFIXES), fresh_scores(model, monkeypatch))
    network = model.network if members == 1 else model.network.members[0]
    with torch.no_grad():
        network.intent_factors.mul_(3.0)
        network.prior.add_(torch.arange(len(network.prior), dtype=torch.float32))
    np.testing.assert_array_equal(model.score(PREFIXES), fresh_scores(model, monkeypatch))


def test_training_never_reads_what_scoring_kept():
    model = small(LatentIntentRecommender, epochs=1).fit(TRAIN[:100])
    model.score(PREFIXES)
    network = model.network
    padded = torch.tensor([[1, 2, 3]])
    loss = -network.session_log_likelihoods(padded, torch.tensor([3])).sum()
    loss.backward()
    assert network.intent_factors.grad is not None and network.first_bias.grad is not None
