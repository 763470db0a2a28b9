"""Named shop sizes: the Coveo-sized shop, its scaled-down smoke version and the CLI option."""

import dataclasses
import re

import numpy as np
import pytest

from recs_platform.simulation import (
    PRESETS,
    SHOP_CONFIG_FILE,
    ShopConfig,
    build_catalogue,
    simulate_days,
    simulate_to_landing,
)
from recs_platform.simulation.families import build_family
from recs_platform.simulation.families.base import DAYS_KEPT
from recs_platform_tests.test_cli import BIN, run

SMOKE_SCALE = 0.001


def test_the_coveo_preset_is_the_size_of_coveos_data():
    config = ShopConfig.preset("coveo")
    assert config.days >= 30
    assert config.n_items >= 50_000
    assert config.family == "mixed"
    sessions = sum(config.sessions_on(day) for day in range(config.days))
    assert 4_800_000 <= sessions <= 5_100_000
    # About 36 M events: 7.3 a session, as in Coveo's file, from 4.2 product views a session.
    assert config.mean_session_length == 4.2
    # Every behaviour and event rate is the default shop's.
    default = ShopConfig()
    for field in dataclasses.fields(ShopConfig):
        if field.name not in PRESETS["coveo"]:
            assert getattr(config, field.name) == getattr(default, field.name), field.name


def test_a_scaled_preset_keeps_the_catalogue_and_changes_what_it_is_told():
    full = ShopConfig.preset("coveo")
    small = ShopConfig.preset("coveo", scale=SMOKE_SCALE, days=2, family="trends", seed=3)
    assert small.sessions_per_day == round(full.sessions_per_day * SMOKE_SCALE) == 165
    assert small.n_returning_shoppers == 1000
    assert (small.n_items, small.n_categories) == (full.n_items, full.n_categories)
    assert (small.days, small.family, small.seed) == (2, "trends", 3)
    assert ShopConfig.from_json(small.to_json()) == small
    with pytest.raises(ValueError, match="unknown preset 'amazon'; presets: coveo"):
        ShopConfig.preset("amazon")
    with pytest.raises(ValueError, match="scale must lie in"):
        ShopConfig.preset("coveo", scale=2)
    with pytest.raises(ValueError, match="family must be one of"):
        ShopConfig.preset("coveo", family="bargains")


def test_the_scaled_down_coveo_shop_lands_its_events(tmp_path):
    config = ShopConfig.preset("coveo", scale=SMOKE_SCALE, days=2)
    report = simulate_to_landing(config, tmp_path)
    assert report.catalogue_items == 50_000
    assert report.sessions == sum(config.sessions_on(day) for day in range(2))
    assert 6.0 < report.events / report.sessions < 9.0
    assert report.files_written
    assert ShopConfig.read(tmp_path / SHOP_CONFIG_FILE) == config


def test_a_long_window_keeps_only_a_few_days_of_family_arrays():
    config = ShopConfig(n_items=300, n_categories=6, days=7, sessions_per_day=50, family="mixed")
    catalogue = build_catalogue(config)
    family = build_family(config, catalogue)
    for simulated in simulate_days(config, catalogue):
        assert len(simulated.items) > 0
    # simulate_days builds its own family; one used day after day keeps a bounded cache too.
    for day in range(config.days):
        family.step_probabilities(day, np.zeros((1, 0), dtype=np.int64), np.array([0]))
    for member in family.members:
        assert len(member._days) <= DAYS_KEPT


def test_simulate_a_preset_from_the_command_line(tmp_path):
    command = [BIN / "recs-platform", "simulate", "--preset", "coveo", "--scale", "0.001"]
    command += ["--days", "1", "--family", "trends"]
    result = run(command, tmp_path)
    assert result.returncode == 0, result.stderr
    config = ShopConfig.read(tmp_path / "landing" / SHOP_CONFIG_FILE)
    assert (config.n_items, config.family, config.days, config.sessions_per_day) == (
        50_000,
        "trends",
        1,
        165,
    )
    assert re.search(r"^items viewed\s+[\d,]+ of 50,000$", result.stdout, re.M)

    alone = run([BIN / "recs-platform", "simulate", "--scale", "0.5"], tmp_path / "other")
    assert alone.returncode == 2
    assert "--scale scales a --preset" in alone.stderr
