"""The inference contract on a model small enough to rank by hand."""

from __future__ import annotations

import orjson
import pytest

from recs_platform.models.markov import MarkovRecommender
from recs_platform.serving.inference import (
    POPULARITY_FALLBACK,
    InvalidRequest,
    Limits,
    LoadedModel,
    ServedModels,
    instances_from_records,
    load_model,
    package_model,
    parse_instances,
    predict,
    predict_requests,
)
from recs_platform_tests.serving.hand_model import HAND_SESSIONS

SESSIONS = HAND_SESSIONS


@pytest.fixture
def model() -> LoadedModel:
    return LoadedModel(MarkovRecommender().fit(SESSIONS), "session-recommender", "7", "memory")


def body(document) -> bytes:
    return orjson.dumps(document)


def test_ranks_best_first_without_the_session_items(model: LoadedModel) -> None:
    response = predict(model, parse_instances(body({"session": ["e", "a"], "k": 3})))
    (prediction,) = response["predictions"]
    assert prediction["items"] == ["b", "c", "d"]  # what followed a, most often first
    assert prediction["scores"] == sorted(prediction["scores"], reverse=True)
    assert prediction["unknown"] == [] and prediction["fallback"] is None
    assert response["model"]["version"] == "7"
    assert response["model"]["name"] == "session-recommender"
    # Each prediction names its model too: what an MLflow scoring server's answer carries.
    assert prediction["model"] == response["model"]


def test_unknown_skus_are_ignored_and_reported(model: LoadedModel) -> None:
    request = {"instances": [{"session": ["a", "zzz", "zzz", "yyy"], "k": 2}]}
    (prediction,) = predict(model, parse_instances(body(request)))["predictions"]
    # The last known item decides (a), as if the unknown ones were not there.
    assert prediction["items"] == ["b", "c"]
    assert prediction["unknown"] == ["zzz", "yyy"]


@pytest.mark.parametrize("session", [[], ["nope"], ["nope", "never"]])
def test_no_known_item_gets_the_popularity_ranking(model: LoadedModel, session) -> None:
    (prediction,) = predict(model, parse_instances(body({"session": session, "k": 3})))[
        "predictions"
    ]
    assert prediction["items"] == ["a", "b", "c"]
    assert prediction["fallback"] == POPULARITY_FALLBACK


def test_k_is_capped_to_what_the_catalogue_has_left(model: LoadedModel) -> None:
    (prediction,) = predict(model, parse_instances(body({"session": ["a"], "k": 10**9})))[
        "predictions"
    ]
    assert sorted(prediction["items"]) == ["b", "c", "d", "e"]  # five items, one seen
    (nothing_left,) = predict(
        model, parse_instances(body({"session": ["a", "b", "c", "d", "e"], "k": 5}))
    )["predictions"]
    assert nothing_left["items"] == [] and nothing_left["scores"] == []


def test_a_batch_answers_each_instance_as_alone(model: LoadedModel) -> None:
    instances = [{"session": ["a"], "k": 1}, {"session": []}, {"session": ["c", "a"], "k": 4}]
    batched = predict(model, parse_instances(body({"instances": instances})))["predictions"]
    alone = [
        predict(model, parse_instances(body(instance)))["predictions"][0] for instance in instances
    ]
    assert batched == alone
    assert len(batched[1]["items"]) == 5  # k defaults to 10, capped to the 5 items


def test_requests_scored_together_answer_each_as_alone(model: LoadedModel) -> None:
    """What the server does with the requests that queued: one model call, each request's own
    document, as if it had come alone (variants, unknown SKUs and k included)."""
    challenger = LoadedModel(MarkovRecommender().fit(SESSIONS[::-1]), "other", "8", "memory")
    served = ServedModels.pair(model, challenger, 0.5)
    requests = [
        [{"session": ["a"], "k": 1}, {"session": ["zz"], "variant": "challenger"}],
        [{"session": ["c", "a"], "k": 4, "session_id": "s-1"}],
        [{"session": ["b"], "k": 2, "variant": "challenger"}, {"session": []}],
    ]
    parsed = [parse_instances(body({"instances": request})) for request in requests]
    together = predict_requests(served, parsed)
    assert together == [predict(served, instances) for instances in parsed]
    assert [len(document["predictions"]) for document in together] == [2, 1, 2]
    assert together[2]["predictions"][0]["variant"] == "challenger"


