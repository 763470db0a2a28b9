"""The A/B report's statistics: intervals that cover, a decision that names the better variant,
and a sample size that gives the power it promises."""

import math

import numpy as np
import pandas as pd
import pytest

from recs_platform.evaluation.ab_test import (
    CHALLENGER,
    CHAMPION,
    Decision,
    ab_test,
    ratio_rate,
    sessions_needed,
)


def shoppers(rng, variant, sessions, ctr, add_share=0.3):
    """Sessions of 1-8 impressions whose shoppers differ in how keen they are: clicks of one
    session are correlated, as on a real carousel."""
    impressions = rng.integers(1, 9, sessions)
    keenness = rng.beta(2, 2 * (1 - ctr) / ctr, sessions)  # mean ctr
    clicks = rng.binomial(impressions, keenness)
    return pd.DataFrame(
        {
            "session_id": [f"{variant}-{i}" for i in range(sessions)],
            "variant": variant,
            "impressions": impressions,
            "clicks": clicks,
            "add_to_carts": rng.binomial(clicks, add_share),
        }
    )


def test_the_delta_method_interval_covers_the_true_rate_at_its_confidence():
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(400):
        rows = shoppers(rng, CHAMPION, 400, ctr=0.08)
        rate = ratio_rate(rows["clicks"], rows["impressions"], 0.95)
        covered += rate.low <= 0.08 <= rate.high
    assert 0.92 <= covered / 400 <= 0.98


def test_a_clearly_better_challenger_wins_and_a_worse_one_loses():
    rng = np.random.default_rng(1)
    better = pd.concat([shoppers(rng, CHAMPION, 3000, 0.05), shoppers(rng, CHALLENGER, 3000, 0.08)])
    report = ab_test(better)
    assert report.decision is Decision.WINS
    assert report.ctr_lift.low > 0 and report.ctr_lift.low < 0.6 < report.ctr_lift.high
    assert report.challenger.ctr.value > report.champion.ctr.value
    assert "challenger wins" in report.describe()

    worse = pd.concat([shoppers(rng, CHAMPION, 3000, 0.08), shoppers(rng, CHALLENGER, 3000, 0.05)])
    assert ab_test(worse).decision is Decision.LOSES


def test_equal_variants_or_too_few_sessions_stay_not_yet_known():
    rng = np.random.default_rng(2)
    equal = pd.concat([shoppers(rng, CHAMPION, 3000, 0.06), shoppers(rng, CHALLENGER, 3000, 0.06)])
    report = ab_test(equal)
    assert report.decision is Decision.NOT_YET_KNOWN
    assert report.ctr_lift.low < 0 < report.ctr_lift.high
    few = pd.concat([shoppers(rng, CHAMPION, 200, 0.05), shoppers(rng, CHALLENGER, 200, 0.2)])
    assert ab_test(few, min_sessions=1000).decision is Decision.NOT_YET_KNOWN
    assert "fewer than 1,000 sessions" in ab_test(few, min_sessions=1000).reason


def test_sessions_needed_matches_the_textbook_formula_for_one_impression_a_session():
    rng = np.random.default_rng(3)
    p = 0.1
    rows = pd.DataFrame({"clicks": rng.binomial(1, p, 200_000), "impressions": 1})
    rate = ratio_rate(rows["clicks"], rows["impressions"], 0.95)
    needed = sessions_needed(rate, rate, 0.1, 0.5, confidence=0.95, power=0.8)
    textbook = (1.959964 + 0.841621) ** 2 * (2 * p * (1 - p) / 0.5) / (0.1 * p) ** 2
    assert needed == pytest.approx(textbook, rel=0.03)


def test_at_the_sessions_needed_a_real_effect_is_found_about_as_often_as_the_power():
    rng = np.random.default_rng(4)
    pilot = pd.concat([shoppers(rng, CHAMPION, 4000, 0.05), shoppers(rng, CHALLENGER, 4000, 0.06)])
    needed = ab_test(pilot, minimum_detectable_effect=0.2, power=0.8).sessions_needed
    per_variant = math.ceil(needed / 2)
    wins = 0
    for _ in range(150):
        run = pd.concat(
            [
                shoppers(rng, CHAMPION, per_variant, 0.05),
                shoppers(rng, CHALLENGER, per_variant, 0.06),
            ]
        )
        wins += ab_test(run, min_sessions=1).decision is Decision.WINS
    assert 0.65 <= wins / 150 <= 0.92


def test_bad_input_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="lack"):
        ab_test(pd.DataFrame({"session_id": ["a"], "variant": [CHAMPION]}))
    rng = np.random.default_rng(5)
    only_champion = shoppers(rng, CHAMPION, 100, 0.05)
    with pytest.raises(ValueError, match="challenger"):
        ab_test(only_champion)
