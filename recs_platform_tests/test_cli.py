"""The commands a user types, run as the user runs them: in a subprocess, from the venv."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb

from recs_platform_tests.factories import make_event, write_good_file

BIN = Path(sys.executable).parent
SAMPLE = Path(__file__).parent / "fixtures" / "coveo_browsing_sample.csv"


def run(args, data_dir, **extra_env):
    environ = {**os.environ, "RECS_DATA_DIR": str(data_dir), **extra_env}
    return subprocess.run(args, capture_output=True, text=True, env=environ, timeout=300)


def test_import_coveo_prints_what_it_landed(tmp_path):
    result = run([BIN / "recs-platform", "import-coveo", str(SAMPLE)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "events landed" in result.stdout and "32" in result.stdout
    assert len(list((tmp_path / "landing" / "events").glob("date=*/coveo-*.jsonl.gz"))) == 2


def test_import_coveo_of_a_missing_file_is_a_clear_error(tmp_path):
    result = run([BIN / "recs-platform", "import-coveo", str(tmp_path / "nope.csv")], tmp_path)
    assert result.returncode == 1
    assert "nope.csv is not a file" in result.stderr


def test_a_wrong_environment_is_refused_before_anything_runs(tmp_path):
    result = run([BIN / "recs-platform", "import-coveo", str(SAMPLE)], tmp_path, RECS_ENV="qa")
    assert result.returncode == 2
    assert "RECS_ENV='qa' is not one of local, prod" in result.stderr
    assert not (tmp_path / "landing").exists()


def test_the_dagster_cli_materializes_a_partition_of_raw_events(tmp_path):
    write_good_file(tmp_path / "landing", [make_event(n) for n in range(12)])
    (tmp_path / "home").mkdir()
    result = run(
        [
            BIN / "dagster",
            "asset",
            "materialize",
            "-m",
            "recs_platform.definitions",
            "--select",
            "raw_events",
            "--partition",
            "2026-11-03",
        ],
        tmp_path,
        DAGSTER_HOME=str(tmp_path / "home"),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as conn:
        assert conn.execute(
            "SELECT event_date::VARCHAR, count(*) FROM raw.events GROUP BY 1"
        ).fetchall() == [("2026-11-03", 12)]


def test_dg_finds_the_definitions_from_pyproject(tmp_path):
    result = subprocess.run(
        [BIN / "dg", "list", "defs", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).parents[1],
        env={**os.environ, "RECS_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    listed = json.loads(result.stdout)
    keys = {asset["asset_key"] for asset in listed["assets"]}
    assert {"raw_events", "stg_events", "sessions", "training_sessions"} <= keys


def test_simulate_prints_the_realised_statistics_and_refuses_to_overwrite(tmp_path):
    command = [
        BIN / "recs-platform",
        "simulate",
        "--days",
        "2",
        "--sessions-per-day",
        "200",
        "--items",
        "300",
        "--seed",
        "5",
    ]
    first = run(command, tmp_path)
    assert first.returncode == 0, first.stderr
    for statistic in (
        "sessions",
        "gini of product views",
        "mean session length",
        "adds per product view",
        "duplicate rate",
        "late rate",
    ):
        assert statistic in first.stdout
    assert re.search(r"^sessions\s+400$", first.stdout, re.M)
    landed = sorted((tmp_path / "landing").rglob("*.jsonl.gz"))
    assert landed
    again = run(command, tmp_path)
    assert again.returncode == 1
    assert "already in the landing zone, which is immutable" in again.stderr
    assert sorted((tmp_path / "landing").rglob("*.jsonl.gz")) == landed


def test_simulate_refuses_a_bad_date_with_a_usage_error(tmp_path):
    result = run([BIN / "recs-platform", "simulate", "--start", "yesterday"], tmp_path)
    assert result.returncode == 2
    assert "'yesterday' is not a date like 2026-11-01" in result.stderr


def test_simulate_explains_a_shop_that_cannot_exist(tmp_path):
    result = run([BIN / "recs-platform", "simulate", "--items", "3"], tmp_path)
    assert result.returncode == 2
    assert "invalid ShopConfig: n_items (3) must be at least twice n_categories" in result.stderr
    assert "Traceback" not in result.stderr


def test_simulate_a_family_and_its_oracle_reads_the_shop_back(tmp_path):
    from recs_platform.simulation import SHOP_CONFIG_FILE, Oracle, ShopConfig

    command = [BIN / "recs-platform", "simulate", "--family", "complements"]
    command += ["--days", "2", "--sessions-per-day", "200", "--items", "300", "--seed", "5"]
    result = run(command, tmp_path)
    assert result.returncode == 0, result.stderr
    config = ShopConfig.read(tmp_path / "landing" / SHOP_CONFIG_FILE)
    assert (config.family, config.n_items, config.seed) == ("complements", 300, 5)
    oracle = Oracle(config)
    assert oracle.family.name == "complements"
    assert oracle.next_item_probabilities([], 0).sum() > 0.99

    unknown = run([BIN / "recs-platform", "simulate", "--family", "bargains"], tmp_path)
    assert unknown.returncode == 2
    assert "invalid choice: 'bargains'" in unknown.stderr and "revisits" in unknown.stderr


def test_headroom_of_a_family(tmp_path):
    command = [BIN / "recs-platform", "headroom", "--family", "trends", "--days", "3"]
    command += ["--sessions-per-day", "300", "--items", "300", "--test-days", "1"]
    result = run(command, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "shop headroom (trends family, seed 7, last 1 of 3 days)" in result.stdout
    assert re.search(r"^oracle\s+0\.\d+", result.stdout, re.M)
