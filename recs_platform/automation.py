"""Sensors and schedules: Dagster itself decides when assets run."""

import hashlib
import json

import dagster as dg

from recs_platform.events.landing import LandingFile
from recs_platform.resources import LandingZone


def files_fingerprint(files: list[LandingFile]) -> str:
    """Changes whenever a finalized file appears in (or leaves) a day's landing partition."""
    digest = hashlib.sha1()
    for landing_file in sorted(files, key=lambda f: f.key):
        digest.update(f"{landing_file.key}:{landing_file.size}\n".encode())
    return digest.hexdigest()[:16]


def changed_partitions(
    seen: dict[str, str], current: dict[str, str], partition_keys: set[str]
) -> tuple[list[tuple[str, str]], list[str], dict[str, str]]:
    """Which days to load again: (key, fingerprint) to request, days outside the partitions,
    and the new cursor (days outside the partitions stay out of it, so they are requested once
    their partition exists)."""
    to_request, outside = [], []
    cursor = dict(seen)
    for key, fingerprint in sorted(current.items()):
        if seen.get(key) == fingerprint:
            continue
        if key not in partition_keys:
            outside.append(key)
            continue
        to_request.append((key, fingerprint))
        cursor[key] = fingerprint
    return to_request, outside, cursor


def build_landing_sensor(
    job_name: str, partitions_def: dg.PartitionsDefinition
) -> dg.SensorDefinition:
    @dg.sensor(
        name="landing_zone_sensor",
        job_name=job_name,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Requests the raw_events partition of every day whose finalized landing files changed "
            "since the last tick (late files for old days included); the run key names the files, "
            "so the same files are never loaded twice."
        ),
    )
    def landing_zone_sensor(context: dg.SensorEvaluationContext, landing: LandingZone):
        seen = json.loads(context.cursor) if context.cursor else {}
        current = {
            day.isoformat(): files_fingerprint(files)
            for day in landing.list_dates()
            if (files := landing.list_partition(day))
        }
        partition_keys = set(partitions_def.get_partition_keys())
        to_request, outside, cursor = changed_partitions(seen, current, partition_keys)
        if outside:
            context.log.warning(f"landing days outside the raw_events partitions: {outside}")
        context.update_cursor(json.dumps(cursor, sort_keys=True))
        if not to_request:
            return dg.SkipReason("no new landing files")
        return [
            dg.RunRequest(partition_key=key, run_key=f"raw_events:{key}:{fingerprint}")
            for key, fingerprint in to_request
        ]

    return landing_zone_sensor
