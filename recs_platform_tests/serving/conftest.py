"""A small Markov model whose rankings can be worked out by hand, packaged and served."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from recs_platform.models.markov import MarkovRecommender
from recs_platform.serving.inference import package_model
from recs_platform_tests.serving.hand_model import HAND_SESSIONS
from recs_platform_tests.serving.servers import running_inference_server


@pytest.fixture(scope="session")
def hand_model_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hand-model") / "package"
    recommender = MarkovRecommender().fit(HAND_SESSIONS)
    return package_model(recommender, folder, "session-recommender", "5", "models:/m/5")


@pytest.fixture(scope="session")
def hand_model_server(hand_model_package: Path) -> Iterator[str]:
    with running_inference_server(hand_model_package) as url:
        yield url
