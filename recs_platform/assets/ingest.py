"""`raw_events`: one day of the landing zone, loaded into the warehouse's raw.events."""

import datetime as dt

import dagster as dg

from recs_platform.resources import LandingZone, Warehouse
from recs_platform.warehouse.schema import PartitionLoad

RAW_EVENTS_KEY = dg.AssetKey("raw_events")
REJECTED_SHARE_CHECK = "rejected_share_below_threshold"
# Metadata of a materialization: {day: files_fingerprint()} of the landing files it loaded.
FILES_LOADED_METADATA = "files_fingerprint_by_day"


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
        backfill_policy=dg.BackfillPolicy.single_run(),
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
        # One day per run from the sensor; a backfill loads its whole range in one run (then
        # one dbt run follows for the range), each day replaced in its own transaction.
        loads = []
        for key in context.partition_keys:
            day = dt.date.fromisoformat(key)
            load = warehouse.load_raw_events(day, landing)
            if load.files == 0:
                context.log.info(f"No landing files for {day}: the partition is empty.")
            for corrupt in load.corrupt_files:
                context.log.warning(f"{corrupt} is damaged; its readable lines were kept.")
            loads.append(load)
        total = PartitionLoad(
            event_date=loads[0].event_date,
            rows=sum(load.rows for load in loads),
            rejected_rows=sum(load.rejected_rows for load in loads),
            files=sum(load.files for load in loads),
            bytes=sum(load.bytes for load in loads),
            corrupt_files=[key for load in loads for key in load.corrupt_files],
        )
        share = total.rejected_share
        metadata = {
            "dagster/row_count": total.rows,
            "rows": total.rows,
            "rejected_rows": total.rejected_rows,
            "rejected_share": share,
            "files": total.files,
            "bytes": total.bytes,
            "corrupt_files": total.corrupt_files,
            "empty_day": total.files == 0,
            FILES_LOADED_METADATA: {str(load.event_date): load.files_fingerprint for load in loads},
        }
        if len(loads) > 1:
            metadata["days"] = dg.MetadataValue.md(_days_table(loads))
        return dg.MaterializeResult(
            metadata=metadata,
            check_results=[
                dg.AssetCheckResult(
                    check_name=REJECTED_SHARE_CHECK,
                    passed=share <= config.max_rejected_share,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={
                        "rejected_share": share,
                        "max_rejected_share": config.max_rejected_share,
                        "rejected_rows": total.rejected_rows,
                    },
                )
            ],
        )

    return raw_events


def _days_table(loads: list[PartitionLoad]) -> str:
    lines = ["| day | files | rows | rejected |", "|---|---|---|---|"]
    lines += [
        f"| {load.event_date} | {load.files} | {load.rows} | {load.rejected_rows} |"
        for load in loads
    ]
    return "\n".join(lines)
