"""`make bench`: run every benchmark in this folder, print their tables, keep their JSON."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> int:
    failures = 0
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"\n### {script.name}", flush=True)
        failures += subprocess.run([sys.executable, str(script)], check=False).returncode != 0
    print(f"\nJSON results in {HERE / 'results'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
