"""Reports on the warehouse, in plain Python (no Dagster): the numbers and their rendering."""

from recs_platform.reporting.dashboard import (
    EmptyWarehouseError,
    ShopDashboard,
    build_shop_dashboard,
    render_html,
)

__all__ = ["EmptyWarehouseError", "ShopDashboard", "build_shop_dashboard", "render_html"]
