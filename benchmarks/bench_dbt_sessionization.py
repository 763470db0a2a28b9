"""One day's `dbt build` against one hand-written DuckDB statement doing the same dedupe and
sessionization (issue 4 §7): goal, dbt at most 2x the hand-written query.

Simulates one day of about N landed events (default 2,000,000) with the shop simulator, loads it
into `raw.events` with the production loader, then builds it once with dbt (the tables do not
exist yet: the first-run path, reported but not compared). Then, in the same run, `--repeats`
times in turn, each in a fresh process whose wall clock and peak RSS are measured (by a small
Python parent that runs only that process, so the peak is the command's own):

- `dbt build` of that partition: the command the Dagster asset `daily_dbt_models` runs
  (`dbt_build_args()` with the environment `dbt_run_env(partition_window_env(day, day + 1))`:
  the window, and dbt's `buildable` indirect selection, so a test runs only when every model
  it reads is selected or upstream), `--select DAILY_BUILD_SELECTOR` (the incremental models
  and the tests of the raw.events source), target `local`, JSON logs, a fresh target folder
  holding a copy of the parsed project's `partial_parse.msgpack`, as dagster-dbt does). The
  tables exist, so each run is the incremental one that replaces the day;
- `dbt run` of the same selection (the models without the data tests);
- dbt with nothing selected (startup and partial parse, no SQL: dbt's fixed cost), the window
  in the environment as the asset passes it, and the same with the window as `--vars` instead
  (how the asset passed it before: dbt then re-parses the whole project);
- the reference, `bench_dbt_sessionization.sql` (one statement: dedupe + sessions of the day),
  in each of two forms of "landed on an earlier day" (EARLIER_EVENTS: every earlier id, or only
  the day's ids looked up in the earlier days, as stg_events does; the first is faster without
  history, the second with it; the faster median is the reference), each in a Python process
  of its own on the same DuckDB file, writing `handwritten.sessions`;
- dbt's floor for this work: `dbt run` of a throwaway dbt project (written under the scratch
  folder, same profile and warehouse) whose only model is the reference statement itself, in
  each of the two forms (the faster median counts), materialized as a table as the reference
  writes one: dbt's fixed cost plus the reference's own work, what a dbt run doing that work
  and nothing more costs. `floor / reference` is the ratio such a run reaches, and
  `2 x reference - floor` the time the goal leaves for everything the issue asks for besides
  (a persisted, typed staging layer, the other marts, the data tests).

Medians over the repeats; the ratio is dbt build / reference, process wall clock on both sides.
The per-model and per-test times come from dbt's run_results.json. The reference's table is
checked against dbt's `analytics.sessions` rows of the day (same count, and no row in either
but not the other), so the two sides did the same work.

With `--history-days H` the measured day sits on H earlier days of history, as a day does in
production: copies of the simulated day moved 1..H days earlier (new event and session ids,
clocks and partition shifted, the JSON payload patched to match), built by the first dbt run.
A day's run should cost about the same whatever history lies behind it; this shows whether it
does. The result is saved as `dbt_sessionization_history{H}.json`.

Usage: .venv/bin/python benchmarks/bench_dbt_sessionization.py [--events N] [--repeats R]
[--history-days H] [--scratch DIR] (a folder to keep the data in; a folder holding a warehouse
from an earlier run is reused as it is: no simulation, no load, no first build).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
from report import save_and_print

from recs_platform.events.landing import list_local_partition
from recs_platform.simulation import ShopConfig, simulate_to_landing
from recs_platform.transform.dbt_invocation import (
    DAILY_BUILD_SELECTOR,
    DBT_EXECUTABLE,
    DBT_PROJECT_DIR,
    INCREMENTAL_SELECTOR,
    WINDOW_ENV_VARS,
    dbt_build_args,
    dbt_run_env,
    partition_window_env,
    partition_window_vars,
)
from recs_platform.warehouse.duckdb_raw import ensure_raw_tables, load_raw_events_partition

HERE = Path(__file__).parent
REFERENCE_SQL = HERE / "bench_dbt_sessionization.sql"
DAY = dt.date(2026, 11, 1)
ONE_DAY = dt.timedelta(days=1)
# Rows landed on the first day per session of the default shop, measured (duplicates included,
# late events excluded); only used to size the run.
ROWS_PER_SESSION = 8.68
TARGET = "local"

# The events that landed on an earlier day, in the reference's two forms.
EARLIER_EVENTS = {
    "every_earlier_id": "select event_id from raw.events where event_date < $min_date",
    "day_ids_in_earlier_days": (
        "select event_id from raw.events where event_date < $min_date and event_id in "
        "(select event_id from raw.events where event_date >= $min_date "
        "and event_date < $max_date)"
    ),
}

_REFERENCE_PROCESS = """
import datetime as dt, sys, time
import duckdb
conn = duckdb.connect(sys.argv[1])
conn.execute("SET enable_progress_bar = false")
conn.execute("CREATE SCHEMA IF NOT EXISTS handwritten")
day = dt.date.fromisoformat(sys.argv[3])
statement = open(sys.argv[2]).read().replace("{earlier_events}", sys.argv[4])
started = time.perf_counter()
conn.execute(statement, {"min_date": day, "max_date": day + dt.timedelta(days=1)})
print(time.perf_counter() - started)
conn.close()
"""


@dataclass
class Measured:
    seconds: float
    peak_rss_mb: float
    log: Path


# Runs the measured command and nothing else, so that the peak RSS of its children is the
# command's own (a child forked from the benchmark's large process would report that one's).
_MEASURING_PARENT = """
import json, resource, subprocess, sys, time
with open(sys.argv[2], "wb") as log:
    started = time.perf_counter()
    returncode = subprocess.run(sys.argv[3:], stdout=log, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - started
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(sys.argv[1], "w") as out:
    json.dump({"returncode": returncode, "seconds": seconds, "peak_rss_kib": peak_kib}, out)
"""


def run_process(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> Measured:
    """Run a command to its end in a small parent of its own: wall clock and peak RSS."""
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
    return Measured(result["seconds"], result["peak_rss_kib"] / 1024, log)  # KiB on Linux


def dbt_process_env(
    run_env: dict[str, str | None], data_dir: Path, project_dir: Path, target_path: Path
) -> dict[str, str]:
    """The environment of one dbt CLI process of a benchmark: this one's without any partition
    window, then `run_env` (unset values left out), the data folder, the project, and the target
    and log folder `target_path` (JSON logs, which the timings are read from)."""
    base = {name: value for name, value in os.environ.items() if name not in WINDOW_ENV_VARS}
    return {
        **base,
        **{name: value for name, value in run_env.items() if value is not None},
        "RECS_DATA_DIR": str(data_dir),
        "DBT_PROJECT_DIR": str(project_dir),
        "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
        "DBT_TARGET_PATH": str(target_path),
        "DBT_LOG_PATH": str(target_path),
        "DBT_LOG_FORMAT": "json",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "PYTHONUNBUFFERED": "1",
    }


class Dbt:
    """The dbt CLI as dagster-dbt's DbtCliResource runs it for the local target."""

    def __init__(self, scratch: Path, project_dir: Path = DBT_PROJECT_DIR, name: str = "dbt"):
        self.scratch = scratch
        self.project_dir = project_dir
        self.runs = 0
        self.parsed = scratch / f"{name}_parsed"
        self.run_folders = scratch / f"{name}_runs"

    def env(self, target_path: Path, window: bool = True) -> dict[str, str]:
        run_env = dbt_run_env(partition_window_env(DAY, DAY + ONE_DAY)) if window else {}
        return dbt_process_env(run_env, self.scratch, self.project_dir, target_path)

    def parse(self) -> None:
        """`make dbt-manifest`: the parsed project whose partial_parse.msgpack each run gets."""
        self.parsed.mkdir(exist_ok=True)
        run_process(
            [str(DBT_EXECUTABLE), "parse", "--target", TARGET],
            self.env(self.parsed, window=False),
            self.scratch,
            self.parsed / "stdout.log",
        )

    def __call__(self, args: list[str], target_path: Path | None = None) -> tuple[Measured, dict]:
        """One dbt command; a fresh target folder (with the parsed project's partial-parse file)
        unless `target_path` names an existing one."""
        if target_path is None:
            self.runs += 1
            target_path = self.run_folders / f"{self.runs:03d}"
            target_path.mkdir(parents=True)
            shutil.copy(self.parsed / "partial_parse.msgpack", target_path)
        command = [str(DBT_EXECUTABLE), *args, "--target", TARGET]
        measured = run_process(command, self.env(target_path), self.scratch, target_path / "out")
        results = json.loads((target_path / "run_results.json").read_text())
        return measured, results


def node_seconds(results: dict) -> dict[str, float]:
    """dbt's own execution time of the models and of the tests of a run."""
    totals = {"model": 0.0, "test": 0.0}
    for result in results["results"]:
        kind = result["unique_id"].split(".", 1)[0]
        totals[kind] = totals.get(kind, 0.0) + result["execution_time"]
    return totals


def model_statement_seconds(dbt_log: Path) -> dict[str, float]:
    """Time of the models' SQL statements by kind, from dbt's JSON log: the model's query
    (`create [temporary] table ... as`), and replacing the day in the table (dbt-duckdb's
    delete+insert: `delete from ... ; insert into ...`)."""
    totals = {"query": 0.0, "write_day": 0.0, "other": 0.0}
    sql, connection = None, ""
    for line in dbt_log.read_text().splitlines():
        event = json.loads(line)
        if event["info"]["name"] == "SQLQuery":
            sql, connection = event["data"]["sql"], event["data"]["conn_name"]
        elif event["info"]["name"] == "SQLQueryStatus" and sql is not None:
            if connection.startswith("model."):
                text = " ".join(re.sub(r"/\*.*?\*/", "", sql, count=1, flags=re.S).split()).lower()
                if re.match(r"create (temporary )?table", text):
                    kind = "query"
                elif "insert into" in text:
                    kind = "write_day"
                else:
                    kind = "other"
                totals[kind] += event["data"]["elapsed"]
            sql = None
    return totals


def add_history(conn: duckdb.DuckDBPyConnection, days: int) -> None:
    """Copies of DAY's raw rows as the `days` days before it: ids suffixed, clocks, partition,
    file names and payload shifted alike, so that every earlier day is as large as DAY and no
    event or session of one day is in another."""
    day_ms = 86_400_000
    for shift in range(1, days + 1):
        suffix = f"-h{shift}"
        conn.execute(
            """
            insert into raw.events
            select
                event_id || $suffix, session_id || $suffix, user_id, event_type, product_action,
                product_sku, url, client_ts - $shift_ms, server_ts - $shift_ms, source,
                cast(event_date - $shift as date),
                json_merge_patch(payload, json_object(
                    'event_id', event_id || $suffix, 'session_id', session_id || $suffix,
                    'client_ts', client_ts - $shift_ms, 'server_ts', server_ts - $shift_ms
                )),
                replace(source_file, $day_text, cast(cast(event_date - $shift as date) as varchar)),
                line_number
            from raw.events
            where event_date = $day
            """,
            {
                "suffix": suffix,
                "shift": shift,
                "shift_ms": shift * day_ms,
                "day": DAY,
                "day_text": DAY.isoformat(),
            },
        )


def prepare(scratch: Path, events: int, dbt: Dbt, history_days: int = 0) -> dict:
    """Simulate and load the day (and its history), parse the project, build it all once (the
    tables' first run)."""
    landing = scratch / "landing"
    config = ShopConfig(days=1, start=DAY)
    weekday_factor = config.sessions_on(0) / config.sessions_per_day
    sessions_per_day = max(1, round(events / ROWS_PER_SESSION / weekday_factor))
    config = ShopConfig(days=1, start=DAY, sessions_per_day=sessions_per_day)
    started = time.perf_counter()
    simulate_to_landing(config, landing)
    simulate_seconds = time.perf_counter() - started
    files = list_local_partition(landing, DAY)
    with duckdb.connect(str(scratch / "warehouse.duckdb")) as conn:
        conn.execute("SET enable_progress_bar = false")
        ensure_raw_tables(conn)
        started = time.perf_counter()
        load = load_raw_events_partition(conn, landing, DAY, files)
        load_seconds = time.perf_counter() - started
        add_history(conn, history_days)
    assert load.rows > 0 and load.rejected_rows == 0, load
    dbt.parse()
    first, _ = dbt(build_args())
    return {
        "simulated_sessions_per_day": sessions_per_day,
        "simulate_s": round(simulate_seconds, 1),
        "landing_files": len(files),
        "landing_mb": round(sum(f.size for f in files) / 1e6, 1),
        "raw_load_s": round(load_seconds, 1),
        "first_dbt_build_s": round(first.seconds, 1),
        "first_dbt_build_peak_rss_mb": round(first.peak_rss_mb),
    }


def build_args(command: str = "build", select: bool = True, as_vars: bool = False) -> list[str]:
    args = dbt_build_args()
    args[0] = command
    if as_vars:
        # The window passed as --vars too (they win over the environment): the old way.
        window = partition_window_vars(DAY, DAY + dt.timedelta(days=1))
        args += ["--vars", json.dumps(window, sort_keys=True)]
    if select:
        return [*args, "--select", DAILY_BUILD_SELECTOR]
    # Nothing selected: dbt starts, parses and stops.
    return [*args, "--select", INCREMENTAL_SELECTOR, "--exclude", INCREMENTAL_SELECTOR]


def run_reference(scratch: Path, log: Path, earlier_events: str) -> tuple[Measured, float]:
    measured = run_process(
        [
            sys.executable,
            "-c",
            _REFERENCE_PROCESS,
            str(scratch / "warehouse.duckdb"),
            str(REFERENCE_SQL),
            DAY.isoformat(),
            earlier_events,
        ],
        dict(os.environ),
        scratch,
        log,
    )
    return measured, float(log.read_text().split()[-1])


FLOOR_SCHEMA = "analytics_floor"
_FLOOR_PROJECT = """
name: recs_platform_floor
version: "0.1.0"
config-version: 2
profile: recs_platform
model-paths: ["models"]
flags:
  send_anonymous_usage_stats: false
  version_check: false
models:
  recs_platform_floor:
    +materialized: table
    +schema: floor
"""


def floor_model_name(form: str) -> str:
    return f"floor_sessions_{form}"


def write_floor_project(scratch: Path) -> Path:
    """A dbt project whose only models are the reference statement in its two forms, with the
    day as literals (the models of the real project get it the same way, compiled in)."""
    project = scratch / "floor_project"
    shutil.rmtree(project, ignore_errors=True)
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(_FLOOR_PROJECT.lstrip())
    _, separator, query = REFERENCE_SQL.read_text().partition(
        "create or replace table handwritten.sessions as\n"
    )
    assert separator, f"{REFERENCE_SQL} no longer creates handwritten.sessions"
    dates = {"$min_date": DAY, "$max_date": DAY + ONE_DAY}
    for form, earlier_events in EARLIER_EVENTS.items():
        model = query.replace("{earlier_events}", earlier_events)
        for parameter, day in dates.items():
            model = model.replace(parameter, f"cast('{day.isoformat()}' as date)")
        (project / "models" / f"{floor_model_name(form)}.sql").write_text(model)
    return project


def check_same_sessions(scratch: Path) -> dict:
    """The reference's table, and each floor model's, holds exactly dbt's sessions of the day."""
    tables = ["handwritten.sessions"] + [
        f"{FLOOR_SCHEMA}.{floor_model_name(form)}" for form in EARLIER_EVENTS
    ]
    ours = "(select * from analytics.sessions where session_date = $day)"
    with duckdb.connect(str(scratch / "warehouse.duckdb"), read_only=True) as conn:
        conn.execute("SET enable_progress_bar = false")
        (dbt_sessions,) = conn.execute(f"select count(*) from {ours}", {"day": DAY}).fetchone()
        for table in tables:
            counts = conn.execute(
                f"""
                select
                    (select count(*) from {table}),
                    (select count(*) from (select * from {table} except all {ours})),
                    (select count(*) from ({ours} except all select * from {table}))
                """,
                {"day": DAY},
            ).fetchone()
            # Rows, rows only in the table, rows only in dbt's sessions.
            assert counts == (dbt_sessions, 0, 0), (table, counts, dbt_sessions)
        events, distinct_events = conn.execute(
            "select count(*), count(distinct event_id) from raw.events where event_date = ?",
            [DAY],
        ).fetchone()
    return {"raw_events": events, "distinct_events": distinct_events, "sessions": dbt_sessions}


def median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def fastest_form(medians: dict[str, float], name: str) -> tuple[str, dict[str, float]]:
    """Of the forms of EARLIER_EVENTS measured as `name`, the one with the least median time,
    and the medians by form."""
    by_form = {form: medians[f"{name} {form}_s"] for form in EARLIER_EVENTS}
    return min(by_form, key=by_form.get), by_form


def measure(scratch: Path, repeats: int, dbt: Dbt, floor: Dbt) -> dict:
    samples: dict[str, list[float]] = {}
    peaks: dict[str, float] = {}

    def record(name: str, measured: Measured) -> None:
        samples.setdefault(f"{name}_s", []).append(measured.seconds)
        peaks[name] = max(peaks.get(name, 0.0), measured.peak_rss_mb)

    def add(name: str, value: float) -> None:
        samples.setdefault(name, []).append(value)

    def dbt_build() -> None:
        measured, results = dbt(build_args("build"))
        record("dbt_build", measured)
        seconds = node_seconds(results)
        add("dbt_build_models_sql_s", seconds["model"])
        add("dbt_build_tests_sql_s", seconds["test"])
        statements = model_statement_seconds(measured.log.parent / "dbt.log")
        add("dbt_build_models_query_s", statements["query"])
        add("dbt_build_models_write_day_s", statements["write_day"])
        for result in results["results"]:
            if result["unique_id"].startswith("model."):
                add(f"model {result['unique_id'].rsplit('.', 1)[1]}_s", result["execution_time"])

    def dbt_run() -> None:
        measured, results = dbt(build_args("run"))
        record("dbt_run", measured)
        add("dbt_run_models_sql_s", node_seconds(results)["model"])

    def dbt_startup() -> None:
        measured, _ = dbt(build_args("run", select=False))
        record("dbt_nothing_selected_partial_parse", measured)
        with_vars, _ = dbt(build_args("run", select=False, as_vars=True))
        record("dbt_nothing_selected_window_as_vars", with_vars)

    def reference() -> None:
        for form, earlier_events in EARLIER_EVENTS.items():
            log = scratch / f"reference_{form}.log"
            measured, query_seconds = run_reference(scratch, log, earlier_events)
            record(f"reference {form}", measured)
            add(f"reference {form} query_only_s", query_seconds)

    def dbt_floor() -> None:
        for form in EARLIER_EVENTS:
            measured, _ = floor(["run", "--select", floor_model_name(form)])
            record(f"dbt_floor {form}", measured)

    steps = [dbt_build, reference, dbt_run, dbt_startup, dbt_floor]
    for repeat in range(repeats):
        # Rotate the order so that a burst of load on the shared machine hits each side alike.
        for step in steps[repeat % len(steps) :] + steps[: repeat % len(steps)]:
            step()
    medians = {name: median(values) for name, values in samples.items()}
    return {"medians": medians, "peaks": peaks, "samples": samples}


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2_000_000, help="landed rows of the day")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--history-days", type=int, default=0, help="earlier days under DAY")
    parser.add_argument("--scratch", type=Path, help="keep (or reuse) the data in this folder")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temporary:
        scratch = (args.scratch or Path(temporary)).resolve()
        scratch.mkdir(parents=True, exist_ok=True)
        dbt = Dbt(scratch)
        floor = Dbt(scratch, write_floor_project(scratch), name="dbt_floor")
        if args.scratch and (scratch / "warehouse.duckdb").exists():
            shutil.rmtree(dbt.run_folders, ignore_errors=True)
            dbt.parse()  # the project may have changed since
            setup = {"reused_scratch": str(scratch)}
        else:
            setup = prepare(scratch, args.events, dbt, args.history_days)
        shutil.rmtree(floor.run_folders, ignore_errors=True)
        floor.parse()
        measured = measure(scratch, args.repeats, dbt, floor)
        checked = check_same_sessions(scratch)

    m, peaks = measured["medians"], measured["peaks"]
    fastest, forms = fastest_form(m, "reference")
    m["reference_s"] = forms[fastest]
    m["reference_query_only_s"] = m[f"reference {fastest} query_only_s"]
    peaks["reference"] = peaks[f"reference {fastest}"]
    fastest_floor, floors = fastest_form(m, "dbt_floor")
    m["dbt_floor_s"] = floors[fastest_floor]
    result = {
        **checked,
        **setup,
        "history_days": args.history_days,
        "repeats": args.repeats,
        "dbt_build_s": m["dbt_build_s"],
        "dbt_build_models_sql_s": m["dbt_build_models_sql_s"],
        "dbt_build_models_query_s": m["dbt_build_models_query_s"],
        "dbt_build_models_write_day_s": m["dbt_build_models_write_day_s"],
        "dbt_build_tests_sql_s": m["dbt_build_tests_sql_s"],
        "dbt_run_s": m["dbt_run_s"],
        "dbt_run_models_sql_s": m["dbt_run_models_sql_s"],
        "dbt_nothing_selected_partial_parse_s": m["dbt_nothing_selected_partial_parse_s"],
        "dbt_nothing_selected_window_as_vars_s": m["dbt_nothing_selected_window_as_vars_s"],
        "reference_s": m["reference_s"],
        "reference_query_only_s": m["reference_query_only_s"],
        "reference_form": fastest,
        "reference_s_by_form": forms,
        "ratio_dbt_build_vs_reference": round(m["dbt_build_s"] / m["reference_s"], 2),
        "ratio_dbt_run_vs_reference": round(m["dbt_run_s"] / m["reference_s"], 2),
        "goal_met (dbt build <= 2x reference)": m["dbt_build_s"] <= 2 * m["reference_s"],
        "dbt_floor_s": m["dbt_floor_s"],
        "dbt_floor_form": fastest_floor,
        "dbt_floor_s_by_form": floors,
        "ratio_dbt_floor_vs_reference": round(m["dbt_floor_s"] / m["reference_s"], 2),
        "goal_headroom_beyond_floor_s": round(2 * m["reference_s"] - m["dbt_floor_s"], 2),
        "dbt_build_peak_rss_mb": round(peaks["dbt_build"]),
        "dbt_run_peak_rss_mb": round(peaks["dbt_run"]),
        "dbt_nothing_selected_peak_rss_mb": round(peaks["dbt_nothing_selected_partial_parse"]),
        "reference_peak_rss_mb": round(peaks["reference"]),
        "dbt_build_sql_s_per_model": {
            name.removeprefix("model ").removesuffix("_s"): value
            for name, value in m.items()
            if name.startswith("model ")
        },
        "samples_s": {
            name: [round(value, 2) for value in values]
            for name, values in measured["samples"].items()
            if not name.startswith("model ")
        },
    }
    history = f"_history{args.history_days}" if args.history_days else ""
    return save_and_print(
        f"dbt_sessionization{history}",
        f"dbt build of one day ({checked['raw_events']:,} events, {args.history_days} days of "
        "history) vs one hand-written DuckDB statement, same run",
        result,
    )


if __name__ == "__main__":
    main()
