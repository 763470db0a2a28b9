"""No two parts of the platform import each other: each pair has one direction, shared pieces
live below both (e.g. `web` under `collection` and `serving`)."""

import ast
import graphlib
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "recs_platform"


def part_of(module: str) -> str:
    """`recs_platform.serving.server` -> `serving`; `recs_platform.resources` -> `resources`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imports_between_parts() -> dict[tuple[str, str], list[str]]:
    """{(importer part, imported part): ["module -> module", ...]} across parts, any nesting
    (a function-level import counts as much as a top-level one)."""
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module]
            else:
                continue
            for target in targets:
                if target.startswith("recs_platform.") and part_of(target) != part_of(module):
                    found[(part_of(module), part_of(target))].append(f"{module} -> {target}")
    return found


def test_no_two_parts_import_each_other():
    edges = imports_between_parts()
    cycles = {
        (first, second): edges[(first, second)] + edges[(second, first)]
        for first, second in edges
        if first < second and (second, first) in edges
    }
    assert not cycles, f"parts importing each other: {cycles}"


def test_the_parts_form_layers_without_any_cycle():
    graph: dict[str, set[str]] = defaultdict(set)
    for importer, imported in imports_between_parts():
        graph[importer].add(imported)
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        raise AssertionError(f"an import cycle between parts: {error.args[1]}") from error
    assert order.index("web") < order.index("serving") < order.index("collection")


def test_the_walk_sees_the_known_directions():
    edges = imports_between_parts()
    assert ("collection", "serving") in edges  # the collector mounts the storefront
    assert ("serving", "web") in edges and ("collection", "web") in edges
    assert ("assets", "resources") in edges
