"""The session bootstrap of MRR: intervals, pairing, and the session as the resampling unit."""

import numpy as np
import pytest

from recs_platform.evaluation.uncertainty import reciprocal_ranks, session_bootstrap


def test_reciprocal_ranks_count_only_the_top_k():
    assert reciprocal_ranks(np.array([1, 2, 4, 21]), k=20).tolist() == [1.0, 0.5, 0.25, 0.0]


def test_the_estimate_is_the_mrr_and_its_interval_contains_it():
    rng = np.random.default_rng(0)
    values = rng.random(2000)
    sessions = np.repeat(np.arange(500), 4)
    bootstrap = session_bootstrap({"model": values}, sessions, seed=1)
    assert bootstrap.estimates["model"] == pytest.approx(values.mean())
    low, high = bootstrap.interval("model")
    assert low < values.mean() < high
    # The standard error of a mean of 500 session means of 4 uniforms: 1 / sqrt(12 * 2000).
    assert high - low == pytest.approx(2 * 1.96 / np.sqrt(12 * 2000), rel=0.15)
    assert (bootstrap.sessions, bootstrap.targets) == (500, 2000)


def test_a_constant_metric_has_no_uncertainty():
    bootstrap = session_bootstrap({"model": np.full(30, 0.5)}, np.arange(30) // 3)
    assert bootstrap.interval("model") == pytest.approx((0.5, 0.5))


def test_sessions_are_resampled_whole():
    # Each session's targets all hit or all miss: 10 sessions of 10 targets carry the evidence
    # of 10 targets, not of 100, and the interval says so.
    session_hits = np.array([1.0, 0, 1, 1, 0, 0, 1, 0, 1, 0])
    by_session = session_bootstrap({"m": np.repeat(session_hits, 10)}, np.repeat(np.arange(10), 10))
    by_target = session_bootstrap({"m": np.repeat(session_hits, 10)}, np.arange(100))
    session_width = np.subtract(*by_session.interval("m")[::-1])
    target_width = np.subtract(*by_target.interval("m")[::-1])
    assert session_width > 2.5 * target_width


def test_differences_are_paired():
    rng = np.random.default_rng(2)
    first = rng.random(3000) * 0.5
    second = first + 0.002  # better by exactly 0.002 on every target
    bootstrap = session_bootstrap({"a": first, "b": second}, np.arange(3000) // 3, seed=3)
    low, high = bootstrap.difference_interval("b", "a")
    assert low == pytest.approx(0.002) and high == pytest.approx(0.002)
    assert bootstrap.difference_standard_error("b", "a") == pytest.approx(0, abs=1e-12)
    # Side by side, the two intervals overlap although b is better on every target.
    assert bootstrap.interval("b")[0] < bootstrap.interval("a")[1]
    assert bootstrap.probability_best() == {"a": 0.0, "b": 1.0}


def test_inputs_must_line_up():
    with pytest.raises(ValueError, match="3 reciprocal ranks for 2 targets"):
        session_bootstrap({"m": np.ones(3)}, [0, 1])
    with pytest.raises(ValueError, match="no targets"):
        session_bootstrap({"m": np.ones(0)}, [])
