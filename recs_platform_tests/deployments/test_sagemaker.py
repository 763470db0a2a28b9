"""deployments/sagemaker: the inference container, linted, and started the way SageMaker starts
it (`docker run <image> serve`, the model archive unpacked in /opt/ml/model) without Docker: the
image's ENTRYPOINT + CMD and ENV around this checkout's `recs-platform`."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import httpx
import pytest

from recs_platform.cli import build_parser
from recs_platform.models.markov import MarkovRecommender
from recs_platform.serving.inference import package_model
from recs_platform.serving.sagemaker import model_archive
from recs_platform_tests.collection.servers import BIN, free_port
from recs_platform_tests.deployments.lint import (
    assert_common_image_rules,
    dockerfile_env,
)
from recs_platform_tests.processes import stop, wait_until_answers
from recs_platform_tests.serving.hand_model import HAND_SESSIONS

DOCKERFILE = Path(__file__).resolve().parents[2] / "deployments" / "sagemaker" / "Dockerfile"
SERVE_ENV = {
    "RECS_SERVE_MODEL": "/opt/ml/model",
    "RECS_SERVE_HOST": "0.0.0.0",
    "RECS_SERVE_PORT": "8080",
}


def _instructions() -> list[tuple[str, str]]:
    return assert_common_image_rules(DOCKERFILE)


def _command(instructions: list[tuple[str, str]]) -> list[str]:
    (entrypoint,) = [json.loads(args) for keyword, args in instructions if keyword == "ENTRYPOINT"]
    (cmd,) = [json.loads(args) for keyword, args in instructions if keyword == "CMD"]
    return entrypoint + cmd


def test_the_image_is_linted_and_sagemakers_serve_argument_runs_recs_platform_serve(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    instructions = _instructions()
    env = dockerfile_env(instructions)
    assert {name: env.get(name) for name in SERVE_ENV} == SERVE_ENV
    (entrypoint,) = [args for keyword, args in instructions if keyword == "ENTRYPOINT"]
    # SageMaker runs `docker run <image> serve`: its argument replaces CMD, after ENTRYPOINT.
    assert json.loads(entrypoint) == ["recs-platform"]
    assert ("EXPOSE", "8080") in instructions
    for name, value in SERVE_ENV.items():
        monkeypatch.setenv(name, value)
    args = build_parser().parse_args(["serve"])
    assert (args.model, args.host, args.port) == ("/opt/ml/model", "0.0.0.0", 8080)


def test_the_container_command_serves_an_unpacked_model_archive(tmp_path: Path) -> None:
    recommender = MarkovRecommender().fit(HAND_SESSIONS)
    package = package_model(
        recommender, tmp_path / "package", "session-recommender", "5", "models:/m/5"
    )
    archive = model_archive(package, tmp_path / "model.tar.gz")
    model_dir = tmp_path / "opt" / "ml" / "model"  # what SageMaker unpacks model.tar.gz into
    model_dir.mkdir(parents=True)
    with tarfile.open(archive) as unpacked:
        unpacked.extractall(model_dir, filter="data")

    instructions = _instructions()
    command = _command(instructions)
    assert command == ["recs-platform", "serve"]
    port = free_port()
    environ = {
        **os.environ,
        **dockerfile_env(instructions),
        "RECS_SERVE_MODEL": str(model_dir),
        # The image's 0.0.0.0:8080, moved to a free port of 127.0.0.1 for the test.
        "RECS_SERVE_HOST": "127.0.0.1",
        "RECS_SERVE_PORT": str(port),
        "RECS_DATA_DIR": str(tmp_path / "data"),
        "NO_PROXY": "127.0.0.1",
    }
    process = subprocess.Popen(
        [str(BIN / command[0]), *command[1:]],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(f"{url}/ping", process)
        answer = httpx.post(
            f"{url}/invocations",
            json={"instances": [{"session": ["a"], "k": 2}]},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        document = answer.json()
        assert document["predictions"][0]["items"] == ["b", "c"]
        assert document["model"]["version"] == "5"
    finally:
        stop(process, timeout_s=10)
