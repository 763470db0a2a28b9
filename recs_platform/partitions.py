"""The daily partitioning every event-derived asset shares."""

from __future__ import annotations

import datetime as dt

import dagster as dg


def daily_partitions(start: dt.date) -> dg.DailyPartitionsDefinition:
    # end_offset=1: today's partition exists, so data arriving today can be loaded (and reloaded).
    return dg.DailyPartitionsDefinition(start_date=start.isoformat(), timezone="UTC", end_offset=1)
