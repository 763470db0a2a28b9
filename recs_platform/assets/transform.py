"""The dbt project as Dagster assets: incremental models by day, the rest whole.

Built in a small cached factory called while the definitions load, so importing this module never
parses dbt; the manifest is prepared by `make dbt-manifest` (the Makefile runs it before the demo
and the tests) or by `dagster dev`.
"""

import functools
import json
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtProjectPreparer,
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from recs_platform.assets.ingest import RAW_EVENTS_KEY
from recs_platform.transform.dbt_invocation import (
    DAILY_BUILD_SELECTOR,
    DBT_PROJECT_DIR,
    INCREMENTAL_SELECTOR,
    dbt_build_args,
    dbt_run_env,
    environment,
    no_window_env,
    partition_window_env,
)
from recs_platform.transform.manifest import prepare_manifest

RAW_EVENTS_SOURCE = ("raw", "events")


class ManifestPreparer(DagsterDbtProjectPreparer):
    """Under `dagster dev`, re-parse the project when a file of it changed since the manifest,
    as `make dbt-manifest` does (`prepare_manifest`: the dbt beside this Python, which the
    default preparer looks for on PATH, and the runs' target and data folder). `dagster dev`
    loads the code in every run and step process too: an unconditional parse would cost each of
    them seconds."""

    def __init__(self, data_dir: Path | None = None):
        super().__init__()
        self.data_dir = data_dir

    def prepare(self, project: DbtProject) -> None:
        if manifest_is_stale(project):
            prepare_manifest(
                project.target, self.data_dir, Path(project.project_dir) / project.target_path
            )


PROJECT_FILE_SUFFIXES = {".sql", ".yml", ".yaml", ".csv", ".md"}


def manifest_is_stale(project: DbtProject) -> bool:
    """Whether some file of the project is newer than its manifest (or there is none)."""
    if not project.manifest_path.exists():
        return True
    parsed_at = project.manifest_path.stat().st_mtime
    target = (Path(project.project_dir) / project.target_path).resolve()
    return any(
        path.stat().st_mtime > parsed_at
        for path in Path(project.project_dir).rglob("*")
        if path.suffix in PROJECT_FILE_SUFFIXES
        and target not in path.resolve().parents
        and "dbt_packages" not in path.parts
        and "logs" not in path.parts
    )


@functools.cache
def dbt_project(target: str, data_dir: Path | None = None) -> DbtProject:
    project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target=target)
    ManifestPreparer(data_dir).prepare_if_dev(project)
    return project


class WarehouseTranslator(DagsterDbtTranslator):
    """dbt nodes in the `warehouse` group; the raw.events source is the `raw_events` asset."""

    def __init__(self, warehouse_kind: str):
        # The tests on raw.events become checks of raw_events, run by the dbt build after it.
        super().__init__(DagsterDbtTranslatorSettings(enable_source_tests_as_checks=True))
        self.warehouse_kind = warehouse_kind

    def get_asset_spec(self, manifest: dict[str, Any], unique_id: str, project) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = manifest["sources"].get(unique_id)
        if node is not None and (node["source_name"], node["name"]) == RAW_EVENTS_SOURCE:
            return spec.replace_attributes(key=RAW_EVENTS_KEY)
        return spec.replace_attributes(group_name="warehouse", kinds={"dbt", self.warehouse_kind})


def _has_models_outside(project: DbtProject, selector: str) -> bool:
    """Whether some model is not selected by `config.materialized:<kind>`."""
    materialization = selector.split(":", 1)[1]
    manifest = json.loads(project.manifest_path.read_text())
    return any(
        node["resource_type"] == "model" and node["config"]["materialized"] != materialization
        for node in manifest["nodes"].values()
    )


def build_dbt_assets(
    env: str,
    warehouse_kind: str,
    partitions_def: dg.PartitionsDefinition,
    retry_policy: dg.RetryPolicy | None = None,
    data_dir: Path | None = None,
) -> list[dg.AssetsDefinition]:
    """The dbt assets; dbt runs on the local warehouse under `data_dir` (see `dbt_run_env`)."""
    project = dbt_project(env, data_dir)
    if not project.manifest_path.exists():
        raise FileNotFoundError(
            f"dbt manifest {project.manifest_path} is missing: run `make dbt-manifest` "
            "(or `dagster dev`, which prepares it)"
        )
    translator = WarehouseTranslator(warehouse_kind)
    pool = "duckdb_writer" if warehouse_kind == "duckdb" else None

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        select=DAILY_BUILD_SELECTOR,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        dagster_dbt_translator=translator,
        name="daily_dbt_models",
        pool=pool,
        retry_policy=retry_policy,
    )
    def daily_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
        window = context.partition_time_window
        # The window goes in the environment, not --vars, so that dbt keeps its partial parse.
        window_env = partition_window_env(window.start.date(), window.end.date())
        with environment(dbt_run_env(window_env, data_dir)):
            invocation = dbt.cli(dbt_build_args(), context=context)
        yield from invocation.stream()

    if not _has_models_outside(project, INCREMENTAL_SELECTOR):
        return [daily_dbt_models]

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        exclude=INCREMENTAL_SELECTOR,
        dagster_dbt_translator=translator,
        name="dbt_models",
        pool=pool,
        retry_policy=retry_policy,
    )
    def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
        with environment(dbt_run_env(no_window_env(), data_dir)):
            invocation = dbt.cli(dbt_build_args(), context=context)
        yield from invocation.stream()

    return [daily_dbt_models, dbt_models]
