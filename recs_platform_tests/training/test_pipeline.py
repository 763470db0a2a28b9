"""train_and_choose: early stopping, the cross-fitted blend, the selection rule and the regret."""

import time
from dataclasses import replace

import mlflow
import numpy as np
import pandas as pd
import pytest

from recs_platform.evaluation.protocol import evaluate, next_item_targets, ranks_of_targets
from recs_platform.evaluation.uncertainty import reciprocal_ranks
from recs_platform.models import shopper_kinds
from recs_platform.models.blend import BlendRecommender, length_buckets, weights_by_bucket
from recs_platform.models.popularity import PopularityRecommender
from recs_platform.simulation import ShopConfig, simulate_sessions
from recs_platform.simulation.oracle import Oracle
from recs_platform.training import budget as budget_module
from recs_platform.training import pipeline, tracking
from recs_platform.training.budget import MIN_TRAINING_SESSIONS, Probe, TrainingWindow
from recs_platform.training.candidates import Candidate, candidate
from recs_platform.training.pipeline import (
    DatasetSplits,
    TrainingPlan,
    _probe,
    compare_with_champion,
    skus,
    train_and_choose,
)
from recs_platform.training.search import SearchBudget, SearchResult
from recs_platform.training.selection import RULE

SHOP = ShopConfig(days=6, sessions_per_day=400, n_items=300, n_categories=10, seed=3)
FAST_GRU = {"epochs": 4, "hidden_size": 32, "embedding_size": 32, "batch_size": 64}


@pytest.fixture(scope="module")
def splits():
    sessions = [session for session in simulate_sessions(SHOP) if len(session.skus) >= 2]
    days = sorted({session.date for session in sessions})

    def of(chosen_days):
        return [(s.date, list(s.skus)) for s in sessions if s.date in chosen_days]

    return DatasetSplits(of(days[:-2]), of(days[-2:-1]), of(days[-1:]))


@pytest.fixture(scope="module")
def outcome(splits):
    plan = TrainingPlan(
        candidates=("popularity", "markov", "gru4rec", "blend"),
        budget=SearchBudget(trials=1),
        overrides={"gru4rec": FAST_GRU},
    )
    return train_and_choose(splits, plan, Oracle(SHOP).ranker)


def test_the_torch_candidate_stopped_early_and_was_refitted_as_long(outcome):
    gru = outcome.candidates["gru4rec"]
    on_train = gru.validation_model
    assert all("validation" in record for record in on_train.training_log)
    assert gru.params["epochs"] == on_train.best_epoch() <= 4
    assert len(gru.recommender.training_log) == on_train.best_epoch()
    assert gru.validation_mrr == pytest.approx(on_train.best_validation())


def test_the_blend_is_cross_fitted_on_validation_and_served_refitted(outcome, splits):
    blend = outcome.candidates["blend"]
    assert isinstance(blend.recommender, BlendRecommender)
    # Served: the members refitted on train + validation, not those validation scored.
    served = {member.name: member for member in blend.recommender.members}
    for name, member in served.items():
        assert member is outcome.candidates[name].recommender
    assert blend.validation_mrr == pytest.approx(blend.validation_reciprocal_ranks.mean())
    # Cross-fitted: the targets of the odd validation sessions are scored by weights fitted on
    # the even sessions' targets alone.
    on_train = blend.validation_model
    targets = next_item_targets(
        splits.validation, outcome.candidates["popularity"].validation_model.item_ids
    )
    session = np.asarray(targets.session_of_target)
    odd, even = np.flatnonzero(session % 2 == 1), np.flatnonzero(session % 2 == 0)
    likelihoods = on_train.target_likelihoods(targets.prefixes, targets.targets)
    buckets = length_buckets([len(prefix) for prefix in targets.prefixes], on_train.bounds)
    even_weights = weights_by_bucket(likelihoods[even], buckets[even], 4, on_train.prior_strength)
    ranks = ranks_of_targets(BlendRecommender(on_train.members, even_weights), targets, odd)
    assert blend.validation_reciprocal_ranks[odd] == pytest.approx(reciprocal_ranks(ranks, 20))
    weights = blend.params["weights"]
    assert set(weights) == {"1", "2", "3-4", "5+"}
    for by_member in weights.values():
        assert sum(by_member.values()) == pytest.approx(1.0)
    assert max(weights["1"], key=weights["1"].get) == "markov"
    # Members the others make redundant are left out, each within the tolerance.
    left_out = blend.params["left_out"]
    weighed = {member.name for member in on_train.members}
    assert set(left_out) == set(outcome.candidates) - {"blend"} - weighed
    assert all(0 <= loss <= blend.params["pruning_tolerance"] for loss in left_out.values())
    assert set(served) <= weighed


