"""Collector throughput and latency with durability on, against a bare GIF-only ASGI app.

One uvicorn worker each, loaded by `wrk` (Debian package `wrk`) from the other core:
- pixel: `GET /i?<one valid event>`;
- batch: `POST /collect` with a JSON array of 100 valid events.
Every 2xx of the collector means the events were written and fsynced (group commit).
Usage: .venv/bin/python benchmarks/bench_collector.py [--seconds 10] [--connections 64]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import orjson
from local_servers import free_port
from report import save_and_print

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent
BATCH = 100


def wait_until_up(port: int, process: subprocess.Popen) -> None:
    import httpx2 as httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("server did not come up")


def wrk(url: str, seconds: int, connections: int, script: Path | None = None) -> dict:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script:
        command[1:1] = ["-s", str(script)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)

    def latency_ms(percentile: str) -> float:
        value, unit = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)$", output, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": latency_ms("50"),
        "p99_ms": latency_ms("99"),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def serve(command: list[str], port: int, environ: dict) -> subprocess.Popen:
    process = subprocess.Popen(
        command,
        env={**os.environ, **environ},
        cwd=HERE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until_up(port, process)
    return process


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench_collector needs wrk: apt-get install wrk")
    now = int(time.time() * 1000)
    event = {
        "session_id": "bench",
        "event_type": "event_product",
        "product_action": "detail",
        "product_sku": "sku-000001",
        "url": "/p/sku-000001",
        "client_ts": now,
    }
    pixel_query = urlencode(event)
    batch_body = orjson.dumps([event] * BATCH).decode()
    result: dict = {"seconds": args.seconds, "connections": args.connections, "batch_events": BATCH}
    with tempfile.TemporaryDirectory() as scratch:
        script = Path(scratch) / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = [==[{batch_body}]==]\n"
        )
        servers = {
            "bare": lambda port: (
                [
                    str(BIN / "python"),
                    "-m",
                    "uvicorn",
                    "bare_pixel_app:app",
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                {},
            ),
            "collector": lambda port: (
                [str(BIN / "recs-platform"), "collector", "--port", str(port)],
                {"RECS_DATA_DIR": scratch},
            ),
        }
        for name, command_for in servers.items():
            port = free_port()
            command, environ = command_for(port)
            server = serve(command, port, environ)
            base = f"http://127.0.0.1:{port}"
            try:
                result[f"{name}_pixel"] = wrk(
                    f"{base}/i?{pixel_query}", args.seconds, args.connections
                )
                result[f"{name}_post"] = wrk(
                    f"{base}/collect", args.seconds, args.connections, script
                )
            finally:
                server.terminate()
                server.wait()
        landed_bytes = sum(p.stat().st_size for p in Path(scratch).rglob("*.jsonl"))
    result["collector_post_events_per_s"] = round(
        result["collector_post"]["requests_per_s"] * BATCH
    )
    result["pixel_throughput_ratio_vs_bare"] = round(
        result["collector_pixel"]["requests_per_s"] / result["bare_pixel"]["requests_per_s"], 3
    )
    result["landed_mb"] = round(landed_bytes / 1e6, 1)
    return save_and_print(
        "collector", "collector (durable) vs bare GIF app, one uvicorn worker", result
    )


if __name__ == "__main__":
    main()
