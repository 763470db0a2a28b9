"""MLflow: a recommender logged as a pyfunc answers like the recommender; the champion alias."""

import mlflow
import pandas as pd
import pytest

from recs_platform.models.markov import MarkovRecommender
from recs_platform.models.popularity import PopularityRecommender
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
    # `k` may be left out: the default applies, seen items never come back.
    without_k = pyfunc.predict(pd.DataFrame({"session": [["a"]]}))
    assert without_k["items"][0] == ["b", "c", "d"]

    loaded = tracking.load_registered(logged.model_uri)
    assert loaded.rank([["b"]], k=3) == markov.rank([["b"]], k=3)


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
