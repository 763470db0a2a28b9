"""`GET /recommend`, the call the shop's page makes: on the collector (asking the local endpoint
over HTTP) and as the Lambda (asking SageMaker's runtime API, here the same real inference
server on 127.0.0.1). Both answer the same, best item first."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlencode

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from recs_platform.collection.app import CollectorConfig, create_app
from recs_platform.models.markov import MarkovRecommender
from recs_platform.serving.facade import (
    MAX_K,
    MAX_SESSION_ITEMS,
    EndpointUnavailable,
    recommend_answer,
)
from recs_platform.serving.inference import package_model
from recs_platform.serving.recommend_lambda import (
    RecommendHandler,
    RecommendSettings,
    sagemaker_runtime_client,
)
from recs_platform_tests.collection.servers import free_port
from recs_platform_tests.serving.hand_model import HAND_SESSIONS
from recs_platform_tests.serving.servers import running_inference_server


class LambdaAsClient:
    """The Lambda handler behind the same `get(path, params)` as Starlette's TestClient."""

    class Answer:
        def __init__(self, raw: dict):
            import orjson

            self.status_code = raw["statusCode"]
            self.headers = {name.lower(): value for name, value in raw["headers"].items()}
            self._body = raw["body"]
            self.json = lambda: orjson.loads(self._body)

    def __init__(self, handler: RecommendHandler):
        self.handler = handler

    def get(self, path: str, params: dict | None = None, headers: dict | None = None):
        event = {
            "version": "2.0",
            "rawPath": path,
            "rawQueryString": urlencode(params or {}),
            "headers": headers or {},
            "requestContext": {"http": {"method": "GET"}, "stage": "$default"},
        }
        return self.Answer(self.handler.handle(event))


@pytest.fixture
def collector_client(tmp_path: Path, hand_model_server: str):
    config = CollectorConfig(
        landing_root=tmp_path / "landing",
        endpoint_url=hand_model_server,
        cors_origins=("https://shop.example",),
    )
    with TestClient(create_app(config)) as client:
        yield client


def lambda_client(monkeypatch: pytest.MonkeyPatch, runtime_url: str) -> LambdaAsClient:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": runtime_url,
        "NO_PROXY": "127.0.0.1",
    }.items():
        monkeypatch.setenv(name, value)
    settings = RecommendSettings("recs-endpoint", frozenset({"https://shop.example"}))
    return LambdaAsClient(RecommendHandler(settings, sagemaker_runtime_client()))


@pytest.fixture
def the_lambda(monkeypatch: pytest.MonkeyPatch, hand_model_server: str) -> LambdaAsClient:
    return lambda_client(monkeypatch, hand_model_server)


@pytest.fixture(params=["collector", "lambda"])
def facade(request):
    return request.getfixturevalue(
        "collector_client" if request.param == "collector" else "the_lambda"
    )


def test_the_best_item_comes_first(facade) -> None:
    # After a: b followed it 3 times, c twice, d once. The reference implementation of the seed
    # paper sorted ascending and served the worst items; this order is the contract.
    response = facade.get("/recommend", params={"session": "e,a", "k": "3"})
    assert response.status_code == 200
    answer = response.json()
    assert answer["items"] == ["b", "c", "d"]
    assert answer["scores"] == sorted(answer["scores"], reverse=True)
    assert answer["scores"][0] > answer["scores"][-1]
    assert answer["model"]["version"] == "5"
    assert response.headers["cache-control"] == "no-store"


def test_unknown_skus_and_empty_sessions_fall_back_to_popularity(facade) -> None:
    unknown = facade.get("/recommend", params={"session": "nope,never", "k": "2"}).json()
    assert unknown["items"] == ["a", "b"] and unknown["fallback"] == "popularity"
    assert unknown["unknown"] == ["nope", "never"]
    empty = facade.get("/recommend").json()
    assert empty["items"] == ["a", "b", "c", "d", "e"]  # k defaults to 10; 5 items exist


