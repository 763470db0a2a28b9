"""The parsed dbt project (`make dbt-manifest`) is the one the assets' dbt runs reuse."""

import datetime as dt

from recs_platform.resources import resources_for
from recs_platform.settings import Settings
from recs_platform.transform.dbt_invocation import (
    dbt_run_env,
    environment,
    partition_window_env,
)
from recs_platform.transform.manifest import prepare_manifest


def test_a_run_of_the_dbt_assets_reuses_the_prepared_parse(tmp_path, monkeypatch):
    # The Settings' data folder, while the environment names another one (relative): the
    # parse and the runs both use the Settings' absolute folder.
    monkeypatch.setenv("RECS_DATA_DIR", "elsewhere")
    settings = Settings.from_env({"RECS_DATA_DIR": str(tmp_path / "data")})
    parsed = tmp_path / "parsed"
    manifest = prepare_manifest(settings.env, settings.data_dir, parsed)
    assert manifest == parsed / "manifest.json" and manifest.exists()
    assert (parsed / "partial_parse.msgpack").exists()

    # dagster-dbt copies the partial parse from DBT_TARGET_PATH into each run's own folder.
    monkeypatch.setenv("DBT_TARGET_PATH", str(parsed))
    dbt = resources_for(settings)["dbt"]
    day = dt.date(2026, 11, 3)
    run_folder = tmp_path / "run"
    window = partition_window_env(day, day + dt.timedelta(days=1))
    with environment(dbt_run_env(window, settings.data_dir)):
        dbt.cli(["ls", "--select", "stg_events"], target_path=run_folder).wait()

    log = (run_folder / "dbt.log").read_text()
    assert "Unable to do partial parsing" not in log
    assert "Partial parsing enabled: 0 files deleted, 0 files added, 0 files changed" in log
