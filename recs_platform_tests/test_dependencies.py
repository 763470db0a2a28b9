"""Every package the platform imports is one `pyproject.toml` declares (or the standard library):
nothing arrives only because another package happens to bring it."""

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).parents[1]
# Imported only where a deployment installs them, behind an ImportError with a clear message.
OPTIONAL = {"dagster_k8s": "RECS_EXECUTOR=k8s; the Dagster image installs dagster-k8s"}


def imported_top_level_names() -> dict[str, set[str]]:
    """{top-level module: the platform's files importing it}, relative imports left out."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "recs_platform").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_import_is_a_declared_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {normalised(re.split(r"[<>=!~\[; ]", spec)[0]) for spec in project["dependencies"]}
    distributions = packages_distributions()
    undeclared = {}
    for name, files in imported_top_level_names().items():
        if name in sys.stdlib_module_names or name in ("__future__", "recs_platform"):
            continue
        if name in OPTIONAL:
            continue
        providers = {normalised(dist) for dist in distributions.get(name, [])}
        if not providers & declared:
            undeclared[name] = sorted(files)
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_optional_imports_are_guarded():
    for name in OPTIONAL:
        for file in imported_top_level_names().get(name, ()):
            assert "except ImportError" in (ROOT / file).read_text(), file