def test_every_candidate_has_an_interval_and_the_rule_chose(outcome):
    selection = outcome.selection
    assert selection.rule == RULE and set(selection.scores) == set(outcome.candidates)
    for name, score in selection.scores.items():
        assert score.mrr == pytest.approx(outcome.candidates[name].validation_mrr)
        assert score.low <= score.mrr <= score.high
    chosen = selection.scores[outcome.chosen.name]
    assert chosen.within_noise
    # Nothing simpler than the chosen one is within noise of the leader.
    simpler = [s for s in selection.scores.values() if s.within_noise and s.name != chosen.name]
    assert all(s.name in ("gru4rec", "blend") for s in simpler)
    rows = {row["name"]: row for row in outcome.table()}
    assert rows[outcome.chosen.name]["chosen"] and rows["oracle"]["validation_mrr_low"] is None
    assert rows["markov"]["validation_mrr_low"] == pytest.approx(selection.scores["markov"].low)


def test_the_regret_compares_the_served_candidate_with_the_best_on_test(outcome):
    test_mrr = {name: outcome.report.row(name).mrr for name in outcome.candidates}
    best = max(test_mrr.values())
    assert outcome.best_on_test == max(test_mrr, key=test_mrr.get)
    assert outcome.regret == pytest.approx(1 - test_mrr[outcome.chosen.name] / best)
    assert 0 <= outcome.regret < 0.1


def test_a_logged_blend_predicts_like_itself(outcome, tmp_path):
    blend = outcome.candidates["blend"].recommender
    uri, artifacts = tracking.local_tracking(tmp_path)
    tracking.use_experiment(uri, tracking.EXPERIMENT, artifacts)
    sessions = [items for _, items in outcome_sessions(outcome)]
    with mlflow.start_run():
        logged = tracking.log_and_register(blend, sessions)
    pyfunc = mlflow.pyfunc.load_model(logged.model_uri)
    predictions = pyfunc.predict(pd.DataFrame({"session": sessions, "k": [5] * len(sessions)}))
    assert predictions["items"].tolist() == blend.rank(sessions, k=5)
    loaded = tracking.load_registered(logged.model_uri)
    np.testing.assert_allclose(loaded.score(sessions), blend.score(sessions))


def outcome_sessions(outcome):
    prefixes = outcome.test_targets.prefixes[:3]
    return [(None, list(prefix)) for prefix in prefixes]


def test_a_blend_needs_two_other_candidates():
    with pytest.raises(ValueError, match="at least two other candidates"):
        TrainingPlan(candidates=("markov", "blend"))
    with pytest.raises(ValueError, match="blend settings \\['epochs'\\] unknown"):
        TrainingPlan(
            candidates=("markov", "popularity", "blend"), overrides={"blend": {"epochs": 1}}
        )


def test_a_spent_time_budget_trains_on_the_most_recent_sessions_and_says_so(splits):
    plan = TrainingPlan(
        candidates=("popularity", "markov", "gru4rec"),
        budget=SearchBudget(trials=1),
        overrides={"gru4rec": FAST_GRU},
        time_budget_s=1e-3,
        evaluation_sessions=100,
    )
    outcome = train_and_choose(splits, plan)
    # The torch candidate gave up its epochs before its sessions: one epoch, the recent ones.
    gru = outcome.candidates["gru4rec"]
    assert outcome.windows["gru4rec"].epochs == 1 == gru.params["epochs"]
    assert len(gru.recommender.training_log) == 1
    assert len(splits.train) > MIN_TRAINING_SESSIONS
    recent = splits.train[-MIN_TRAINING_SESSIONS:]
    for name in ("popularity", "markov", "gru4rec"):
        window = outcome.windows[name]
        assert window.trimmed and window.sessions == MIN_TRAINING_SESSIONS
        assert window.available_sessions == len(splits.train)
        on_train = outcome.candidates[name].validation_model
        assert on_train.item_ids == sorted({sku for _, items in recent for sku in items})
        assert window.refit_sessions == MIN_TRAINING_SESSIONS
    # The count models refit (a quick pass) on as many sessions, the most recent of train +
    # validation; no time was left to refit the torch one: its search's model serves.
    latest = (splits.train + splits.validation)[-MIN_TRAINING_SESSIONS:]
    for name in ("popularity", "markov"):
        refitted = outcome.candidates[name].recommender
        assert refitted.item_ids == sorted({sku for _, items in latest for sku in items})
        assert "no refit" not in outcome.candidates[name].deadline_cuts
    assert "no refit" in gru.deadline_cuts and gru.recommender is gru.validation_model
    assert outcome.windows_summary()["gru4rec"]["deadline_cuts"] == list(gru.deadline_cuts)
    assert outcome.budget_used_s > 0
    # Both days scored on a sample, and the served model's test MRR has its interval.
    assert outcome.validation_sessions_evaluated == outcome.test_sessions_evaluated == 100
    assert outcome.test_sessions == len(splits.test) > 100
    assert outcome.report.sessions == 100
    low, high = outcome.chosen_test_interval
    assert low <= outcome.report.row(outcome.chosen.name).mrr <= high