def test_mlflow_s_inputs_key_and_decoded_records_take_the_same_rules(model: LoadedModel) -> None:
    instances = [{"session": ["a"], "k": 1}, {"session": []}, {"session": ["c", "zz"], "k": 4}]
    expected = parse_instances(body({"instances": instances}))
    assert parse_instances(body({"inputs": instances})) == expected
    assert instances_from_records(instances) == expected
    with pytest.raises(InvalidRequest, match=r"inputs\[0\].k must be at least 1"):
        parse_instances(body({"inputs": [{"session": [], "k": 0}]}))
    with pytest.raises(InvalidRequest, match=r"instances\[1\].k must be a whole number"):
        instances_from_records([{"session": []}, {"session": [], "k": 2.5}])


def test_only_the_end_of_a_long_session_is_scored_but_all_of_it_is_excluded(
    model: LoadedModel,
) -> None:
    session = ["b"] * 50 + ["a"]
    limits = Limits(max_scored_items=1)
    (prediction,) = predict(model, parse_instances(body({"session": session})), limits)[
        "predictions"
    ]
    assert prediction["items"] == ["c", "d", "e"]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty body"),
        (b"   ", "empty body"),
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "must be a JSON object, not a list"),
        (b"{}", 'needs "instances"'),
        (b'{"inputs": []}', "inputs is empty"),
        (b'{"instances": {}}', "instances must be a list"),
        (b'{"instances": []}', "instances is empty"),
        (b'{"instances": [3]}', "instances[0] must be an object"),
        (b'{"instances": [{"k": 3}]}', "instances[0] has no session"),
        (b'{"session": "a,b"}', "session must be a list of SKUs, not a string"),
        (b'{"session": ["a", 3]}', "session[1] must be a string SKU, not a number"),
        (b'{"session": ["a"], "k": 0}', "k must be at least 1, got 0"),
        (b'{"session": ["a"], "k": -4}', "k must be at least 1, got -4"),
        (b'{"session": ["a"], "k": "10"}', "k must be a whole number, not a string"),
        (b'{"session": ["a"], "k": 2.5}', "k must be a whole number, not a number"),
        (b'{"session": ["a"], "k": true}', "k must be a whole number, not a boolean"),
    ],
)
def test_bad_requests_say_why(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidRequest, match=reason.replace("[", r"\[").replace("]", r"\]")):
        parse_instances(raw)


def test_limits_on_size() -> None:
    limits = Limits(max_instances=2, max_session_items=3, max_sku_chars=4)
    with pytest.raises(InvalidRequest, match="3 instances; at most 2"):
        parse_instances(body({"instances": [{"session": []}] * 3}), limits)
    with pytest.raises(InvalidRequest, match="has 4 items; at most 3"):
        parse_instances(body({"session": ["a"] * 4}), limits)
    with pytest.raises(InvalidRequest, match="longer than 4 characters"):
        parse_instances(body({"session": ["abcde"]}), limits)


def test_a_packaged_model_loads_with_its_name_and_version(tmp_path, model: LoadedModel) -> None:
    folder = package_model(
        model.recommender, tmp_path / "pkg", "session-recommender", "12", "models:/x/12"
    )
    loaded = load_model(folder)
    assert (loaded.name, loaded.version) == ("session-recommender", "12")
    assert loaded.describe()["model_uri"] == "models:/x/12"
    request = parse_instances(body({"session": ["a"], "k": 2}))
    (from_package,) = predict(loaded, request)["predictions"]
    (from_memory,) = predict(model, request)["predictions"]
    assert from_package["model"] == loaded.describe()
    assert {**from_package, "model": None} == {**from_memory, "model": None}


def test_loading_something_that_is_no_model_fails_clearly(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="holds no model"):
        load_model(tmp_path)
    with pytest.raises(FileNotFoundError, match="neither a folder nor an MLflow model URI"):
        load_model(tmp_path / "missing")
