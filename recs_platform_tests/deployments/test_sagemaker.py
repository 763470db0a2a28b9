"""deployments/sagemaker: the inference container, linted, and started the way SageMaker starts
it (`docker run <image> serve`, the model archive unpacked in /opt/ml/model) without Docker: the
image's ENTRYPOINT + CMD and ENV around this checkout's `recs-platform`, on what the image holds
(the standard library, the package's source and pyproject.toml's `serve` extra)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from recs_platform.cli import build_parser
from recs_platform.models.markov import MarkovRecommender
from recs_platform.serving.inference import package_model
from recs_platform.serving.sagemaker import model_archive
from recs_platform_tests.collection.servers import free_port
from recs_platform_tests.deployments.lint import (
    assert_common_image_rules,
    dockerfile_env,
)
from recs_platform_tests.processes import stop, wait_until_answers
from recs_platform_tests.serving.hand_model import HAND_SESSIONS

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deployments" / "sagemaker" / "Dockerfile"
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
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


def _is_orchestration(name: str) -> bool:
    """Dagster's and dbt's distributions (dagster-dbt, dbt-core, ...) and modules (dagster_dbt)."""
    top = canonicalize_name(name.split(".")[0])
    return any(top == prefix or top.startswith(f"{prefix}-") for prefix in ("dagster", "dbt"))


def _serve_extra() -> dict[str, Requirement]:
    requirements = [Requirement(spec) for spec in PROJECT["optional-dependencies"]["serve"]]
    return {canonicalize_name(requirement.name): requirement for requirement in requirements}


def _installed_closure(names: set[str]) -> list[importlib.metadata.Distribution]:
    """The installed distributions of `names` and of everything they require (no extras)."""
    found: dict[str, importlib.metadata.Distribution] = {}
    pending = list(names)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in found:
            continue
        distribution = importlib.metadata.distribution(name)
        found[name] = distribution
        for text in distribution.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return list(found.values())


@pytest.fixture(scope="module")
def serve_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site-packages holding what the image installs and nothing else: this checkout's
    recs_platform and, file by file, the installed distributions of the serve extra with their
    dependencies (the same versions: both come from constraints.txt)."""
    site = tmp_path_factory.mktemp("serve-set")
    (site / "recs_platform").symlink_to(REPO / "recs_platform")
    for distribution in _installed_closure(set(_serve_extra())):
        for file in distribution.files or []:
            source = Path(str(distribution.locate_file(file)))
            if file.parts[0] == ".." or file.suffix == ".pth" or not source.is_file():
                continue  # scripts in bin/, path hooks
            (site / file).parent.mkdir(parents=True, exist_ok=True)
            (site / file).symlink_to(source)
    return site


def _python_on(site: Path, code: str) -> list[str]:
    """This Python with no site-packages but `site` (-S -E; -B: writes no bytecode there)."""
    return [
        sys.executable,
        "-S",
        "-E",
        "-B",
        "-c",
        f"import sys; sys.path.insert(0, {str(site)!r})\n{code}",
    ]


def test_the_serve_extra_leaves_out_dagster_dbt_and_mlflow() -> None:
    """The extra is a subset of the base dependencies with the same specifiers, and neither it
    nor anything it requires is Dagster, dbt or MLflow."""
    serve = _serve_extra()
    base = {canonicalize_name(Requirement(spec).name): spec for spec in PROJECT["dependencies"]}
    assert {"uvicorn", "orjson", "numpy", "torch"} <= serve.keys()
    assert {name: str(requirement) for name, requirement in serve.items()} == {
        name: str(Requirement(base[name])) for name in serve
    }
    closure = {canonicalize_name(d.metadata["Name"]) for d in _installed_closure(set(serve))}
    assert sorted(name for name in closure if _is_orchestration(name) or name == "mlflow") == []


def test_the_image_installs_the_package_without_its_dependencies_and_then_the_serve_extra() -> None:
    installs = [
        args for keyword, args in _instructions() if keyword == "RUN" and "pip install" in args
    ]
    (package,) = [install for install in installs if install.endswith(" .")]
    assert "--no-deps" in package.split(), package
    (extra,) = [install for install in installs if "['optional-dependencies']['serve']" in install]
    assert "-r /tmp/serve-requirements.txt" in extra, extra


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


def test_what_the_image_runs_imports_from_the_serve_set_alone(serve_set: Path) -> None:
    """The command line, the server and every recommender a package may hold (torch's and
    scipy's too) import on the serve set, and nothing of Dagster or dbt is loaded."""
    probe = """
import importlib, json, pkgutil
import recs_platform.models
for module in pkgutil.iter_modules(recs_platform.models.__path__, "recs_platform.models."):
    importlib.import_module(module.name)
from recs_platform.cli import build_parser
build_parser().parse_args(["serve"])
import recs_platform.serving.local_endpoint, recs_platform.serving.server, uvicorn
print(json.dumps(sorted(sys.modules)))
"""
    result = subprocess.run(
        _python_on(serve_set, probe), capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout)
    assert {"torch", "scipy", "numpy", "recs_platform.models.gru4rec"} <= set(loaded)
    assert [name for name in loaded if _is_orchestration(name)] == []


def test_the_container_command_serves_an_unpacked_model_archive(
    tmp_path: Path, serve_set: Path
) -> None:
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
    # The console script the image's ENTRYPOINT names, run on the serve set.
    module, _, function = PROJECT["scripts"][command[0]].partition(":")
    script = (
        f"sys.argv[0] = {command[0]!r}\nfrom {module} import {function}\nsys.exit({function}())"
    )
    process = subprocess.Popen(
        [*_python_on(serve_set, script), *command[1:]],
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
