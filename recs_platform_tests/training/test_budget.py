"""The retrain's time budget: allowances, windows sized from a probe, and what trains in them."""

import time

import pytest

from recs_platform.training.budget import (
    CHECKLIST_PREFIXES,
    MIN_TRAINING_SESSIONS,
    Probe,
    TimeBudget,
    candidate_allowance,
    estimated_seconds,
    evaluation_sample,
    fit_window,
    probe_size,
)

# 1 ms per session and epoch, 2 s per scoring of the validation day.
PROBE = Probe(sessions=10_000, fit_s=10.0, validation_s=2.0)


def test_a_window_that_fits_keeps_every_session_and_trial():
    window = fit_window(PROBE, 100_000, 5_000, None, False, trials=4, allowance_s=1e4)
    assert (window.sessions, window.trials, window.trimmed) == (100_000, 4, False)
    assert window.estimated_s == pytest.approx(4 * (100 + 2) + 105)


def test_trials_go_first_then_the_oldest_sessions():
    # The whole window costs 102 s per trial and 105 s to refit: two trials fit in 310 s.
    two_trials = fit_window(PROBE, 100_000, 5_000, None, False, trials=4, allowance_s=310)
    assert (two_trials.sessions, two_trials.trials) == (100_000, 2)
    assert two_trials.estimated_s <= 310
    # Not even the defaults fit on the whole window in 100 s: one trial, the recent sessions.
    trimmed = fit_window(PROBE, 100_000, 5_000, None, False, trials=4, allowance_s=100)
    assert trimmed.trials == 1 and trimmed.trimmed
    assert trimmed.estimated_s == pytest.approx(100, abs=0.01)
    assert "%" in trimmed.describe() and f"{trimmed.sessions:,}" in trimmed.describe()


def test_epochs_go_before_sessions_and_each_epoch_is_scored():
    # 10 epochs on everything, scored every epoch: 10 x (100 s + 2 s) + 10 x 100 s to refit.
    full = fit_window(PROBE, 100_000, 0, epochs=10, scored_every_epoch=True, trials=1,
                      allowance_s=1e4)  # fmt: skip
    assert full.estimated_s == pytest.approx(10 * 102 + 1000) and full.epochs == 10
    # 450 s: 2 epochs on every session (2 x 102 + 200 = 404 s), not 10 on a fifth of them.
    fewer = fit_window(PROBE, 100_000, 0, 10, True, trials=1, allowance_s=450)
    assert (fewer.sessions, fewer.epochs) == (100_000, 2)
    assert "at most 2 epoch(s)" in fewer.describe()
    # 120 s: one epoch on the most recent sessions that fit, (120 - 2) / (2 x 1 ms).
    window = fit_window(PROBE, 100_000, 0, 10, True, trials=1, allowance_s=120)
    assert (window.sessions, window.epochs) == (59_000, 1)
    assert estimated_seconds(PROBE, window.sessions, window.sessions, 1, 1, 1) == pytest.approx(120)
    # A cut window refits on as many sessions as it searched on (the most recent of train +
    # validation); a whole one on train + validation.
    assert window.refit_sessions == window.sessions == 59_000
    assert fewer.refit_sessions == 100_000


def test_a_second_probe_separates_the_fixed_cost_from_the_cost_per_session():
    # 10 s on 10,000 sessions, 8.5 s on 2,500: 8 s whatever the size and 0.2 ms a session
    # (a count model fitting its weights on a capped held-out sample).
    fixed = Probe(10_000, fit_s=10.0, validation_s=2.0, small_sessions=2_500, small_fit_s=8.5)
    assert fixed.seconds_per_session_epoch == pytest.approx(2e-4)
    assert fixed.fixed_s == pytest.approx(8.0)
    assert fixed.fit_seconds(100_000) == pytest.approx(28.0)
    # The whole window fits in 70 s (28 + 2 + 29 to refit on 105,000): proportional to the
    # probe it would cost 102 + 105 s and be cut to a third.
    window = fit_window(fixed, 100_000, 5_000, None, False, trials=1, allowance_s=70)
    assert not window.trimmed and window.estimated_s == pytest.approx(28 + 2 + 29)
    assert fit_window(PROBE, 100_000, 5_000, None, False, trials=1, allowance_s=70).trimmed
    # A cut window solves for the sessions with the fixed part counted: (40 - 2 - 16) / 0.4 ms.
    cut = fit_window(fixed, 1_000_000, 0, None, False, trials=1, allowance_s=40)
    assert cut.sessions == 55_000 and cut.estimated_s == pytest.approx(40)
    # A cost that grows faster than the sessions (1 s on 2,500, 10 s on 10,000) extrapolates
    # along the steeper line: 118 s on 100,000 where proportionality says 100.
    steep = Probe(10_000, fit_s=10.0, validation_s=2.0, small_sessions=2_500, small_fit_s=1.0)
    assert steep.fit_seconds(100_000) == pytest.approx(118.0)
    assert steep.fit_seconds(100_000, epochs=3) == pytest.approx(354.0)
    # Without the second fit, proportional.
    assert PROBE.fit_seconds(100_000) == pytest.approx(100.0) and PROBE.fixed_s == 0


