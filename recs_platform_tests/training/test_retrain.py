"""Which aliases a retrain moves: `champion` to a new version that passes its checklist and beats
the champion, `challenger` to one that passes without beating it, none for one that fails.

Training itself is replaced by a stand-in that says whether the checklist passed and whether the
new model beats the champion (training/pipeline.py is tested on its own); the MLflow run, the
registration and the aliases are real."""

from __future__ import annotations

from types import SimpleNamespace

import mlflow
import pytest

from recs_platform.models.markov import MarkovRecommender
from recs_platform.training import retrain as retrain_module
from recs_platform.training import tracking

SESSIONS = [["a", "b", "c"], ["b", "c"], ["c", "d"], ["a", "b"]]


@pytest.fixture
def local_store(tmp_path):
    uri, artifacts = tracking.local_tracking(tmp_path)
    tracking.use_experiment(uri, tracking.EXPERIMENT, artifacts)


def retrain(monkeypatch: pytest.MonkeyPatch, *, passed: bool, beats: bool):
    outcome = SimpleNamespace(
        checklist=SimpleNamespace(passed=passed),
        chosen=SimpleNamespace(recommender=MarkovRecommender().fit(SESSIONS)),
    )
    comparison = SimpleNamespace(champion_mrr=0.2, candidate_mrr=0.3, beats_champion=beats)
    monkeypatch.setattr(retrain_module, "train_and_choose", lambda *args: outcome)
    monkeypatch.setattr(retrain_module, "log_outcome", lambda *args: None)
    monkeypatch.setattr(retrain_module, "compare_with_champion", lambda *args: comparison)
    splits = SimpleNamespace(test=[(None, ["a", "b"])])
    return retrain_module.retrain(splits, plan=None)


def test_the_retrain_names_a_champion_or_a_challenger(local_store, monkeypatch) -> None:
    first = retrain(monkeypatch, passed=True, beats=True)
    assert (first.promoted, first.challenger) == (True, False)
    assert tracking.serving_versions() == tracking.ServingVersions("1", None)

    second = retrain(monkeypatch, passed=True, beats=False)
    assert (second.promoted, second.challenger) == (False, True)
    assert tracking.serving_versions() == tracking.ServingVersions("1", "2")
    run = mlflow.get_run(second.mlflow_run_id)
    assert run.data.tags["became_challenger"] == "true"
    assert run.data.tags["promoted_to_champion"] == "false"

    failed = retrain(monkeypatch, passed=False, beats=True)  # a failed checklist moves nothing
    assert (failed.promoted, failed.challenger) == (False, False)
    assert tracking.serving_versions() == tracking.ServingVersions("1", "2")

    newer = retrain(monkeypatch, passed=True, beats=False)  # the latest that passed
    assert tracking.serving_versions() == tracking.ServingVersions("1", newer.logged.version)

    promoted = retrain(monkeypatch, passed=True, beats=True)  # a new champion ends the test
    assert promoted.champion_version == promoted.logged.version == "5"
    assert tracking.serving_versions() == tracking.ServingVersions("5", None)
