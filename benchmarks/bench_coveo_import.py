"""Coveo import: throughput and whether memory stays flat as the file grows.

Writes Coveo-format CSV files of N and 10 N rows (rows shuffled within a few minutes, as in the
real file), imports each in a fresh subprocess and reports rows/s and the peak resident memory of
that process. Flat memory means the 10x file peaks at about the same memory as the small one.
`--full` instead measures one file the size of the real `browsing_train.csv` (36 M rows, about
8 GB of CSV under the scratch folder, deleted after), with the importer's CPU time beside its
wall time (the wall time suffers when another process shares the cores).
Usage: .venv/bin/python benchmarks/bench_coveo_import.py [--rows N | --full] [--scratch DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import save_and_print

from recs_platform.importers.coveo import COVEO_COLUMNS

HEADER = ",".join(COVEO_COLUMNS)
START_MS = 1_546_300_800_000  # 2019-01-01
# The real browsing_train.csv: about 36 M rows, 57,000 products.
FULL_ROWS = 36_000_000
FULL_SKUS = 57_000
_MEASURE = """
import resource, sys, time
from pathlib import Path
from recs_platform.importers.coveo import import_coveo
started = time.perf_counter()
summary = import_coveo(Path(sys.argv[1]), Path(sys.argv[2]))
seconds = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_SELF)
print(summary.events, seconds, usage.ru_maxrss, usage.ru_utime + usage.ru_stime)
"""


def write_csv(path: Path, rows: int, seed: int = 1, n_skus: int = 2000) -> None:
    """`rows` rows, 8 per session, 30 % page views; timestamps 900 ms apart on average
    (~2.5 weeks per 1.7 M rows, a year for the full file), each shifted by up to a minute."""
    rng = random.Random(seed)
    skus = [hashlib.sha256(f"sku{n}".encode()).hexdigest() for n in range(n_skus)]
    with open(path, "w") as out:
        out.write(HEADER + "\n")
        for number in range(rows):
            session = hashlib.sha256(f"s{number // 8}".encode()).hexdigest()
            ts = START_MS + number * 900 + rng.randint(-60_000, 60_000)
            if rng.random() < 0.3:
                out.write(f"{session},pageview,,,{ts},{skus[number % 7]}\n")
            else:
                sku = skus[rng.randrange(len(skus))]
                out.write(f"{session},event_product,detail,{sku},{ts},{sku}\n")


def measure(csv_path: Path, landing: Path) -> tuple[int, float, float, float]:
    """(events, wall seconds, peak RSS in MB, CPU seconds) of one import in a fresh process."""
    output = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(csv_path), str(landing)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return int(output[0]), float(output[1]), int(output[2]) / 1024, float(output[3])


def landing_megabytes(landing: Path) -> float:
    return sum(path.stat().st_size for path in landing.rglob("*") if path.is_file()) / 2**20


def measure_full(scratch: Path) -> dict:
    csv_path = scratch / "browsing_train.csv"
    started = time.perf_counter()
    write_csv(csv_path, FULL_ROWS, n_skus=FULL_SKUS)
    csv_seconds = time.perf_counter() - started
    landing = scratch / "landing-full"
    events, seconds, peak_mb, cpu_seconds = measure(csv_path, landing)
    assert events == FULL_ROWS
    return {
        "rows": FULL_ROWS,
        "csv_mb": round(csv_path.stat().st_size / 2**20),
        "csv_write_s": round(csv_seconds, 1),
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
        "rows_per_s": round(FULL_ROWS / seconds),
        "peak_rss_mb": round(peak_mb, 1),
        "landing_mb": round(landing_megabytes(landing)),
        "landing_files": sum(1 for _ in landing.rglob("*.jsonl*")),
    }


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument(
        "--full", action="store_true", help=f"one file of {FULL_ROWS:,} rows, the real size"
    )
    parser.add_argument("--scratch", type=Path, default=None, help="where the files go (/tmp)")
    args = parser.parse_args()
    result = {}
    with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
        if args.full:
            result = measure_full(Path(scratch))
            save_and_print("coveo_import_full", "Coveo import: a file the real size", result)
            return result
        for label, rows in (("small", args.rows), ("large", args.rows * 10)):
            csv_path = Path(scratch) / f"{label}.csv"
            write_csv(csv_path, rows)
            events, seconds, peak_mb, _ = measure(csv_path, Path(scratch) / f"landing-{label}")
            assert events == rows
            result[label] = {
                "rows": rows,
                "seconds": round(seconds, 2),
                "rows_per_s": round(rows / seconds),
                "peak_rss_mb": round(peak_mb, 1),
            }
    result["peak_memory_ratio_large_vs_small"] = round(
        result["large"]["peak_rss_mb"] / result["small"]["peak_rss_mb"], 3
    )
    save_and_print("coveo_import", "Coveo import: same code, a file 10x larger", result)
    return result


if __name__ == "__main__":
    main()
