import dataclasses
import datetime as dt
import json

import pytest

from recs_platform.simulation import ShopConfig


def test_defaults_are_the_documented_shop():
    config = ShopConfig()
    assert (config.start, config.days, config.sessions_per_day) == (dt.date(2026, 11, 1), 14, 3000)
    assert (config.n_items, config.n_categories, config.seed) == (2000, 40, 7)
    assert config.n_intents == config.n_styles * config.n_price_levels == 20
    assert config.end == dt.date(2026, 11, 15)


def test_sessions_per_day_average_over_a_week():
    config = ShopConfig(days=7)
    per_day = [config.sessions_on(day) for day in range(7)]
    assert abs(sum(per_day) - 7 * config.sessions_per_day) <= 7
    assert min(per_day) < config.sessions_per_day < max(per_day)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"alpha": 1.0}, "alpha must lie in [0, 1)"),
        ({"p_stay": 0.0}, "p_stay must lie in (0, 1)"),
        ({"n_items": 50}, "n_items (50) must be at least twice n_categories (40)"),
        ({"days": 0}, "days must be at least 1"),
        ({"duplicate_rate": 1.5}, "duplicate_rate must lie in [0, 1)"),
        ({"mean_session_length": 1.0}, "mean_session_length must lie in (1"),
        ({"weekday_factors": (1.0, 1.0)}, "weekday_factors must be a tuple of 7"),
        ({"sessions_per_day": 2.5}, "sessions_per_day must be an int"),
        ({"start": "2026-11-01"}, "start must be a datetime.date"),
        ({"alpha": "high"}, "alpha must be a finite number, got 'high'"),
    ],
)
def test_invalid_values_are_refused_with_the_reason(changes, message):
    with pytest.raises(ValueError, match="invalid ShopConfig") as error:
        ShopConfig(**changes)
    assert message in str(error.value)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ShopConfig().seed = 3


def test_json_round_trip_and_a_clear_error_for_a_file_that_is_not_a_config(tmp_path):
    config = dataclasses.replace(ShopConfig(), seed=11, n_items=500, start=dt.date(2026, 3, 2))
    assert ShopConfig.from_json(config.to_json()) == config
    broken = tmp_path / "shop.json"
    broken.write_text('{"start": "2026-03-02", "colour": "blue"}')
    with pytest.raises(ValueError, match=r"shop.json is not a shop configuration.*colour"):
        ShopConfig.read(broken)


def test_the_family_round_trips_and_an_older_shop_file_reads_as_the_intent_shop(tmp_path):
    config = ShopConfig(family="complements", seed=3)
    assert ShopConfig.from_json(config.to_json()) == config
    assert '"family": "complements"' in config.to_json()
    values = json.loads(ShopConfig(seed=3).to_json())
    del values["family"]
    older = tmp_path / "shop.json"
    older.write_text(json.dumps(values))
    assert ShopConfig.read(older) == ShopConfig(seed=3)
    assert ShopConfig.read(older).family == "intent"


def test_an_unknown_family_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="invalid ShopConfig") as error:
        ShopConfig(family="bargains")
    assert (
        "family must be one of intent, ordered, complements, trends, revisits, mixed, "
        "got 'bargains'"
    ) in str(error.value)
    with pytest.raises(ValueError, match="family must be a string, got 3"):
        ShopConfig(family=3)