@pytest.mark.parametrize(
    "document",
    [
        # An MLflow scoring server's answer: the model named by the prediction alone.
        {"predictions": [{"items": ["b"], "scores": [1.0], "unknown": [], "fallback": None,
                          "model": {"name": "m", "version": "5"}}]},
        # An endpoint from before each prediction named its model.
        {"predictions": [{"items": ["b"], "scores": [1.0], "unknown": [], "fallback": None}],
         "model": {"name": "m", "version": "5"}},
    ],
)  # fmt: skip
def test_the_answer_names_the_model_from_either_place(document: dict) -> None:
    answer = recommend_answer(200, orjson.dumps(document))
    assert answer == {
        "request_id": answer["request_id"],
        "items": ["b"],
        "scores": [1.0],
        "unknown": [],
        "fallback": None,
        "model": {"name": "m", "version": "5"},
        "variant": "champion",  # the endpoint names no variant: one model serves
    }


def test_every_answer_has_a_request_id_of_its_own(facade) -> None:
    answers = [facade.get("/recommend", params={"session": "a", "k": "2"}).json() for _ in "xyz"]
    request_ids = [answer["request_id"] for answer in answers]
    assert len(set(request_ids)) == 3
    for request_id in request_ids:
        assert uuid.UUID(hex=request_id).version == 4 and request_id == uuid.UUID(request_id).hex
    assert {answer["variant"] for answer in answers} == {"champion"}
    assert {answer["model"]["version"] for answer in answers} == {"5"}


@pytest.mark.parametrize(
    ("document", "invoked", "variant"),
    [
        ({"variant": "challenger"}, None, "challenger"),
        ({"predictions_variant": "challenger"}, None, "challenger"),
        ({"variant": "challenger"}, "champion", "champion"),
        ({}, "challenger", "challenger"),
    ],
)
def test_the_variant_that_answered_is_passed_on(document, invoked, variant) -> None:
    prediction = {"items": ["b"], "scores": [1.0], "model": {"name": "m", "version": "5"}}
    if "predictions_variant" in document:
        prediction["variant"] = document.pop("predictions_variant")
    body = orjson.dumps({"predictions": [prediction], **document})
    assert recommend_answer(200, body, variant=invoked)["variant"] == variant


def test_a_variant_that_is_not_a_string_is_not_the_contract() -> None:
    body = orjson.dumps({"predictions": [{"items": [], "scores": []}], "variant": 2})
    with pytest.raises(EndpointUnavailable, match="variant"):
        recommend_answer(200, body)


@pytest.fixture(scope="module")
def two_variant_server(hand_model_package: Path, tmp_path_factory: pytest.TempPathFactory):
    """The hand model as champion (version 5) and again as challenger (version 6), half each."""
    challenger = package_model(
        MarkovRecommender().fit(HAND_SESSIONS),
        tmp_path_factory.mktemp("challenger") / "package",
        "session-recommender",
        "6",
        "models:/m/6",
    )
    with running_inference_server(
        hand_model_package, "--challenger", str(challenger), "--challenger-share", "0.5"
    ) as url:
        yield url


def test_the_session_id_keeps_a_session_on_one_variant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, two_variant_server: str
) -> None:
    config = CollectorConfig(landing_root=tmp_path / "landing", endpoint_url=two_variant_server)
    with TestClient(create_app(config)) as collector:
        for client in (collector, lambda_client(monkeypatch, two_variant_server)):
            variants = {}
            for number in range(24):
                answers = [
                    client.get(
                        "/recommend", params={"session": "a", "session_id": f"s-{number}"}
                    ).json()
                    for _ in range(3)
                ]
                assert len({(a["variant"], a["model"]["version"]) for a in answers}) == 1
                variants[number] = (answers[0]["variant"], answers[0]["model"]["version"])
            assert set(variants.values()) == {("champion", "5"), ("challenger", "6")}
            # No session id: the champion answers.
            assert client.get("/recommend", params={"session": "a"}).json()["variant"] == (
                "champion"
            )


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"session": "a", "session_id": "s" * 257}, "session_id is longer than 256"),
        ({"session": "a", "k": "0"}, "k must be at least 1"),
        ({"session": "a", "k": "-3"}, "k must be at least 1"),
        ({"session": "a", "k": "ten"}, "k must be a whole number"),
        ({"session": "a", "k": "2.5"}, "k must be a whole number"),
        ({"session": ",".join(["a"] * (MAX_SESSION_ITEMS + 1))}, "send at most the last"),
        ({"session": "x" * 300}, "longer than"),
    ],
)
def test_bad_queries_get_a_400_with_the_reason(facade, params, reason) -> None:
    response = facade.get("/recommend", params=params)
    assert response.status_code == 400
    assert reason in response.json()["error"]


