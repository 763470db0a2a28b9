"""Champion against a weak challenger on simulated online traffic: does the A/B test name the
better model, how many sessions does it take, and how far is each from the best carousel?

The demo's shop is simulated; the demo's candidates are trained on its days but the last (the
offline test day, `train_and_choose` with the demo's settings), so the champion is the demo's
model and the challenger the popularity baseline of the same run. Both are packaged and served
by one `recs-platform serve` process (champion and challenger, half the sessions each), behind
the collector's `/recommend`; simulated shoppers (`simulation/online.py`, the default click
model) browse the shop's product pages through it, their impressions and clicks going to the
collector. Every `--look` sessions the A/B test (`evaluation/ab_test.py`) looks; the run stops
at the first look with a decision once the sessions needed for a 10 % effect (from the
variances so far) are reached, or at `--max-sessions`.

Reported: per variant the online CTR with its interval, the CTR the click model expected of its
lists, the oracle carousel's expected CTR on the same pages (the best any carousel earns) and
the offline test MRR@20; the decision, the lift, the sessions it took; whether the online CTR
order agrees with the offline MRR order.

Usage: .venv/bin/python benchmarks/bench_online.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from local_servers import free_port, running
from report import save_and_print

BIN = Path(sys.executable).parent
MINIMUM_DETECTABLE_EFFECT = 0.10


def trained_models(config, quick: bool):
    """The demo's candidates trained on the shop's days but the last two (validation, test)."""
    from recs_platform.simulation import simulate_sessions
    from recs_platform.simulation.oracle import Oracle
    from recs_platform.training.candidates import CANDIDATE_NAMES
    from recs_platform.training.pipeline import DatasetSplits, TrainingPlan, train_and_choose
    from recs_platform.training.search import SearchBudget

    sessions = [s for s in simulate_sessions(config) if len(s.skus) >= 2]
    days = sorted({s.date for s in sessions})

    def of(chosen):
        return [(s.date, list(s.skus)) for s in sessions if s.date in chosen]

    splits = DatasetSplits(of(days[:-2]), of(days[-2:-1]), of(days[-1:]))
    candidates = ("popularity", "markov", "vsknn") if quick else CANDIDATE_NAMES
    plan = TrainingPlan(candidates=candidates, budget=SearchBudget(trials=1 if quick else 2))
    return train_and_choose(splits, plan, Oracle(config).ranker)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small shop, the baselines only")
    parser.add_argument("--look", type=int, default=500, help="sessions between two looks")
    parser.add_argument("--max-sessions", type=int, default=None)
    args = parser.parse_args()
    max_sessions = args.max_sessions or (3_000 if args.quick else 30_000)

    from recs_platform.evaluation.ab_test import Decision, ab_test
    from recs_platform.serving.inference import package_model
    from recs_platform.simulation import ShopConfig
    from recs_platform.simulation.online import OnlineShopper, http_carousel, http_sender

    config = (
        ShopConfig(days=6, sessions_per_day=800, n_items=500, n_categories=12, seed=7)
        if args.quick
        else ShopConfig()
    )
    started = time.perf_counter()
    outcome = trained_models(config, args.quick)
    training_s = time.perf_counter() - started
    champion, challenger = outcome.chosen, outcome.candidates["popularity"]
    offline = {name: outcome.report.row(name).mrr for name in (champion.name, "popularity")}
    print(
        f"trained in {training_s:.0f} s; champion {champion.name} (test MRR@20 "
        f"{offline[champion.name]:.4f}), challenger popularity ({offline['popularity']:.4f})"
    )

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        served = (("champion", champion, "1"), ("challenger", challenger, "2"))
        packages = {
            variant: package_model(
                model.recommender, scratch / variant, "session-recommender", version, "bench"
            )
            for variant, model, version in served
        }
        endpoint_port, collector_port = free_port(), free_port()
        endpoint = f"http://127.0.0.1:{endpoint_port}"
        collector = f"http://127.0.0.1:{collector_port}"
        serve = [str(BIN / "recs-platform"), "serve", "--model", str(packages["champion"]),
                 "--challenger", str(packages["challenger"]), "--challenger-share", "0.5",
                 "--port", str(endpoint_port)]  # fmt: skip
        collect = [str(BIN / "recs-platform"), "collector", "--host", "127.0.0.1", "--port",
                   str(collector_port), "--endpoint-url", endpoint, "--no-storefront"]  # fmt: skip
        environ = {"RECS_DATA_DIR": str(scratch / "data")}
        with (
            running(serve, f"{endpoint}/ping", environ),
            running(collect, f"{collector}/health", environ),
        ):
            shopper = OnlineShopper(
                config,
                http_carousel(collector),
                http_sender(collector),
                clock_ms=lambda: int(time.time() * 1000),
            )
            browsing = time.perf_counter()
            report, looked = None, 0
            while looked < max_sessions:
                shopper.browse(args.look)
                looked += args.look
                report = ab_test(
                    pd.DataFrame(shopper.report.session_rows),
                    minimum_detectable_effect=MINIMUM_DETECTABLE_EFFECT,
                    min_sessions=args.look,
                )
                print(f"  {looked:,} sessions: {report.describe()}")
                if (
                    report.decision is not Decision.NOT_YET_KNOWN
                    and looked >= report.sessions_needed
                ):
                    break
            browsing_s = time.perf_counter() - browsing

    tallies = shopper.report.variants
    online_order = sorted(("champion", "challenger"), key=lambda v: -tallies[v].ctr)
    offline_order = ["champion", "challenger"]
    if offline[champion.name] < offline["popularity"]:
        offline_order.reverse()
    result = {"shop": "quick" if args.quick else "demo (ShopConfig())",
              "champion": f"{champion.name} (offline test MRR@20 {offline[champion.name]:.4f})",
              "challenger": f"popularity (offline test MRR@20 {offline['popularity']:.4f})",
              "sessions": looked, "decision": str(report.decision),
              "ctr_lift": f"{report.ctr_lift.value:+.1%} ({report.ctr_lift.low:+.1%} to "
                          f"{report.ctr_lift.high:+.1%}, 95 %)",
              "sessions_needed_for_10pct": report.sessions_needed,
              "online_order_agrees_with_offline": online_order == offline_order,
              "training_seconds": round(training_s, 1),
              "browsing_seconds": round(browsing_s, 1),
              "carousels_per_second": round(
                  sum(t.impressions for t in tallies.values()) / browsing_s, 1)}  # fmt: skip
    for variant, summary in (("champion", report.champion), ("challenger", report.challenger)):
        tally = tallies[variant]
        result[f"{variant}_ctr"] = (
            f"{summary.ctr.value:.4f} ({summary.ctr.low:.4f}-{summary.ctr.high:.4f}), expected "
            f"{tally.expected_ctr:.4f}, oracle carousel {tally.oracle_ctr:.4f} "
            f"({tally.expected_ctr / tally.oracle_ctr:.2f}x of it), {summary.sessions:,} sessions"
        )
    save_and_print(
        "online_quick" if args.quick else "online", "champion against challenger online", result
    )
    decided = report.decision is not Decision.NOT_YET_KNOWN
    return 0 if decided and result["online_order_agrees_with_offline"] else 1


if __name__ == "__main__":
    sys.exit(main())
