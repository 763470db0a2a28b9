"""`raw_events`: one day of the landing zone, loaded into the warehouse's raw.events."""

import datetime as dt

import dagster as dg

from recs_platform.resources import LandingZone, Warehouse

REJECTED_SHARE_CHECK = "rejected_share_below_threshold"


class RawEventsConfig(dg.Config):
    max_rejected_share: float = 0.01
    """Warn when more than this share of a day's lines is rejected."""


def build_raw_events_asset(
    partitions_def: dg.PartitionsDefinition,
    warehouse_kind: str,
    retry_policy: dg.RetryPolicy | None = None,
) -> dg.AssetsDefinition:
    @dg.asset(
        name="raw_events",
        key_prefix=None,
        group_name="ingest",
        partitions_def=partitions_def,
        kinds={warehouse_kind, "python"},
        pool=f"{warehouse_kind}_writer" if warehouse_kind == "duckdb" else None,
        retry_policy=retry_policy,
        metadata={"partition_expr": "event_date", "table": "raw.events"},
        check_specs=[
            dg.AssetCheckSpec(
                REJECTED_SHARE_CHECK,
                asset="raw_events",
                description="The share of rejected lines stays under the configured threshold.",
            )
        ],
        description=(
            "One row per landed line of the day's finalized landing files (event_date = arrival "
            "date). Lines that break the contract go to raw.rejected_events with file, line and "
            "reason. Materializing a day replaces it: twice gives the table of once."
        ),
    )
    def raw_events(
        context: dg.AssetExecutionContext,
        config: RawEventsConfig,
        landing: LandingZone,
        warehouse: Warehouse,
    ) -> dg.MaterializeResult:
        day = dt.date.fromisoformat(context.partition_key)
        load = warehouse.load_raw_events(day, landing)
        if load.files == 0:
            context.log.info(f"No landing files for {day}: the partition is empty.")
        for key in load.corrupt_files:
            context.log.warning(f"{key} is damaged; its readable lines were kept.")
        share = load.rejected_share
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": load.rows,
                "rows": load.rows,
                "rejected_rows": load.rejected_rows,
                "rejected_share": share,
                "files": load.files,
                "bytes": load.bytes,
                "corrupt_files": load.corrupt_files,
                "empty_day": load.files == 0,
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=REJECTED_SHARE_CHECK,
                    passed=share <= config.max_rejected_share,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={
                        "rejected_share": share,
                        "max_rejected_share": config.max_rejected_share,
                        "rejected_rows": load.rejected_rows,
                    },
                )
            ],
        )

    return raw_events
