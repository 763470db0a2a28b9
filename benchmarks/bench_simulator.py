"""Simulator throughput: N events (default 1,000,000) into a temporary landing zone.

In the same run, a reference: the same number of simple prebuilt event dicts, encoded with the
contract's encoder and written through the same `LandingWriter` in the same batches, which is the
cost of the I/O alone. The ratio says how much simulating adds to it. Single process, numpy
limited to one thread. Usage: .venv/bin/python benchmarks/bench_simulator.py [--events N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import tempfile
import time
from pathlib import Path

# One thread for numpy's BLAS, set before anything imports numpy.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

from report import save_and_print  # noqa: E402

from recs_platform.events.contract import encode_event  # noqa: E402
from recs_platform.events.landing import LandingWriter  # noqa: E402
from recs_platform.simulation import ShopConfig, simulate_to_landing  # noqa: E402

DAYS = 14
# Events per session of the default shop, measured; only used to size the run.
EVENTS_PER_SESSION = 8.77
BATCH_LINES = 50_000


def reference_events(count: int, start: dt.date) -> dict[dt.date, list[dict]]:
    """Plain detail events spread evenly over the days, grouped by arrival day."""
    start_ms = (start - dt.date(1970, 1, 1)).days * 86_400_000
    per_day = math.ceil(count / DAYS)
    events_by_day: dict[dt.date, list[dict]] = {}
    for number in range(count):
        day, index = divmod(number, per_day)
        timestamp = start_ms + day * 86_400_000 + index * 60
        sku = f"sku-{number % 2000:06d}"
        events_by_day.setdefault(start + dt.timedelta(days=day), []).append(
            {
                "event_id": f"{number:08x}-0000-4000-8000-000000000000",
                "session_id": f"s-{number // 9}",
                "user_id": None,
                "event_type": "event_product",
                "product_action": "detail",
                "product_sku": sku,
                "url": f"/p/{sku}",
                "client_ts": timestamp,
                "server_ts": timestamp + 120,
                "source": "bench",
            }
        )
    return events_by_day


def write_reference(root: Path, events_by_day: dict[dt.date, list[dict]]) -> int:
    with LandingWriter(root, "bench", file_stem="reference") as writer:
        for day, events in events_by_day.items():
            for start in range(0, len(events), BATCH_LINES):
                batch = events[start : start + BATCH_LINES]
                writer.write_encoded(day, b"".join(map(encode_event, batch)), len(batch))
    return writer.summary.events


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000, help="events to simulate")
    args = parser.parse_args()
    sessions_per_day = max(1, round(args.events / EVENTS_PER_SESSION / DAYS))
    config = ShopConfig(days=DAYS, sessions_per_day=sessions_per_day)

    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        report = simulate_to_landing(config, Path(scratch) / "simulated")
        simulator_seconds = time.perf_counter() - started

        events_by_day = reference_events(report.events, config.start)
        started = time.perf_counter()
        reference_written = write_reference(Path(scratch) / "reference", events_by_day)
        reference_seconds = time.perf_counter() - started

    assert reference_written == report.events, (reference_written, report.events)
    result = {
        "events": report.events,
        "sessions": report.sessions,
        "days": DAYS,
        "sessions_per_day": sessions_per_day,
        "files": len(report.files_written),
        "simulator_s": round(simulator_seconds, 3),
        "simulator_events_per_s": round(report.events / simulator_seconds),
        "reference_write_s": round(reference_seconds, 3),
        "reference_events_per_s": round(report.events / reference_seconds),
        "ratio_to_reference": round(simulator_seconds / reference_seconds, 3),
    }
    return save_and_print(
        "simulator",
        "simulate_to_landing vs encoding + writing prebuilt events, same writer, same run",
        result,
    )


if __name__ == "__main__":
    main()
