"""MLflow: a recommender logged as a pyfunc answers the endpoint's contract; the champion alias."""

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from recs_platform.models.markov import MarkovRecommender
from recs_platform.models.popularity import PopularityRecommender
from recs_platform.serving.inference import load_model
from recs_platform.training import tracking

SESSIONS = [["a", "b", "c"], ["b", "c"], ["c", "d"], ["a", "b"]]


@pytest.fixture
def local_store(tmp_path):
    uri, artifacts = tracking.local_tracking(tmp_path)
    tracking.use_experiment(uri, tracking.EXPERIMENT, artifacts)
    return tmp_path


def test_a_logged_model_predicts_like_the_recommender_and_is_registered(local_store):
    markov = MarkovRecommender().fit(SESSIONS)
    with mlflow.start_run():
        logged = tracking.log_and_register(markov, [["a"], ["b", "c"], ["zz"]])
    assert logged.version == "1"
    assert (local_store / "mlflow" / "mlflow.db").is_file()

    pyfunc = mlflow.pyfunc.load_model(logged.model_uri)
    predictions = pyfunc.predict(
        pd.DataFrame({"session": [["a"], ["c"], ["a", "b"]], "k": [2, 1, 5]})
    )
    assert predictions["items"].tolist() == [["b", "c"], ["d"], ["c", "d"]]
    # Scores are the recommender's own, best first.
    scores = markov.score([["a"]])[0]
    index = markov.item_index()
    assert predictions["scores"][0] == [scores[index["b"]], scores[index["c"]]]
    # Each answer names the registered version that made it, as the endpoint's do.
    assert predictions["model"][0] == {
        "name": tracking.REGISTERED_MODEL,
        "version": "1",
        "recommender": "markov",
        "items": 4,
        "model_uri": logged.model_uri,
    }
    # `k` may be left out (the contract's default, 10); seen items never come back; a session
    # of unknown SKUs gets the popularity ranking and the SKUs back.
    records = pyfunc.predict([{"session": ["a"]}, {"session": ["zz"], "k": 1}]).to_dict("records")
    assert records[0]["items"] == ["b", "c", "d"] and records[0]["fallback"] is None
    (popular, _), *_ = markov.top_k([()], 1, exclude_seen=False)
    assert records[1]["items"] == popular and records[1]["unknown"] == ["zz"]
    assert records[1]["fallback"] == "popularity"

    loaded = tracking.load_registered(logged.model_uri)
    assert loaded.rank([["b"]], k=3) == markov.rank([["b"]], k=3)


def test_a_request_the_contract_refuses_is_refused_by_the_pyfunc(local_store):
    with mlflow.start_run():
        logged = tracking.log_and_register(MarkovRecommender().fit(SESSIONS), [["a"]])
    pyfunc = mlflow.pyfunc.load_model(logged.model_uri)
    with pytest.raises(MlflowException, match=r"instances\[1\].k must be at least 1"):
        pyfunc.predict([{"session": ["a"]}, {"session": ["a"], "k": 0}])


def test_a_version_whose_files_fail_to_log_is_deleted(local_store, monkeypatch):
    def failing_log_model(**kwargs):
        raise OSError("artifact store unreachable")

    monkeypatch.setattr(mlflow.pyfunc, "log_model", failing_log_model)
    with mlflow.start_run(), pytest.raises(OSError, match="unreachable"):
        tracking.log_and_register(MarkovRecommender().fit(SESSIONS), [["a"]])
    found = MlflowClient().search_model_versions(f"name='{tracking.REGISTERED_MODEL}'")
    assert found == []


def test_a_version_logged_before_the_package_still_answers(local_store, tmp_path):
    """Versions logged with the bare recommender as their artifact (before the pyfunc carried a
    packaged folder) load and answer; served from the registry they take its version."""
    markov = MarkovRecommender().fit(SESSIONS)
    with mlflow.start_run():
        mlflow.pyfunc.log_model(
            name="model",
            python_model=tracking.SessionRecommenderModel(),
            artifacts={"recommender": str(markov.save(tmp_path / "recommender"))},
            registered_model_name=tracking.REGISTERED_MODEL,
        )
    (answer,) = (
        mlflow.pyfunc.load_model("models:/session-recommender/1")
        .predict(pd.DataFrame({"session": [["a"]], "k": [2]}))
        .to_dict("records")
    )
    assert answer["items"] == ["b", "c"] and answer["model"]["version"] == "unregistered"
    served = load_model("models:/session-recommender/1")
    assert served.describe()["version"] == "1"
    assert served.describe()["model_uri"] == "models:/session-recommender/1"


def test_champion_alias_is_absent_until_promoted_and_then_follows_promotion(local_store):
    assert tracking.champion_version() is None
    versions = []
    for model in (PopularityRecommender(), MarkovRecommender()):
        with mlflow.start_run():
            versions.append(tracking.log_and_register(model.fit(SESSIONS), [["a"]] * 3).version)
    assert versions == ["1", "2"]
    assert tracking.champion_version() is None
    tracking.promote("2")
    assert tracking.champion_version() == "2"
    champion = tracking.load_registered(f"models:/{tracking.REGISTERED_MODEL}@champion")
    assert isinstance(champion, MarkovRecommender)


def test_the_transition_gru_logs_and_predicts_like_itself(local_store):
    from recs_platform.models.gru4rec import TransitionGRURecommender

    sessions = [["a", "b", "c", "d"], ["b", "c", "d"], ["c", "d", "a"], ["d", "a", "b"]] * 20
    model = TransitionGRURecommender(
        epochs=2, batch_size=8, embedding_size=8, hidden_size=8, num_threads=1
    ).fit(sessions)
    with mlflow.start_run():
        logged = tracking.log_and_register(model, [["a"], ["b", "c"]])
    pyfunc = mlflow.pyfunc.load_model(logged.model_uri)
    predictions = pyfunc.predict(pd.DataFrame({"session": [["a"], ["b", "c"]], "k": [3, 2]}))
    assert predictions["items"][0] == model.rank([["a"]], k=3)[0]
    assert predictions["items"][1] == model.rank([["b", "c"]], k=2)[0]
    loaded = tracking.load_registered(logged.model_uri)
    assert isinstance(loaded, TransitionGRURecommender)
    assert loaded.rank([["c"]], k=3) == model.rank([["c"]], k=3)


def test_serving_versions_give_the_champion_and_a_challenger_that_is_not_it(local_store):
    assert tracking.serving_versions() == tracking.ServingVersions(None, None)
    for model in (MarkovRecommender(), PopularityRecommender(), MarkovRecommender()):
        with mlflow.start_run():
            tracking.log_and_register(model.fit(SESSIONS), [["a"]])
    tracking.promote("1")
    assert tracking.serving_versions() == tracking.ServingVersions("1", None)
    tracking.make_challenger("2")
    assert tracking.serving_versions() == tracking.ServingVersions("1", "2")
    challenger = tracking.load_registered(f"models:/{tracking.REGISTERED_MODEL}@challenger")
    assert isinstance(challenger, PopularityRecommender)
    # A challenger promoted by hand is the champion: nothing to compare it with.
    MlflowClient().set_registered_model_alias(tracking.REGISTERED_MODEL, "champion", "2")
    assert tracking.serving_versions() == tracking.ServingVersions("2", None)
    # Promoting retires the challenger alias: its comparison was with the champion before.
    tracking.make_challenger("1")
    tracking.promote("3")
    assert tracking.serving_versions() == tracking.ServingVersions("3", None)
    assert tracking.alias_version(tracking.CHALLENGER) is None
    tracking.retire_challenger()  # nothing to retire: no error
