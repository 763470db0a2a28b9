"""The serving package imports nothing from Dagster or dbt (the inference image holds neither):
every module of recs_platform.serving imported in a fresh interpreter of the full install, whose
loaded modules are then read."""

import json
import subprocess
import sys

PROBE = """
import importlib, json, pkgutil, sys
import recs_platform.serving
for module in pkgutil.walk_packages(recs_platform.serving.__path__, "recs_platform.serving."):
    importlib.import_module(module.name)
print(json.dumps(sorted(sys.modules)))
"""


def test_no_serving_module_loads_dagster_or_dbt() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout)
    assert "recs_platform.serving.sagemaker" in loaded and "recs_platform.serving.server" in loaded
    tops = {name.split(".")[0].replace("_", "-") for name in loaded}
    orchestration = [top for top in tops if top.split("-")[0] in ("dagster", "dbt")]
    assert sorted(orchestration) == []
