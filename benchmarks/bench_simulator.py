"""Simulator throughput: N events (default 1,000,000) into a temporary landing zone.

In the same run, a reference: the same number of simple prebuilt event dicts, encoded with the
contract's encoder and written through the same `LandingWriter` in the same batches, which is the
cost of the I/O alone. The ratio says how much simulating adds to it. Single process, numpy
limited to one thread. Usage: .venv/bin/python benchmarks/bench_simulator.py [--events N]

`--preset coveo` instead writes the Coveo-sized shop (`ShopConfig.preset`: 30 days, about 36 M
events, 50,000 products), each size in a fresh process: wall and CPU time, events/s and the
process's peak RSS, first for 7 of its days and then for all of them (memory must not grow
with the days), into --scratch (default /tmp; about 1 GB a week, deleted after). `--quick`
runs the same at a hundredth of the traffic (same catalogue), `--days N` one size only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# One thread for numpy's BLAS, set before anything imports numpy.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

from report import save_and_print  # noqa: E402

from recs_platform.events.contract import encode_event  # noqa: E402
from recs_platform.events.landing import LandingWriter  # noqa: E402
from recs_platform.simulation import PRESETS, ShopConfig, simulate_to_landing  # noqa: E402

DAYS = 14
# Events per session of the default shop, measured; only used to size the run.
EVENTS_PER_SESSION = 8.77
BATCH_LINES = 50_000
QUICK_SCALE = 0.01
_MEASURE_PRESET = """
import json, resource, sys, time
from pathlib import Path
from recs_platform.simulation import ShopConfig, simulate_to_landing
config = ShopConfig.from_json(sys.argv[1])
started, cpu_started = time.perf_counter(), time.process_time()
report = simulate_to_landing(config, Path(sys.argv[2]))
seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({
    "days": config.days, "family": config.family, "products": report.catalogue_items,
    "products_viewed": report.distinct_items_viewed, "sessions": report.sessions,
    "product_views": report.product_views, "events": report.events,
    "events_per_session": round(report.events / report.sessions, 2),
    "seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
    "events_per_s": round(report.events / seconds), "peak_rss_mb": round(peak_mb),
}))
"""


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


def measure_preset(config: ShopConfig, scratch: Path) -> dict:
    """Write `config` to a landing zone under `scratch` in a fresh process; its figures."""
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        output = subprocess.run(
            [sys.executable, "-c", _MEASURE_PRESET, config.to_json(), folder],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        landing_bytes = sum(path.stat().st_size for path in Path(folder).rglob("*.jsonl.gz"))
    return json.loads(output) | {"landing_mb": round(landing_bytes / 2**20)}


def preset_main(args: argparse.Namespace) -> dict:
    scale = QUICK_SCALE if args.quick else 1.0
    full = ShopConfig.preset(args.preset, scale=scale)
    sizes = [args.days] if args.days else [7, full.days]
    result = {"preset": args.preset, "scale": scale}
    for days in sizes:
        config = ShopConfig.preset(args.preset, scale=scale, days=days)
        result[f"{days}_days"] = measure_preset(config, args.scratch)
    if len(sizes) == 2:
        short, long = (result[f"{days}_days"] for days in sizes)
        result["peak_rss_ratio_long_vs_short"] = round(
            long["peak_rss_mb"] / short["peak_rss_mb"], 3
        )
    name = f"simulator_{args.preset}" + ("_quick" if args.quick else "")
    return save_and_print(name, f"simulate_to_landing, preset {args.preset}", result)


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000, help="events to simulate")
    parser.add_argument("--preset", choices=list(PRESETS), help="write a named shop instead")
    parser.add_argument("--quick", action="store_true", help=f"--preset at scale {QUICK_SCALE}")
    parser.add_argument("--days", type=int, help="--preset: only this many days")
    parser.add_argument("--scratch", type=Path, default=None, help="--preset: where (/tmp)")
    args = parser.parse_args()
    if args.preset:
        return preset_main(args)
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