def test_a_huge_k_is_capped(facade) -> None:
    response = facade.get("/recommend", params={"session": "a", "k": "99999999999999999999"})
    assert response.status_code == 200
    assert len(response.json()["items"]) == 4  # every item but a, fewer than MAX_K
    assert MAX_K >= 4


def test_an_allowed_origin_is_echoed_for_cors(facade) -> None:
    allowed = facade.get("/recommend", headers={"origin": "https://shop.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    other = facade.get("/recommend", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_an_endpoint_that_is_down_is_a_503_the_page_can_ignore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    config = CollectorConfig(landing_root=tmp_path / "landing", endpoint_url=nobody)
    with TestClient(create_app(config)) as client:
        response = client.get("/recommend", params={"session": "a"})
    assert response.status_code == 503
    assert "did not answer" in response.json()["error"]
    down = lambda_client(monkeypatch, nobody).get("/recommend", params={"session": "a"})
    assert down.status_code == 503
    assert "invoke_endpoint failed" in down.json()["error"]


queries = st.dictionaries(
    st.sampled_from(["session", "k", "x"]),
    st.text(max_size=40) | st.integers(min_value=-(10**30), max_value=10**30).map(str),
    max_size=3,
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(params=queries)
def test_no_generated_query_gets_a_5xx(collector_client: TestClient, params: dict) -> None:
    response = collector_client.get("/recommend", params=params)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 200:
        items = response.json()["items"]
        session = {sku.strip() for sku in params.get("session", "").split(",")}
        assert not session & set(items)


def test_the_lambda_targets_each_session_s_variant_by_the_endpoint_s_weights(
    monkeypatch: pytest.MonkeyPatch, two_variant_server: str
) -> None:
    """On SageMaker each request would go to a variant by weight; the Lambda sends TargetVariant
    so that a session keeps one, the share read from the endpoint's weights once a minute."""
    import boto3
    from botocore.stub import Stubber

    from recs_platform.serving.inference import variant_for_session

    runtime = lambda_client(monkeypatch, two_variant_server).handler.runtime
    control = boto3.client("sagemaker", region_name="us-east-1")
    weights = {"champion": 0.7, "challenger": 0.3}  # the server itself splits 50/50
    described = {
        "EndpointName": "recs-endpoint",
        "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/recs-endpoint",
        "EndpointStatus": "InService",
        "CreationTime": "2026-12-01T00:00:00Z",
        "LastModifiedTime": "2026-12-01T00:00:00Z",
        "ProductionVariants": [
            {"VariantName": name, "CurrentWeight": weight} for name, weight in weights.items()
        ],
    }
    now = [0.0]
    handler = RecommendHandler(
        RecommendSettings("recs-endpoint"), runtime, control, clock=lambda: now[0]
    )
    client = LambdaAsClient(handler)
    with Stubber(control) as stubber:
        stubber.add_response("describe_endpoint", described, {"EndpointName": "recs-endpoint"})
        seen = set()
        for number in range(40):
            session_id = f"s-{number}"
            wanted = variant_for_session(session_id, 0.3).value
            for _ in range(2):
                answer = client.get("/recommend", params={"session": "a", "session_id": session_id})
                assert answer.json()["variant"] == wanted
            seen.add(wanted)
        assert seen == {"champion", "challenger"}
        stubber.assert_no_pending_responses()  # one describe_endpoint for 80 requests

        # A minute later it asks again; when that fails the carousel still answers.
        now[0] = 61.0
        stubber.add_client_error("describe_endpoint", "AccessDeniedException", http_status_code=400)
        answer = client.get("/recommend", params={"session": "a", "session_id": "s-1"})
        assert answer.status_code == 200 and handler.challenger_share() is None
