"""A day's `raw_events` load and `dbt build` against the history behind it (issue 22 §3): goal,
the same day with 90 days of history at most 1.2x the day with 1 day of history.

Simulates a shop of `--events-per-day` landed rows a day (default about 100,000: 91 days, about
9.6 M rows, simulated in under a minute here) into one landing zone: the target DAY and the 90
days before it. Then, for each history H of `--histories` (default 1, 7, 30, 90), a warehouse of
its own: the H days before DAY loaded into `raw.events` by the production loader
(`load_raw_events_partition`), and built by one `dbt build` of their window (a one-run backfill,
as Dagster's backfill policy runs it). DAY itself is then loaded and built once (not measured:
the run that first writes DAY), and `--repeats` times, the order of the histories rotated each
time, each in a fresh process:

- the load of DAY: connect to the warehouse, `load_raw_events_partition` (DELETE the day, INSERT
  it again), close; timed inside the process (wall clock and CPU), as the `raw_events` asset
  runs it;
- `dbt build` of DAY's partition, as the Dagster asset `daily_dbt_models` runs it
  (`dbt_build_args()`, the window in the environment as `dbt_run_env(partition_window_env(DAY,
  DAY + 1))` gives it, `--select DAILY_BUILD_SELECTOR`, target `local`, a fresh target folder
  holding the parsed project's `partial_parse.msgpack`); the process's wall clock, and its CPU
  time (user + system, every thread and child): on the shared 2-core machine the wall clock of
  the same run varies up to 2x with what else runs, the CPU time is the work's own;
- with `--baseline-dbt-project-dir DIR` (another version of the project, e.g. `git archive
  COMMIT dbt_project | tar -x -C /tmp/before`), the same build by that project, right after,
  on the same warehouse: both versions measured under the same load of the shared machine;
- dbt's floor: `dbt run` of a throwaway project whose only model is the hand-written reference
  statement of `bench_dbt_sessionization.sql` (each of its two forms of "landed on an earlier
  day"; the faster median counts), as `bench_dbt_sessionization.py` measures it. That statement
  looks up the day's ids in every earlier day, as stg_events did before issue 22, and with real
  consecutive days it also counts into DAY a session that began the day before: it is the cost
  of that statement, not checked row for row against dbt's sessions here.

Medians over the repeats; `day` = load + dbt build; ratios against the least history, of the
wall clock and of the CPU time. The per-model seconds (dbt's run_results.json) and the split of
the models' statements into query and replacing the day (dbt's log) show what grows with
history.

Usage: .venv/bin/python benchmarks/bench_daily_history.py [--events-per-day N] [--repeats R]
[--histories 1,7,30,90] [--baseline-dbt-project-dir DIR] [--no-floor] [--scratch DIR] (keeps
the landing zone and the warehouses there; a landing zone of the same shop is reused, the
warehouses are always rebuilt) [--quick] (a tiny shop and histories 1, 2, 4: a smoke run of the
whole script in about two minutes, saved as `daily_history_quick.json`).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# One thread for numpy's BLAS (the simulator), set before anything imports numpy.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import duckdb  # noqa: E402
from bench_dbt_sessionization import (  # noqa: E402
    _FLOOR_PROJECT,
    EARLIER_EVENTS,
    REFERENCE_SQL,
    dbt_process_env,
    floor_model_name,
    model_statement_seconds,
    node_seconds,
)
from report import RESULTS, save_and_print  # noqa: E402

from recs_platform.events.landing import list_local_partition  # noqa: E402
from recs_platform.simulation import ShopConfig, simulate_to_landing  # noqa: E402
from recs_platform.transform.dbt_invocation import (  # noqa: E402
    DAILY_BUILD_SELECTOR,
    DBT_EXECUTABLE,
    DBT_PROJECT_DIR,
    dbt_build_args,
    dbt_run_env,
    no_window_env,
    partition_window_env,
)
from recs_platform.warehouse.duckdb_raw import (  # noqa: E402
    ensure_raw_tables,
    load_raw_events_partition,
)

DAY = dt.date(2026, 11, 1)
ONE_DAY = dt.timedelta(days=1)
# Rows landed per session of the default shop, measured; only used to size the run.
ROWS_PER_SESSION = 8.68
TARGET = "local"
QUICK = {"events_per_day": 3_000, "histories": (1, 2, 4), "repeats": 2}

# Loads DAY in a process of its own and prints the wall and CPU seconds of connect + load +
# close, and the rows loaded.
_LOAD_PROCESS = """
import datetime as dt, sys, time
from pathlib import Path
import duckdb
from recs_platform.events.landing import list_local_partition
from recs_platform.warehouse.duckdb_raw import load_raw_events_partition
landing, day = Path(sys.argv[2]), dt.date.fromisoformat(sys.argv[3])
files = list_local_partition(landing, day)
started, cpu_started = time.perf_counter(), time.process_time()
conn = duckdb.connect(sys.argv[1])
load = load_raw_events_partition(conn, landing, day, files)
conn.close()
print(time.perf_counter() - started, time.process_time() - cpu_started, load.rows)
"""

# Runs the measured command and nothing else: its wall clock, and the CPU time (user + system,
# all threads) of it and its children. On the shared 2-core machine the wall clock of the same
# run varies by 2x with what else runs; the CPU time is what the work itself costs.
_MEASURING_PARENT = """
import json, resource, subprocess, sys, time
with open(sys.argv[2], "wb") as log:
    started = time.perf_counter()
    returncode = subprocess.run(sys.argv[3:], stdout=log, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as out:
    json.dump({"returncode": returncode, "seconds": seconds,
               "cpu_seconds": usage.ru_utime + usage.ru_stime}, out)
"""


@dataclasses.dataclass
class Measured:
    seconds: float
    cpu_seconds: float
    log: Path


def run_process(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> Measured:
    """Run a command to its end in a small parent of its own: wall clock and CPU time."""
    measurement = log.with_name(log.name + ".measured.json")
    subprocess.run(
        [sys.executable, "-c", _MEASURING_PARENT, str(measurement), str(log), *command],
        env=env,
        cwd=cwd,
        check=True,
    )
    result = json.loads(measurement.read_text())
    if result["returncode"] != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(command)} failed ({result['returncode']}):\n{tail}")
    return Measured(result["seconds"], result["cpu_seconds"], log)


class Dbt:
    """The dbt CLI as dagster-dbt's DbtCliResource runs it for the local target, on the
    warehouse under `data_dir`."""

    def __init__(self, data_dir: Path, project_dir: Path, name: str = "dbt"):
        self.data_dir = data_dir
        self.project_dir = project_dir
        self.runs = 0
        self.parsed = data_dir / f"{name}_parsed"
        self.run_folders = data_dir / f"{name}_runs"

    def env(self, target_path: Path, window: dict[str, str | None]) -> dict[str, str]:
        return dbt_process_env(dbt_run_env(window), self.data_dir, self.project_dir, target_path)

    def parse(self) -> None:
        """`make dbt-manifest`: the parsed project whose partial_parse.msgpack each run gets."""
        self.parsed.mkdir(exist_ok=True)
        run_process(
            [str(DBT_EXECUTABLE), "parse", "--target", TARGET],
            self.env(self.parsed, no_window_env()),
            self.data_dir,
            self.parsed / "stdout.log",
        )

    def __call__(self, args: list[str], window: dict[str, str | None]) -> tuple[Measured, dict]:
        """One dbt command in a fresh target folder holding the parsed project's partial parse."""
        self.runs += 1
        target_path = self.run_folders / f"{self.runs:03d}"
        target_path.mkdir(parents=True)
        shutil.copy(self.parsed / "partial_parse.msgpack", target_path)
        command = [str(DBT_EXECUTABLE), *args, "--target", TARGET]
        measured = run_process(
            command, self.env(target_path, window), self.data_dir, target_path / "out"
        )
        results = json.loads((target_path / "run_results.json").read_text())
        return measured, results


def daily_build_args() -> list[str]:
    return [*dbt_build_args(), "--select", DAILY_BUILD_SELECTOR]


def write_floor_project(data_dir: Path, day: dt.date) -> Path:
    """A dbt project whose only models are the reference statement in its two forms, with the
    day as literals (as `bench_dbt_sessionization.write_floor_project` writes it for its day)."""
    project = data_dir / "floor_project"
    shutil.rmtree(project, ignore_errors=True)
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(_FLOOR_PROJECT.lstrip())
    _, separator, query = REFERENCE_SQL.read_text().partition(
        "create or replace table handwritten.sessions as\n"
    )
    assert separator, f"{REFERENCE_SQL} no longer creates handwritten.sessions"
    for form, earlier_events in EARLIER_EVENTS.items():
        model = query.replace("{earlier_events}", earlier_events)
        for parameter, date in (("$min_date", day), ("$max_date", day + ONE_DAY)):
            model = model.replace(parameter, f"cast('{date.isoformat()}' as date)")
        (project / "models" / f"{floor_model_name(form)}.sql").write_text(model)
    return project


@dataclasses.dataclass
class History:
    """One warehouse: `days` days of history before DAY, and the dbt projects run on it."""

    days: int
    data_dir: Path
    # The dbt projects whose builds are measured, by name: "dbt" (the one that built the
    # history) and, if asked for, "baseline".
    builds: dict[str, Dbt]
    floor: Dbt

    @property
    def warehouse(self) -> Path:
        return self.data_dir / "warehouse.duckdb"


def shop_config(events_per_day: int, history_days: int) -> ShopConfig:
    sessions_per_day = max(1, round(events_per_day / ROWS_PER_SESSION))
    return ShopConfig(
        start=DAY - history_days * ONE_DAY, days=history_days + 1, sessions_per_day=sessions_per_day
    )


def simulate(landing: Path, config: ShopConfig) -> dict:
    """The shop into `landing`, unless a shop of the same days, size and seed is there already
    (so that runs of different dbt projects, or code, measure the same events)."""
    marker = landing / "bench_shop.json"
    wanted = {
        "start": config.start.isoformat(),
        "days": config.days,
        "sessions_per_day": config.sessions_per_day,
        "seed": config.seed,
    }
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return {"simulate_s": "reused"}
    shutil.rmtree(landing, ignore_errors=True)
    started = time.perf_counter()
    simulate_to_landing(config, landing)
    seconds = time.perf_counter() - started
    marker.write_text(json.dumps(wanted))
    return {"simulate_s": round(seconds, 1)}


def prepare(
    scratch: Path, landing: Path, days: int, projects: dict[str, Path]
) -> tuple[History, dict]:
    """A warehouse holding the `days` days before DAY, loaded and built in one dbt run."""
    data_dir = scratch / f"history_{days:03d}"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    history = History(
        days,
        data_dir,
        {name: Dbt(data_dir, project, name=name) for name, project in projects.items()},
        Dbt(data_dir, write_floor_project(data_dir, DAY), name="dbt_floor"),
    )
    history_days = [DAY - offset * ONE_DAY for offset in range(days, 0, -1)]
    started = time.perf_counter()
    rows = 0
    with duckdb.connect(str(history.warehouse)) as conn:
        conn.execute("SET enable_progress_bar = false")
        ensure_raw_tables(conn)
        for day in history_days:
            files = list_local_partition(landing, day)
            rows += load_raw_events_partition(conn, landing, day, files).rows
    load_seconds = time.perf_counter() - started
    for dbt in (*history.builds.values(), history.floor):
        dbt.parse()
    dbt = history.builds["dbt"]
    backfill, _ = dbt(daily_build_args(), partition_window_env(history_days[0], DAY))
    # The run that first writes DAY: not measured (the repeats replace a day that exists).
    load_day(history, landing)
    dbt(daily_build_args(), partition_window_env(DAY, DAY + ONE_DAY))
    return history, {
        "history_rows": rows,
        "history_load_s": round(load_seconds, 1),
        "history_backfill_dbt_build_s": round(backfill.seconds, 1),
    }


def load_day(history: History, landing: Path) -> tuple[float, float, int]:
    """Wall and CPU seconds of DAY's load, and its rows."""
    log = history.data_dir / "load_day.log"
    run_process(
        [
            sys.executable,
            "-c",
            _LOAD_PROCESS,
            str(history.warehouse),
            str(landing),
            DAY.isoformat(),
        ],
        dict(os.environ),
        history.data_dir,
        log,
    )
    seconds, cpu_seconds, rows = log.read_text().split()[-3:]
    return float(seconds), float(cpu_seconds), int(rows)


def measure(histories: list[History], landing: Path, repeats: int, floor: bool) -> dict:
    """Samples by history, then by measure ("load_s", "<build> day_s", "<build> model X_s"...)."""
    samples: dict[int, dict[str, list[float]]] = {h.days: {} for h in histories}
    day_rows = {}
    window = partition_window_env(DAY, DAY + ONE_DAY)
    for repeat in range(repeats):
        # Rotate the order so that a burst of load on the shared machine hits each history alike.
        shift = repeat % len(histories)
        for history in histories[shift:] + histories[:shift]:

            def add(name: str, value: float, samples_of_history=samples[history.days]) -> None:
                samples_of_history.setdefault(name, []).append(value)

            load_seconds, load_cpu_seconds, day_rows[history.days] = load_day(history, landing)
            add("load_s", load_seconds)
            add("load_cpu_s", load_cpu_seconds)
            names = list(history.builds)
            for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
                build, results = history.builds[name](daily_build_args(), window)
                add(f"{name} dbt_build_s", build.seconds)
                add(f"{name} dbt_build_cpu_s", build.cpu_seconds)
                add(f"{name} day_s", load_seconds + build.seconds)
                add(f"{name} day_cpu_s", load_cpu_seconds + build.cpu_seconds)
                seconds = node_seconds(results)
                add(f"{name} models_sql_s", seconds["model"])
                add(f"{name} tests_sql_s", seconds["test"])
                statements = model_statement_seconds(build.log.parent / "dbt.log")
                add(f"{name} models_query_s", statements["query"])
                add(f"{name} models_write_day_s", statements["write_day"])
                for result in results["results"]:
                    if result["unique_id"].startswith("model."):
                        model = result["unique_id"].rsplit(".", 1)[1]
                        add(f"{name} model {model}_s", result["execution_time"])
            if floor:
                for form in EARLIER_EVENTS:
                    measured, _ = history.floor(["run", "--select", floor_model_name(form)], window)
                    add(f"dbt_floor {form}_s", measured.seconds)
                    add(f"dbt_floor {form}_cpu_s", measured.cpu_seconds)
    return {"samples": samples, "day_rows": day_rows}


def median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def summarize(measured: dict, setups: dict[int, dict], builds: list[str], floor: bool) -> dict:
    """By history: the medians of each build (and of the floor), and the ratios to the least
    history."""
    rows: dict[int, dict] = {}
    for days, samples in measured["samples"].items():
        medians = {name: median(values) for name, values in samples.items()}
        row: dict = {"load_s": medians["load_s"], "load_cpu_s": medians["load_cpu_s"]}
        for build in builds:
            prefix = f"{build} "
            row[build] = {
                "day_s": medians[f"{build} day_s"],
                "day_cpu_s": medians[f"{build} day_cpu_s"],
                "dbt_build_s": medians[f"{build} dbt_build_s"],
                "dbt_build_cpu_s": medians[f"{build} dbt_build_cpu_s"],
                "models_sql_s": medians[f"{build} models_sql_s"],
                "models_query_s": medians[f"{build} models_query_s"],
                "models_write_day_s": medians[f"{build} models_write_day_s"],
                "tests_sql_s": medians[f"{build} tests_sql_s"],
                "sql_s_per_model": {
                    name.removeprefix(f"{prefix}model ").removesuffix("_s"): value
                    for name, value in medians.items()
                    if name.startswith(f"{prefix}model ")
                },
                "samples_day_s": [round(value, 2) for value in samples[f"{build} day_s"]],
                "samples_day_cpu_s": [round(value, 2) for value in samples[f"{build} day_cpu_s"]],
            }
        if floor:
            floors = {form: medians[f"dbt_floor {form}_s"] for form in EARLIER_EVENTS}
            fastest = min(floors, key=floors.get)
            row["dbt_floor_s"] = floors[fastest]
            row["dbt_floor_cpu_s"] = medians[f"dbt_floor {fastest}_cpu_s"]
            row["dbt_floor_s_by_form"] = floors
            for build in builds:
                numbers = row[build]
                numbers["ratio_dbt_build_vs_floor"] = round(
                    numbers["dbt_build_s"] / row["dbt_floor_s"], 2
                )
                numbers["ratio_dbt_build_cpu_vs_floor_cpu"] = round(
                    numbers["dbt_build_cpu_s"] / row["dbt_floor_cpu_s"], 2
                )
        row.update(setups[days])
        rows[days] = row
    least = rows[min(rows)]
    for row in rows.values():
        for build in builds:
            for measure in ("day_s", "day_cpu_s", "dbt_build_s", "models_sql_s"):
                ratio = row[build][measure] / least[build][measure]
                row[build][f"ratio_{measure.removesuffix('_s')}_vs_least_history"] = round(ratio, 3)
    return rows


def summary_line(row: dict, build: str) -> str:
    numbers = row[build]
    line = (
        f"wall {numbers['day_s']:.2f} s (load {row['load_s']:.2f} + build "
        f"{numbers['dbt_build_s']:.2f}) {numbers['ratio_day_vs_least_history']:.2f}x; "
        f"CPU {numbers['day_cpu_s']:.2f} s {numbers['ratio_day_cpu_vs_least_history']:.2f}x; "
        f"models' SQL {numbers['models_sql_s']:.2f} s "
        f"{numbers['ratio_models_sql_vs_least_history']:.2f}x"
    )
    if "ratio_dbt_build_vs_floor" in numbers:
        line += (
            f"; build/floor {numbers['ratio_dbt_build_vs_floor']} "
            f"(CPU {numbers['ratio_dbt_build_cpu_vs_floor_cpu']})"
        )
    return line


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events-per-day", type=int, default=100_000)
    parser.add_argument("--histories", default="1,7,30,90", help="days of history, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-floor", action="store_true", help="skip dbt's floor")
    parser.add_argument("--scratch", type=Path, help="keep the landing zone and warehouses here")
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run")
    parser.add_argument(
        "--baseline-dbt-project-dir",
        type=Path,
        help="another version of the dbt project, measured alongside (e.g. from `git archive`)",
    )
    args = parser.parse_args()
    events_per_day, repeats = args.events_per_day, args.repeats
    histories = sorted({int(days) for days in args.histories.split(",")})
    if args.quick:
        events_per_day, histories, repeats = (
            QUICK["events_per_day"],
            list(QUICK["histories"]),
            QUICK["repeats"],
        )
    if min(histories) < 1:
        parser.error("every history needs at least 1 day")
    floor = not args.no_floor

    with tempfile.TemporaryDirectory() as temporary:
        scratch = (args.scratch or Path(temporary)).resolve()
        scratch.mkdir(parents=True, exist_ok=True)
        landing = scratch / "landing"
        config = shop_config(events_per_day, max(histories))
        setup = simulate(landing, config)
        projects = {"dbt": DBT_PROJECT_DIR}
        if args.baseline_dbt_project_dir:
            projects["baseline"] = args.baseline_dbt_project_dir.resolve()
        prepared = [prepare(scratch, landing, days, projects) for days in histories]
        measured = measure([history for history, _ in prepared], landing, repeats, floor)
        rows = summarize(measured, {h.days: s for h, s in prepared}, list(projects), floor)

    least, most = min(rows), max(rows)
    day_rows = measured["day_rows"][most]
    result = {
        "day": DAY.isoformat(),
        "day_raw_rows": day_rows,
        "simulated_sessions_per_day": config.sessions_per_day,
        **setup,
        "repeats": repeats,
    }
    for build, project in projects.items():
        for days, row in rows.items():
            result[f"{build}, history {days} d"] = summary_line(row, build)
        ratio = rows[most][build]["ratio_day_vs_least_history"]
        cpu_ratio = rows[most][build]["ratio_day_cpu_vs_least_history"]
        result[f"{build}: day {most} vs {least} days of history, wall / CPU"] = [ratio, cpu_ratio]
        result[f"{build}: goal met ({most} days <= 1.2x {least}), wall / CPU"] = [
            ratio <= 1.2,
            cpu_ratio <= 1.2,
        ]
        if floor:
            result[f"{build}: dbt build / floor, {least} day of history, wall / CPU"] = [
                rows[least][build]["ratio_dbt_build_vs_floor"],
                rows[least][build]["ratio_dbt_build_cpu_vs_floor_cpu"],
            ]
        result[f"{build} project"] = str(project)
    name = "daily_history_quick" if args.quick else "daily_history"
    save_and_print(
        name,
        f"one day ({day_rows:,} raw rows): raw_events load + dbt build with "
        f"{', '.join(map(str, histories))} days of history before it (medians of {repeats})",
        result,
    )
    # The per-history details (per-model seconds, samples, setup) go into the JSON only.
    result["by_history_days"] = rows
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
