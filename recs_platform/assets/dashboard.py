"""`shop_dashboard`: one self-contained HTML report of the warehouse marts, linked from metadata."""

import dagster as dg

from recs_platform.reporting.dashboard import (
    TOP_ITEMS,
    EmptyWarehouseError,
    build_shop_dashboard,
    render_html,
)
from recs_platform.resources import ReportStore, Warehouse

REPORT_NAME = "shop_dashboard.html"


class ShopDashboardConfig(dg.Config):
    window_days: int | None = None
    """Report the last N days of the marts only; default: every day they hold."""
    top_items: int = TOP_ITEMS


def build_shop_dashboard_asset(
    pool: str | None, retry_policy: dg.RetryPolicy | None = None
) -> dg.AssetsDefinition:
    """`pool`: the DuckDB file takes one process at a time, readers included."""

    @dg.asset(
        deps=["daily_session_stats", "sessions", "item_stats", "recommendation_performance"],
        pool=pool,
        retry_policy=retry_policy,
        group_name="reporting",
        kinds={"python", "html"},
        description=(
            "The shop at a glance, as one self-contained HTML file: daily sessions and events, "
            "the funnel, the session-length histogram, the popularity curve with its Gini, the "
            "top items, duplicate and late rates. Read from the dbt marts; the link and the key "
            "numbers are in the metadata."
        ),
    )
    def shop_dashboard(
        context: dg.AssetExecutionContext,
        config: ShopDashboardConfig,
        warehouse: Warehouse,
        reports: ReportStore,
    ) -> dg.MaterializeResult:
        try:
            dashboard = build_shop_dashboard(
                warehouse.query, window_days=config.window_days, top_n=config.top_items
            )
        except EmptyWarehouseError as error:
            raise dg.Failure(str(error)) from error
        location = reports.write_report(REPORT_NAME, render_html(dashboard))
        context.log.info(f"shop dashboard written to {location}")
        return dg.MaterializeResult(
            metadata={"report": dg.MetadataValue.path(location), **dashboard.key_numbers()}
        )

    return shop_dashboard
