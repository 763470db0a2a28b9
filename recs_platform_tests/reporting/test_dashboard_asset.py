"""`shop_dashboard` materialized through Dagster: the file where the metadata says, the numbers in
the metadata, a clear failure on an empty warehouse, and the S3 store on moto."""

import datetime as dt

import dagster as dg
import duckdb
import pytest

from recs_platform.assets.dashboard import REPORT_NAME, build_shop_dashboard_asset
from recs_platform.definitions import build_definitions
from recs_platform.resources import LocalReportStore, S3ReportStore, resources_for
from recs_platform.settings import Settings
from recs_platform_tests.fakes import s3_resource_for


def settings_for(data_dir, env="local") -> Settings:
    return Settings(env=env, data_dir=data_dir, partitions_start=dt.date(2026, 3, 1))


def materialize(data_dir, resources=None, **config) -> dg.ExecuteInProcessResult:
    """The asset as the local definitions build it, with the local resources unless given."""
    return dg.materialize(
        [build_shop_dashboard_asset("duckdb_writer")],
        resources=resources or resources_for(settings_for(data_dir)),
        run_config={"ops": {"shop_dashboard": {"config": config}}},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def metadata_of(result) -> dict:
    (materialization,) = result.asset_materializations_for_node("shop_dashboard")
    return {name: entry.value for name, entry in materialization.metadata.items()}


def test_the_report_is_written_and_its_key_numbers_are_metadata(data_dir):
    result = materialize(data_dir)
    assert result.success
    metadata = metadata_of(result)
    report = data_dir / "reports" / REPORT_NAME
    assert metadata.pop("report") == str(report)
    page = report.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "Shop dashboard" in page
    assert not [p for p in report.parent.iterdir() if p.name != REPORT_NAME], "no temporary left"
    # The hand-worked fixture marts (see test_dashboard.py for where each number comes from).
    assert metadata == {
        "first_day": "2026-03-01",
        "last_day": "2026-03-04",
        "days_covered": 4,
        "total_sessions": 7,
        "total_events": 25,
        "mean_session_length": pytest.approx(25 / 7),
        "add_to_cart_rate": pytest.approx(3 / 7),
        "purchase_rate": pytest.approx(1 / 7),
        "distinct_items_viewed": 10,
        "gini_item_views": pytest.approx(0.3125),
        "duplicate_rate": pytest.approx(3 / 29),
        "late_rate": pytest.approx(4 / 26),
    }

    again = materialize(data_dir, window_days=2)
    assert again.success
    assert metadata_of(again)["days_covered"] == 2
    assert "2026-03-03 to 2026-03-04 (2 days)" in report.read_text(encoding="utf-8")


def test_an_empty_warehouse_fails_the_run_with_a_clear_message(data_dir):
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as conn:
        conn.execute("DELETE FROM analytics.daily_session_stats")
    result = materialize(data_dir)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "daily_session_stats is empty: build the warehouse" in str(
        failure.event_specific_data.error
    )
    assert not (data_dir / "reports").exists()


def test_the_prod_store_writes_to_s3_beside_the_landing_zone(
    data_dir, moto_endpoint, s3_client, s3_bucket
):
    store = S3ReportStore(s3=s3_resource_for(moto_endpoint), bucket=s3_bucket, prefix="shop/")
    local = resources_for(settings_for(data_dir))
    result = materialize(data_dir, {**local, "reports": store})
    assert result.success
    key = f"shop/reports/{REPORT_NAME}"
    assert metadata_of(result)["report"] == f"s3://{s3_bucket}/{key}"
    stored = s3_client.get_object(Bucket=s3_bucket, Key=key)
    assert stored["ContentType"] == "text/html; charset=utf-8"
    page = stored["Body"].read().decode("utf-8")
    assert page.startswith("<!DOCTYPE html>") and "Gini of item views 0.312" in page
    listed = s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert [entry["Key"] for entry in listed] == [key]
    assert not (data_dir / "reports").exists()


def test_the_environment_picks_the_store_and_the_pool(tmp_path):
    local = resources_for(settings_for(tmp_path))["reports"]
    assert isinstance(local, LocalReportStore) and local.root == str(tmp_path / "reports")
    prod_settings = Settings(
        env="prod", data_dir=tmp_path, partitions_start=dt.date(2026, 3, 1), landing_prefix="shop/"
    )
    prod = resources_for(prod_settings)["reports"]
    assert isinstance(prod, S3ReportStore) and prod.prefix == "shop/"
    assert prod.key(REPORT_NAME) == f"shop/reports/{REPORT_NAME}"
    with pytest.raises(ValueError, match="plain file name"):
        prod.key("../escape.html")

    graph = build_definitions(settings_for(tmp_path)).resolve_asset_graph()
    node = graph.get(dg.AssetKey("shop_dashboard"))
    assert node.group_name == "reporting"
    assert set(node.kinds) == {"python", "html"}
    assert node.partitions_def is None
    assert node.parent_keys == {
        dg.AssetKey(name)
        for name in ("daily_session_stats", "sessions", "item_stats", "recommendation_performance")
    }
    local_defs = build_definitions(settings_for(tmp_path))
    assert local_defs.resolve_assets_def("shop_dashboard").op.pool == "duckdb_writer"
    prod_defs = build_definitions(prod_settings)
    assert prod_defs.resolve_assets_def("shop_dashboard").op.pool is None