def test_a_candidate_slow_to_score_gets_its_fixed_costs_before_its_share(splits, monkeypatch):
    """The first candidate's probe says one scoring of the validation day takes 100 s (as the
    shopper kinds' at 50,000 items): more than an equal share of the 280 s the three candidates
    have. It is given them on top of its share, and trains on its whole window instead of
    paying them for the fewest sessions."""
    slow = Probe(2_000, fit_s=2.0, validation_s=100.0)  # 1 ms a session, nothing fixed
    quick = Probe(2_000, fit_s=0.002, validation_s=0.001)

    def probe(chosen_candidate, *args, **kwargs):
        return slow if chosen_candidate.name == "popularity" else quick

    monkeypatch.setattr(pipeline, "_probe", probe)
    plan = TrainingPlan(
        candidates=("popularity", "markov", "vsknn"), budget=SearchBudget(trials=1),
        time_budget_s=400.0,
        evaluation_sessions=100,
    )  # fmt: skip
    outcome = train_and_choose(splits, plan)
    window = outcome.windows["popularity"]
    # 280 s for training: the fixed 102 s (a validation scoring, two fits of 1,000 sessions)
    # and a third of the other 178 s.
    assert window.allowance_s == pytest.approx(102 + 178 / 3, abs=1.0)
    assert window.estimated_s < window.allowance_s
    assert not window.trimmed and window.sessions == len(splits.train) > MIN_TRAINING_SESSIONS
    # The last candidate has what is left: everything the others did not spend.
    assert outcome.windows["vsknn"].allowance_s > 200


def test_a_torch_candidate_past_its_estimate_stops_at_its_deadline(splits, monkeypatch):
    # The probe under-estimates it a thousandfold (as a cost growing faster than the sessions
    # would): without the deadline its 10,000 epochs (no early stopping) would run for hours.
    monkeypatch.setattr(pipeline, "_probe", lambda *args, **kwargs: Probe(2_000, 1e-3, 1e-3))
    plan = TrainingPlan(
        candidates=("gru4rec",),
        budget=SearchBudget(trials=1),
        overrides={"gru4rec": {**FAST_GRU, "epochs": 10_000}},
        patience=None,
        time_budget_s=4.0,
        evaluation_sessions=100,
    )
    outcome = train_and_choose(splits, plan)
    gru = outcome.candidates["gru4rec"]
    assert not outcome.windows["gru4rec"].trimmed  # the probe thought it would all fit
    # The search stopped at its deadline and scored what it had; the refit got what was left
    # of the candidate's share (or none, when too little was left) and stopped there too, or,
    # on a loaded machine where the search stopped inside its first epoch, refitted on that
    # share of the newest sessions.
    assert gru.deadline_cuts[0] == "search" and len(gru.deadline_cuts) >= 2
    assert gru.deadline_cuts[-1] in (
        "refit",
        "no refit",
        pipeline.REFIT_SHORTER,
    ) or gru.deadline_cuts[1].startswith("refit on the newest")
    assert gru.validation_model.stopped_at_deadline
    assert len(gru.validation_model.training_log) < 10_000
    assert gru.validation_mrr > 0 and outcome.report.row("gru4rec").mrr > 0


def test_the_shopper_kinds_refinement_stops_at_the_budget_deadline(splits, monkeypatch):
    """The kinds' refinement, a cost the probe does not see (it runs only where the sessions
    refined hold enough views per product), starts no round past its fit's deadline: the
    search and the refit say so, and the kinds found before it still serve."""
    monkeypatch.setattr(shopper_kinds, "perf_counter", lambda: float("inf"))
    plan = TrainingPlan(
        candidates=("shopper_kinds",),
        budget=SearchBudget(trials=1),
        overrides={"shopper_kinds": {"refine_min_views": 0.0}},  # refine on this small shop
        time_budget_s=600.0,
        evaluation_sessions=100,
    )
    outcome = train_and_choose(splits, plan)
    kinds = outcome.candidates["shopper_kinds"]
    assert kinds.deadline_cuts == ("search", "refit")
    assert kinds.validation_model.stopped_at_deadline and not kinds.validation_model.refined
    assert kinds.validation_mrr > 0 and outcome.report.row("shopper_kinds").mrr > 0
    # Without a budget nothing is cut and the kinds are refined.
    plan = replace(plan, time_budget_s=None)
    unbudgeted = train_and_choose(splits, plan).candidates["shopper_kinds"]
    assert unbudgeted.deadline_cuts == () and unbudgeted.validation_model.refined


