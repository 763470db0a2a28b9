# recs-platform: every command works from a fresh clone (it creates .venv and installs first).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# pytest workers of make test (pytest-xdist); 1 runs the tests one after another.
TEST_WORKERS ?= 2

export RECS_DATA_DIR ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(RECS_DATA_DIR)/dagster_home

.PHONY: install system-packages dbt-manifest demo test lint format bench dev clean

install: $(INSTALLED)

$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# The dbt manifest the Dagster definitions read (never parsed at import), parsed as their runs
# invoke dbt (target, data folder), so that each run reuses the parse instead of re-parsing.
dbt-manifest: install
	$(BIN)/recs-platform dbt-manifest

demo: install dbt-manifest $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/recs-platform demo

# Chromium (browser tests), PostgreSQL (the production dagster.yaml test), curl, wrk: installed
# with apt-get when this user may, else it stops before pytest with the command to run.
system-packages:
	bash scripts/system-packages.sh

test: install system-packages lint dbt-manifest
	$(BIN)/pytest -n $(TEST_WORKERS) --dist load --maxschedchunk 2

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python benchmarks/run_all.py

dev: install dbt-manifest $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/recs-platform dev

$(DAGSTER_HOME)/dagster.yaml: deployments/dagster/local.yaml
	mkdir -p "$(DAGSTER_HOME)"
	cp $< $@

clean:
	rm -rf "$(RECS_DATA_DIR)" .pytest_cache .ruff_cache
