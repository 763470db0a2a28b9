"""Loading throughput of `raw_events` (DuckDB path) against a plain DuckDB `read_json`.

Writes one day of N synthetic events to a temporary landing zone, then in the same run:
- reference: `CREATE TABLE AS SELECT * FROM read_json(files)` (no validation, no line numbers,
  no rejections, no payload copy), the fastest way DuckDB itself reads the files;
- ours: `load_raw_events_partition` (validation in SQL, rejected lines kept, payload kept,
  atomic partition replace).
Also reports the peak Python heap during our load (tracemalloc), to show the day never sits in
Python memory. Usage: .venv/bin/python benchmarks/bench_raw_load.py [--events N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
import tracemalloc
from pathlib import Path

import duckdb
from report import save_and_print

from recs_platform.events.landing import LandingFile, LandingWriter, list_local_partition
from recs_platform.warehouse.duckdb_raw import load_raw_events_partition


def write_day(root: Path, day: dt.date, events: int) -> list[LandingFile]:
    day_start_ms = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1e3)
    with LandingWriter(root, "bench", max_events_per_file=250_000) as writer:
        for number in range(events):
            ts = day_start_ms + number * 80
            sku = f"sku-{number % 5000:06d}"
            writer.write(
                {
                    "event_id": f"{number:08x}-0000-4000-8000-000000000000",
                    "session_id": f"s{number // 6}",
                    "user_id": None,
                    "event_type": "event_product",
                    "product_action": "detail",
                    "product_sku": sku,
                    "url": f"/p/{sku}",
                    "client_ts": ts,
                    "server_ts": ts + 35,
                    "source": "bench",
                }
            )
    return list_local_partition(root, day)


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    day = dt.date(2026, 11, 1)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "landing"
        files = write_day(root, day, args.events)
        paths = [str(root / f.key) for f in files]
        megabytes = sum(f.size for f in files) / 1e6

        with duckdb.connect(str(Path(scratch) / "reference.duckdb")) as conn:
            started = time.perf_counter()
            conn.execute(
                "CREATE TABLE events AS SELECT * FROM read_json(?, format='newline_delimited')",
                [paths],
            )
            reference_seconds = time.perf_counter() - started
            reference_rows = conn.execute("SELECT count(*) FROM events").fetchone()[0]

        with duckdb.connect(str(Path(scratch) / "ours.duckdb")) as conn:
            tracemalloc.start()
            started = time.perf_counter()
            load = load_raw_events_partition(conn, root, day, files)
            ours_seconds = time.perf_counter() - started
            python_peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
            tracemalloc.stop()

    assert reference_rows == load.rows == args.events, (reference_rows, load.rows)
    result = {
        "events": args.events,
        "files": len(files),
        "compressed_mb": round(megabytes, 1),
        "reference_read_json_s": round(reference_seconds, 3),
        "raw_events_load_s": round(ours_seconds, 3),
        "reference_events_per_s": round(args.events / reference_seconds),
        "raw_events_events_per_s": round(args.events / ours_seconds),
        "throughput_ratio_vs_read_json": round(reference_seconds / ours_seconds, 3),
        "python_heap_peak_mb_during_load": round(python_peak_mb, 3),
    }
    return save_and_print(
        "raw_load", "raw_events load (DuckDB) vs plain read_json, same files, same run", result
    )


if __name__ == "__main__":
    main()
