"""The search: defaults first, Optuna within the budget, one nested MLflow run per trial."""

import mlflow
import pytest

from recs_platform.models.popularity import PopularityRecommender
from recs_platform.training import tracking
from recs_platform.training.candidates import Candidate, candidate
from recs_platform.training.search import SearchBudget, search, stopped_at_deadline

SESSIONS = [["a", "b"], ["b", "c"], ["c", "a"]]


class _Scored(PopularityRecommender):
    def __init__(self, name="scored", x=0.0):
        super().__init__(name)
        self.x = x


# The validation score peaks at x = 0.7; the default x = 0 scores lowest.
TOY = Candidate(
    "toy",
    lambda params: _Scored(**params),
    {"x": 0.0},
    lambda trial: {"x": trial.suggest_float("x", 0.0, 1.0)},
)


def _peak(recommender):
    return 1.0 - abs(recommender.x - 0.7)


def test_defaults_are_the_first_trial_and_the_search_improves_on_them():
    result = search(TOY, SESSIONS, _peak, SearchBudget(trials=12, timeout_s=60), seed=1)
    assert result.trials[0]["params"] == {} and result.trials[0]["value"] == pytest.approx(0.3)
    assert len(result.trials) == 12
    assert result.best_value == max(trial["value"] for trial in result.trials) > 0.9
    assert abs(result.best_params["x"] - 0.7) < 0.1
    again = search(TOY, SESSIONS, _peak, SearchBudget(trials=12, timeout_s=60), seed=1)
    assert again.best_params == result.best_params


def test_one_trial_or_nothing_to_tune_fits_the_defaults_once():
    assert search(TOY, SESSIONS, _peak, SearchBudget(trials=1)).best_params == {}
    result = search(candidate("popularity"), SESSIONS, lambda r: 0.5, SearchBudget(trials=5))
    assert len(result.trials) == 1 and result.best_params == {}


def test_a_hard_deadline_stops_a_torch_trial_at_the_search_timeout():
    # Far more epochs than any machine trains in half a second.
    gru = candidate("gru4rec", {"epochs": 10_000, "hidden_size": 16, "embedding_size": 16})
    sessions = [[f"p{(start + step) % 40}" for step in range(6)] for start in range(400)]
    scored = []

    def validation(model):
        scored.append(len(model.training_log))
        return float(len(scored))  # every epoch better: only the deadline stops it

    budget = SearchBudget(trials=1, timeout_s=0.5)
    result = search(gru, sessions, validation, budget, patience=2, hard_deadline=True)
    model = result.best_model
    # Inside an epoch (test_torch_models checks that record) or, on a loaded machine, between
    # two: either way the trial stops long before its epochs are done.
    assert stopped_at_deadline(model) and len(model.training_log) < 10_000
    # Scored after each epoch it trained, the cut one included; the refit trains as long.
    assert scored == list(range(len(model.training_log)))
    assert result.best_params["epochs"] == model.best_epoch()
    # Without it, the timeout only keeps Optuna from starting trials: every epoch trains.
    short = candidate("gru4rec", {"epochs": 2, "hidden_size": 16, "embedding_size": 16})
    whole = search(short, sessions, validation, SearchBudget(trials=1, timeout_s=1e-3)).best_model
    assert not stopped_at_deadline(whole) and len(whole.training_log) == 2
    assert not stopped_at_deadline(PopularityRecommender().fit(sessions))


def test_a_budget_must_make_sense():
    with pytest.raises(ValueError, match="search budget"):
        SearchBudget(trials=-1)
    with pytest.raises(ValueError, match="unknown candidate 'gpt'"):
        candidate("gpt")


def test_every_trial_is_a_nested_mlflow_run(tmp_path):
    uri, artifacts = tracking.local_tracking(tmp_path)
    experiment = tracking.use_experiment(uri, "search-test", artifacts)
    with mlflow.start_run() as parent:
        search(TOY, SESSIONS, _peak, SearchBudget(trials=3, timeout_s=60))
    runs = mlflow.search_runs(
        [experiment], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(runs) == 3
    assert set(runs["tags.candidate"]) == {"toy"}
    assert runs["metrics.validation_mrr_20"].notna().all()


def test_overridden_parameters_are_fixed_during_the_search():
    pinned = TOY.with_overrides({"x": 0.2})
    result = search(pinned, SESSIONS, _peak, SearchBudget(trials=5, timeout_s=60), seed=1)
    assert [trial["params"] for trial in result.trials] == [{}] * 5
    assert result.best_value == pytest.approx(0.5)
    assert candidate("gru4rec", {"epochs": 1}).make().epochs == 1


def test_the_transition_gru_is_a_default_candidate():
    from recs_platform.models.gru4rec import TransitionGRURecommender
    from recs_platform.training.candidates import CANDIDATE_NAMES

    assert "gru_transition" in CANDIDATE_NAMES
    model = candidate("gru_transition", {"epochs": 1}).make()
    assert isinstance(model, TransitionGRURecommender)
    assert model.transition_term and model.epochs == 1 and model.name == "gru_transition"


def test_the_latent_intent_chains_are_a_default_candidate():
    from recs_platform.models.latent_intent import LatentIntentRecommender
    from recs_platform.training.candidates import CANDIDATE_NAMES

    assert "latent_intent" in CANDIDATE_NAMES
    model = candidate("latent_intent", {"epochs": 1, "clusters": 5}).make()
    assert isinstance(model, LatentIntentRecommender)
    assert model.epochs == 1 and model.clusters == 5 and model.name == "latent_intent"


def test_torch_trials_stop_early_and_hand_the_epoch_count_to_the_refit():
    from recs_platform.models.gru4rec import GRU4RecRecommender

    # The validation figure rises for two epochs, then falls: patience 2 stops after epoch 4.
    figures = iter([0.1, 0.3, 0.2, 0.25, 0.9, 0.9])
    gru = candidate(
        "gru4rec", {"epochs": 6, "hidden_size": 8, "embedding_size": 8, "batch_size": 4}
    )
    sessions = [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]] * 4
    result = search(gru, sessions, lambda model: next(figures), SearchBudget(trials=1), patience=2)
    assert result.best_params == {"epochs": 2} and result.best_value == 0.3
    assert isinstance(result.best_model, GRU4RecRecommender)
    assert len(result.best_model.training_log) == 4
    assert gru.make(result.best_params).epochs == 2
    # Without patience every epoch is trained and nothing is handed on.
    figures = iter([0.5] * 7)
    fixed = search(gru, sessions, lambda model: next(figures), SearchBudget(trials=1))
    assert fixed.best_params == {} and len(fixed.best_model.training_log) == 6


def test_the_blend_is_a_default_candidate_built_by_the_pipeline():
    from recs_platform.training.candidates import BLEND, CANDIDATE_NAMES

    assert CANDIDATE_NAMES[-1] == BLEND
    with pytest.raises(ValueError, match="built by the training pipeline"):
        candidate(BLEND)
