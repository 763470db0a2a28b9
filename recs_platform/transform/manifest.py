"""The parsed dbt project the Dagster definitions read: `make dbt-manifest`, and `dagster dev`
when a file of the project changed (plain Python, no Dagster).

dagster-dbt copies the parse's `partial_parse.msgpack` into every run's target folder, and dbt
reuses it only when the run's `--target`, `--vars` and profile (the local warehouse path is in
it) are those of the parse; otherwise the run first re-parses the whole project. So the project
is parsed as the assets invoke dbt: with the target of the environment and the absolute data
folder of the Settings (`dbt_run_env`); a parse without `--target` would miss on every run.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from recs_platform.transform.dbt_invocation import (
    DBT_EXECUTABLE,
    DBT_PROJECT_DIR,
    dbt_run_env,
    no_window_env,
)

TARGET_PATH = DBT_PROJECT_DIR / "target"


def parse_environment(data_dir: Path | None, target_path: Path) -> dict[str, str]:
    """The environment of the parse: the caller's, with what a run of the assets gets (no
    window, the data folder) and dbt's folders."""
    environ = {**os.environ, **dbt_run_env(no_window_env(), data_dir)}
    return {
        **{name: value for name, value in environ.items() if value is not None},
        "DBT_PROJECT_DIR": str(DBT_PROJECT_DIR),
        "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
        "DBT_TARGET_PATH": str(target_path),
        "DBT_LOG_PATH": str(target_path),
    }


def prepare_manifest(target: str, data_dir: Path | None, target_path: Path = TARGET_PATH) -> Path:
    """Parse the project into `target_path` for the runs of `target` on `data_dir`; returns the
    manifest's path. Raises with dbt's own message when the project does not parse."""
    target_path = Path(target_path).absolute()
    result = subprocess.run(
        [str(DBT_EXECUTABLE), "parse", "--target", target, "--quiet"],
        env=parse_environment(data_dir, target_path),
        cwd=DBT_PROJECT_DIR,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"dbt parse of {DBT_PROJECT_DIR} for target {target} failed "
            f"({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return target_path / "manifest.json"
