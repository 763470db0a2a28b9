"""The endpoint check catches every way an answer can be wrong, and passes the real server's."""

from __future__ import annotations

import copy

import httpx
import pytest

from recs_platform.serving.probe import UNKNOWN_SKU, probe_problems, probe_request

CATALOGUE = ["a", "b", "c", "d", "e"]


@pytest.fixture(scope="module")
def good_answer(hand_model_server: str) -> dict:
    response = httpx.post(f"{hand_model_server}/invocations", json=probe_request(CATALOGUE))
    assert response.status_code == 200
    return response.json()


def test_the_real_servers_answer_passes(good_answer: dict) -> None:
    assert probe_problems(probe_request(CATALOGUE), 200, good_answer, "5", CATALOGUE) == []


def broken(answer: dict, change) -> dict:
    answer = copy.deepcopy(answer)
    change(answer)
    return answer


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda a: a["model"].update(version="4"), "serves version 4, not 5"),
        (lambda a: a["predictions"][1]["model"].update(version="6"), "serves version 6, not 5"),
        (lambda a: a["predictions"].pop(), "2 predictions for 3 instances"),
        (lambda a: a["predictions"][0]["items"].pop(), "2 items, expected 3"),
        (lambda a: a["predictions"][0]["items"].__setitem__(1, "c"), "repeated items"),
        (lambda a: a["predictions"][1]["items"].__setitem__(0, "zz"), "outside the catalogue"),
        (lambda a: a["predictions"][0]["items"].__setitem__(0, "a"), "own items came back"),
        (lambda a: a["predictions"][0]["scores"].reverse(), "not best first"),
        (lambda a: a["predictions"][2].update(unknown=[]), "expected ['" + UNKNOWN_SKU),
        (lambda a: a["predictions"][1].update(fallback=None), "no popularity fallback"),
    ],
)
def test_each_kind_of_wrong_answer_is_named(good_answer: dict, change, problem: str) -> None:
    problems = probe_problems(
        probe_request(CATALOGUE), 200, broken(good_answer, change), "5", CATALOGUE
    )
    assert any(problem in text for text in problems), problems


def test_an_error_status_or_a_shapeless_answer_fails() -> None:
    request = probe_request(CATALOGUE)
    assert "answered 503" in probe_problems(request, 503, {"error": "x"}, "5", CATALOGUE)[0]
    assert "no predictions list" in probe_problems(request, 200, ["x"], "5", CATALOGUE)[0]


def test_an_answer_without_the_top_level_model_passes_on_its_predictions(good_answer) -> None:
    # What `mlflow models serve` answers for the same model: the predictions alone.
    predictions_only = {"predictions": good_answer["predictions"]}
    assert probe_problems(probe_request(CATALOGUE), 200, predictions_only, "5", CATALOGUE) == []
    nameless = broken(predictions_only, lambda a: [p.pop("model") for p in a["predictions"]])
    problems = probe_problems(probe_request(CATALOGUE), 200, nameless, "5", CATALOGUE)
    assert problems == ["the answer names no model"]