def test_no_allowance_leaves_the_smallest_useful_window():
    window = fit_window(PROBE, 100_000, 5_000, 10, True, trials=4, allowance_s=0)
    assert (window.sessions, window.trials, window.epochs) == (MIN_TRAINING_SESSIONS, 1, 1)
    small = fit_window(PROBE, 500, 100, None, False, trials=1, allowance_s=0)
    assert small.sessions == 500 and not small.trimmed
    # A model so quick that the probe's two fits took the same time (no cost per session it
    # can tell): with nothing left it still gets the smallest window, not the whole one.
    flat = Probe(10_000, fit_s=0.01, validation_s=0.002, small_sessions=2_500, small_fit_s=0.01)
    assert flat.seconds_per_session_epoch == 0
    window = fit_window(flat, 100_000, 5_000, None, False, trials=1, allowance_s=0)
    assert window.sessions == MIN_TRAINING_SESSIONS and window.trimmed
    # With time to spare it fits on every session.
    assert not fit_window(flat, 100_000, 5_000, None, False, trials=1, allowance_s=60).trimmed


def test_the_budget_shares_what_is_left_among_the_candidates_to_come():
    budget = TimeBudget(100.0, evaluation_share=0.2, started=time.perf_counter() - 20)
    assert budget.training_left_s() == pytest.approx(60, abs=0.1)  # 80 - 20
    assert candidate_allowance(budget.training_left_s(), 3) == pytest.approx(20, abs=0.1)
    assert budget.remaining_s() == pytest.approx(80, abs=0.1)
    assert "of 1.7 min" in budget.progress()
    late = TimeBudget(10.0, started=time.perf_counter() - 60)
    assert late.training_left_s() == 0.0 == candidate_allowance(late.training_left_s(), 1, 5.0)
    with pytest.raises(ValueError, match="positive"):
        TimeBudget(0)


def test_a_candidate_gets_its_fixed_costs_then_its_share_of_the_rest():
    # 1,000 s left for 5 candidates: 200 s each when nothing is fixed.
    assert candidate_allowance(1_000, 5) == 200
    # A candidate whose smallest window costs 300 s (slow to score the validation day) gets
    # them and a fifth of the other 700 s, not 200 s that it would spend on the 300 s alone.
    assert candidate_allowance(1_000, 5, fixed_s=300) == 300 + 700 / 5
    # Never more than half of what is left off the top: the others still train.
    assert candidate_allowance(1_000, 5, fixed_s=900) == 500 + 500 / 5
    # The last candidate has everything that is left.
    assert candidate_allowance(1_000, 1, fixed_s=50) == 1_000


def test_probe_size():
    assert probe_size(500) == 500
    assert probe_size(50_000) == 2_000
    assert probe_size(5_000_000) == 100_000


# 10 ms a target for the served blend, 4 ms for the oracle: 14 ms a target, 5 targets a session.
SECONDS_PER_TARGET = {"blend": 0.010, "oracle": 0.004}


def test_the_test_day_keeps_every_session_that_fits_what_is_left():
    checklist_s = 0.010 * CHECKLIST_PREFIXES
    whole_day = evaluation_sample(SECONDS_PER_TARGET, "blend", 5.0, 10_000, remaining_s=1e4)
    assert (whole_day.sessions, whole_day.cut) == (10_000, False)
    assert whole_day.estimated_s == pytest.approx(checklist_s + 10_000 * 5 * 0.014)

    # 300 s left: the checklist's 15 s, then 285 s / 0.07 s a session.
    cut = evaluation_sample(SECONDS_PER_TARGET, "blend", 5.0, 10_000, remaining_s=300)
    assert cut.cut and cut.sessions == int((300 - checklist_s) / 0.07)
    assert cut.estimated_s <= 300
    assert "4,071 of 10,000 test sessions" in cut.describe()


def test_a_spent_budget_still_scores_the_smallest_useful_test_day():
    spent = evaluation_sample(SECONDS_PER_TARGET, "blend", 5.0, 10_000, -60.0, min_sessions=500)
    assert spent.sessions == 500 and spent.estimated_s > 0
    assert "of the 0 s left" in spent.describe()
    few = evaluation_sample(SECONDS_PER_TARGET, "blend", 5.0, 300, -60.0, min_sessions=500)
    assert (few.sessions, few.cut) == (300, False)
