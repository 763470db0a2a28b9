"""Shared by the benchmark scripts: print a result as a table and keep it as JSON."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def save_and_print(name: str, title: str, result: dict) -> dict:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    width = max(len(key) for key in result)
    print(title)
    for key, value in result.items():
        print(f"  {key:<{width}}  {value}")
    return result
