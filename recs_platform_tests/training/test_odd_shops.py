"""Every default candidate trains, is evaluated and is chosen from on shops unlike the simulator's:
a three-product catalogue, sessions of exactly two views, SKUs in any script, a product every
session views, a catalogue that changes every day. Where the next product is certain, the model
served has learnt it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import pytest

from recs_platform.training.candidates import CANDIDATE_NAMES
from recs_platform.training.pipeline import DatasetSplits, TrainingPlan, train_and_choose
from recs_platform.training.search import SearchBudget

FIRST_DAY = dt.date(2026, 3, 1)
DAYS, SESSIONS_PER_DAY = 6, 200
TORCH = ("gru4rec", "sasrec", "gru_transition", "latent_intent")
PLAN = TrainingPlan(
    budget=SearchBudget(trials=1), overrides={name: {"epochs": 1} for name in TORCH}
)
ODD_SKUS = ["ü-1", "a b", "x/y", "'q'", '"', "λ", "0", "-1", "ÆØÅ", "😀"]


def shop(session_of: Callable[[np.random.Generator, int], list[str]]) -> DatasetSplits:
    """Train on the first four days, validate on the fifth, test on the sixth."""
    rng = np.random.default_rng(0)
    days = [FIRST_DAY + dt.timedelta(days=number) for number in range(DAYS)]
    rows = {day: [(day, session_of(rng, n)) for _ in range(SESSIONS_PER_DAY)]
            for n, day in enumerate(days)}  # fmt: skip
    return DatasetSplits(
        [row for day in days[:-2] for row in rows[day]], rows[days[-2]], rows[days[-1]]
    )


def three_products(rng, day):
    return list(rng.permutation(["a", "b", "c"])[: rng.integers(2, 4)])


def odd_skus(rng, day):
    return list(rng.choice(ODD_SKUS, rng.integers(2, 6), replace=False))


def one_star(rng, day):
    other = f"p{rng.integers(300)}"
    return [other, "star"] if rng.random() < 0.5 else ["star", other]


def two_views_one_successor(rng, day):
    first = int(rng.integers(200))
    return [f"p{first}", f"p{(7 * first + 1) % 200}"]


def daily_new_products(rng, day):
    start = int(rng.integers(100)) + 60 * day
    return [f"p{start}", f"p{start + 1}", f"p{start + 2}"]


@pytest.mark.parametrize(
    "session_of",
    [three_products, odd_skus, one_star, two_views_one_successor, daily_new_products],
)
def test_every_candidate_trains_and_one_is_served(session_of):
    splits = shop(session_of)
    outcome = train_and_choose(splits, PLAN)
    assert {row.name for row in outcome.report.rows} == set(CANDIDATE_NAMES)
    assert outcome.chosen.name in CANDIDATE_NAMES
    served = outcome.chosen.recommender
    test_skus = {sku for _, session in splits.test for sku in session}
    known = [sku for sku in test_skus if sku in served.item_index()]
    (scores,) = served.score([[known[0]]])
    assert np.isfinite(scores).all() and len(scores) == len(served.item_ids)
    if session_of in (two_views_one_successor, daily_new_products):
        # The next product follows from the last: the served model knows it.
        assert outcome.report.row(outcome.chosen.name).mrr > 0.95
    assert set(served.item_ids) <= {sku for _, s in splits.train + splits.validation for sku in s}