def test_a_search_cut_inside_its_first_epoch_refits_on_the_newest_share_that_fits(splits):
    gru = candidate("gru4rec", FAST_GRU)
    sessions = splits.train + splits.validation
    searched = gru.make().fit(skus(splits.train[-2_000:]), deadline=time.perf_counter())
    searched.training_log[0]["epoch_share"] = 0.25  # as if a quarter of it had trained
    result = SearchResult("gru4rec", {"epochs": 1}, 0.1, [], searched)
    window = TrainingWindow(2_000, len(splits.train), 1, 10.0, 20.0, 1, len(sessions), 5.0)
    refitted, cuts, refit_window = pipeline._refit(
        gru, result, sessions, window, time.perf_counter() + 3600
    )
    # A quarter of the sessions, the newest ones (never under the smallest useful window).
    kept = max(MIN_TRAINING_SESSIONS, len(sessions) // 4)
    assert refit_window.refit_sessions == kept and refit_window.sessions == 2_000
    newest = sessions[-kept:]
    assert refitted.item_ids == sorted({sku for _, items in newest for sku in items})
    assert cuts == ("search", f"refit on the newest {kept:,} sessions")
    assert not refitted.stopped_at_deadline and len(refitted.training_log) == 1
    # A search that finished its epochs leaves the refit its whole window.
    whole = gru.make().fit(skus(splits.train[-2_000:]))
    _, cuts, same = pipeline._refit(
        gru, SearchResult("gru4rec", {}, 0.1, [], whole), sessions, window, None
    )
    assert cuts == () and same == window


def test_a_refit_cut_before_it_learnt_as_much_as_the_search_leaves_the_search_model_serving(
    splits,
):
    gru = candidate("gru4rec", {**FAST_GRU, "epochs": 1})
    sessions = (splits.train + splits.validation) * 5  # an epoch far longer than 50 ms
    searched = gru.make().fit(skus(splits.train))  # one whole epoch
    result = SearchResult("gru4rec", {}, 0.1, [], searched)
    window = TrainingWindow(len(splits.train), len(splits.train), 1, 1.0, 1.0, 1, len(sessions))
    served, cuts, _ = pipeline._refit(gru, result, sessions, window, time.perf_counter() + 0.05)
    # The refit stopped after a few batches: the network that saw the whole window serves.
    assert served is searched and cuts == ("refit", pipeline.REFIT_SHORTER)
    # A refit cut after learning from more product views than the search's network serves.
    searched.training_log[0]["events"] = 1  # as if the search had learnt from one view
    served, cuts, _ = pipeline._refit(gru, result, sessions, window, time.perf_counter() + 0.05)
    assert served is not searched and served.stopped_at_deadline and cuts == ("refit",)
    assert 1 < served.events_learnt() < sum(map(len, skus(sessions)))


def test_a_spent_budget_scores_a_smaller_test_day_champion_and_oracle_included(splits, monkeypatch):
    monkeypatch.setattr(budget_module, "MIN_TEST_SESSIONS", 150)
    plan = TrainingPlan(
        candidates=("popularity", "markov"), budget=SearchBudget(trials=1), time_budget_s=1e-3
    )
    champion = PopularityRecommender().fit([items for _, items in splits.train[:50]])
    outcome = train_and_choose(splits, plan, Oracle(SHOP).ranker, champion)
    # Nothing was left for the test day: it was scored on the smallest useful sample, and the
    # served model's test MRR says how uncertain that makes it.
    assert outcome.test_sample.cut and outcome.test_sample.available_sessions == len(splits.test)
    assert outcome.test_sessions_evaluated == outcome.report.sessions == 150
    assert outcome.test_sessions == len(splits.test) > 150
    low, high = outcome.chosen_test_interval
    assert low <= outcome.report.row(outcome.chosen.name).mrr <= high
    # Every row and the champion on the same targets: the champion's figure is what scoring
    # it alone on those targets gives.
    assert {row.name for row in outcome.report.rows} == {"oracle", "popularity", "markov"}
    alone = evaluate({"champion": champion}, outcome.test_targets, k=plan.k)
    assert outcome.champion_test_mrr == pytest.approx(alone.rows[0].mrr)
    comparison = compare_with_champion(outcome, champion, "1")
    assert comparison.champion_mrr == outcome.champion_test_mrr


def test_a_quick_probe_grows_until_it_takes_long_enough_then_draws_its_line():
    fitted = []

    class Counted(PopularityRecommender):
        def fit(self, sessions):
            fitted.append(len(sessions))
            return super().fit(sessions)

    toy = Candidate("toy", lambda params: Counted())
    train = [["a", "b"], ["b", "c"]] * 75_000
    # Never long enough: fourfold until every session, the last two fits make the line.
    probe = _probe(toy, train, {}, lambda model: 0.0, min_probe_s=1e9)
    assert fitted == [3_000, 12_000, 48_000, 150_000]
    assert (probe.sessions, probe.small_sessions) == (150_000, 48_000)
    # Long enough at once: a quarter of the sessions makes the line, fitted after.
    fitted.clear()
    probe = _probe(toy, train, {}, lambda model: 0.0, min_probe_s=0.0)
    assert fitted == [3_000, 750]
    assert (probe.sessions, probe.small_sessions) == (3_000, 750) and probe.validation_s >= 0


def test_the_probe_times_the_validation_day_on_its_first_targets_only(splits, monkeypatch):
    """A model slow to score on a large catalogue must not spend its allowance on the probe's
    timing: the probe scores a block of the validation day's first targets, the search the
    whole day."""
    monkeypatch.setattr(pipeline, "PROBE_VALIDATION_TARGETS", 40)
    scored = []  # the prefixes of each scoring call, in order
    score = PopularityRecommender.score

    def recorded(self, prefixes):
        scored.append([tuple(prefix) for prefix in prefixes])
        return score(self, prefixes)

    monkeypatch.setattr(PopularityRecommender, "score", recorded)
    plan = TrainingPlan(
        candidates=("popularity",), budget=SearchBudget(trials=1), time_budget_s=600.0,
        evaluation_sessions=100,
    )  # fmt: skip
    train_and_choose(splits, plan)
    validation = pipeline.sample_sessions(splits.validation, 100, plan.seed)
    targets = next_item_targets(
        validation, PopularityRecommender().fit(skus(splits.train)).item_ids
    )
    assert len(targets) > 2 * 40
    # First the probe: the day's first 40 targets; then the search: every target of the day.
    assert scored[0] == list(targets.prefixes[:40])
    assert [prefix for call in scored[1:] for prefix in call][: len(targets)] == list(
        targets.prefixes
    )


def test_a_serving_budget_leaves_out_the_members_it_cannot_pay_for(splits):
    """A budget of a thousandth of a millisecond per request: no member fits, so the blend
    serves the cheapest alone, and its metadata says what each member cost."""
    plan = TrainingPlan(
        candidates=("popularity", "markov", "vsknn", "blend"),
        budget=SearchBudget(trials=1),
        overrides={"blend": {"serving_budget_ms": 0.001}},
    )
    blend = train_and_choose(splits, plan, None).candidates["blend"]
    costs = blend.params["member_ms"]
    assert set(costs) == {"popularity", "markov", "vsknn"} and all(ms > 0 for ms in costs.values())
    assert blend.params["serving_budget_ms"] == 0.001
    (served,) = blend.recommender.members
    assert served.name == min(costs, key=costs.get)
    assert set(blend.params["left_out"]) == set(costs) - {served.name}
    with pytest.raises(ValueError, match="serving_budget_ms must be a positive number"):
        TrainingPlan(
            candidates=("markov", "popularity", "blend"),
            overrides={"blend": {"serving_budget_ms": 0}},
        )


def test_without_a_budget_nothing_is_trimmed_or_sampled(outcome, splits):
    assert outcome.windows == {} and outcome.budget_used_s is None
    assert outcome.test_sample is None and outcome.champion_test_mrr is None
    assert outcome.test_sessions_evaluated == len(splits.test)
    assert outcome.chosen_test_interval is None


@pytest.mark.parametrize(
    ("setting", "message"),
    [({"time_budget_s": 0}, "time_budget_s"), ({"evaluation_sessions": 10}, "evaluation_sessions")],
)
def test_bad_scale_settings_are_refused(setting, message):
    with pytest.raises(ValueError, match=message):
        TrainingPlan(candidates=("popularity",), **setting)
