"""Coveo import: throughput and whether memory stays flat as the file grows.

Writes Coveo-format CSV files of N and 10 N rows (rows shuffled within a few minutes, as in the
real file), imports each in a fresh subprocess and reports rows/s and the peak resident memory of
that process. Flat memory means the 10x file peaks at about the same memory as the small one.
Usage: .venv/bin/python benchmarks/bench_coveo_import.py [--rows N]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from report import save_and_print

from recs_platform.importers.coveo import COVEO_COLUMNS

HEADER = ",".join(COVEO_COLUMNS)
START_MS = 1_546_300_800_000  # 2019-01-01
_MEASURE = """
import resource, sys, time
from pathlib import Path
from recs_platform.importers.coveo import import_coveo
started = time.perf_counter()
summary = import_coveo(Path(sys.argv[1]), Path(sys.argv[2]))
seconds = time.perf_counter() - started
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(summary.events, seconds, peak_kb)
"""


def write_csv(path: Path, rows: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    skus = [hashlib.sha256(f"sku{n}".encode()).hexdigest() for n in range(2000)]
    with open(path, "w") as out:
        out.write(HEADER + "\n")
        for number in range(rows):
            session = hashlib.sha256(f"s{number // 8}".encode()).hexdigest()
            ts = START_MS + number * 900 + rng.randint(-60_000, 60_000)  # ~2.5 weeks per 1.7M rows
            if rng.random() < 0.3:
                out.write(f"{session},pageview,,,{ts},{skus[number % 7]}\n")
            else:
                sku = skus[rng.randrange(len(skus))]
                out.write(f"{session},event_product,detail,{sku},{ts},{sku}\n")


def measure(csv_path: Path, landing: Path) -> tuple[int, float, float]:
    output = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(csv_path), str(landing)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return int(output[0]), float(output[1]), int(output[2]) / 1024


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    result = {}
    with tempfile.TemporaryDirectory() as scratch:
        for label, rows in (("small", args.rows), ("large", args.rows * 10)):
            csv_path = Path(scratch) / f"{label}.csv"
            write_csv(csv_path, rows)
            events, seconds, peak_mb = measure(csv_path, Path(scratch) / f"landing-{label}")
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
