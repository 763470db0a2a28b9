"""Recommenders on the simulated shops: HR@20, MRR@20, coverage@20, training time and events/s.

Three shops, each split in time as `shop_headroom` does (the last 2 days are the test set):
the default shop (`ShopConfig()`, about 210k product views), a mid-sized one with another seed
and catalogue size and the default traffic (seed 11, 5,000 items: the second shop of the goals)
and a larger one (seed 11, 20,000 items, 15,000 sessions a day: about 1.05M product views).
Models: popularity, Markov, V-SKNN, the context chains (counted conditionals mixed by weights
fitted on held-out sessions, `ContextChainsRecommender`), GRU4Rec, SASRec, the transition GRU
(GRU4Rec plus a learned first-order transition term, `TransitionGRURecommender`), the
latent-intent chains (a mixture of intent-tilted Markov chains over learned item clusters,
`LatentIntentRecommender`; alone and as `latent_intent_3`, the average of 3 of them from 3
seeds) and the transition GRU's ablation without the GRU's part
(`transition_only`: the transition term and item biases alone) and without the transition term
(`gru_no_transition`: GRU4Rec with the transition GRU's dropout), with their defaults (chosen on
the default shop's last training day; see the models' docstrings), and the oracle (the
simulator's exact next-product distribution, the ceiling). On the large shop GRU4Rec and SASRec
use the sampled softmax (their full softmax over 20,000 items is several times slower on this
CPU) and all torch models 3 epochs (an epoch there is 5x the default shop's); the transition
term needs the full softmax.

The large shop is evaluated on every 10th test session (about 12k targets): the oracle is slow
there. Training events/s = product views in the training sessions x epochs / training seconds (the
whole `fit`). Torch runs with one intra-op thread (`num_threads=1`): on this shared 2-core
machine two threads were up to 10x slower whenever the other core was busy. MRR@20 by prefix
length (1, 2, 3-4, 5+ items) is printed too: where history beyond the last item matters.

Usage: .venv/bin/python benchmarks/bench_models.py [--shops default mid large] [--models ...]
       [--family intent|ordered|complements|trends|revisits|mixed]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import time

import numpy as np
from report import RESULTS, save_and_print

from recs_platform.evaluation.metrics import mrr_at
from recs_platform.evaluation.protocol import (
    evaluate_recommender,
    next_item_targets,
    split_by_time,
)
from recs_platform.models.context_chains import ContextChainsRecommender
from recs_platform.models.gru4rec import GRU4RecRecommender, TransitionGRURecommender
from recs_platform.models.latent_intent import LatentIntentRecommender
from recs_platform.models.markov import MarkovRecommender
from recs_platform.models.popularity import PopularityRecommender
from recs_platform.models.sasrec import SASRecRecommender
from recs_platform.models.vsknn import VSKNNRecommender
from recs_platform.simulation import FAMILY_NAMES, ShopConfig, simulate_sessions
from recs_platform.simulation.oracle import Oracle

SHOPS = {
    "default": ShopConfig(),
    "large": ShopConfig(seed=11, n_items=20_000, sessions_per_day=15_000),
    # The second shop of the goals: another seed and catalogue size, the default traffic.
    "mid": ShopConfig(seed=11, n_items=5_000),
}
TEST_DAYS = 2
# Test sessions kept: every n-th. The oracle scores about 70 prefixes/s on the 20,000-item shop,
# so the large shop is evaluated (every model, the oracle included) on every 10th test session.
TEST_SESSION_STEP = {"default": 1, "large": 10, "mid": 1}
K = 20
BASELINES = ("popularity", "markov", "vsknn")
# Count models that are candidates, not baselines: their fit is counting, no epochs.
COUNTED = ("context_chains",)
TORCH = ("gru4rec", "sasrec", "gru_transition", "latent_intent", "latent_intent_3")
# Ablations of gru_transition, trained the same way: its transition term alone (T + b), and
# its GRU part alone (GRU4Rec with gru_transition's dropout).
ABLATIONS = ("transition_only", "gru_no_transition")
LENGTH_SLICES = ((1, 1), (2, 2), (3, 4), (5, 10_000))


def build(model: str, shop: str):
    # The large shop has 5x the training events per epoch: 3 epochs, sampled softmax.
    large = {"loss": "sampled", "epochs": 3} if shop == "large" else {}
    # The transition term needs the full softmax: on the large shop only fewer epochs.
    transition = {"epochs": 3} if shop == "large" else {}
    return {
        "popularity": lambda: PopularityRecommender(),
        "markov": lambda: MarkovRecommender(),
        "vsknn": lambda: VSKNNRecommender(),
        "context_chains": lambda: ContextChainsRecommender(),
        "gru4rec": lambda: GRU4RecRecommender(num_threads=1, **large),
        "sasrec": lambda: SASRecRecommender(num_threads=1, **large),
        "gru_transition": lambda: TransitionGRURecommender(num_threads=1, **transition),
        "latent_intent": lambda: LatentIntentRecommender(num_threads=1, **transition),
        "latent_intent_3": lambda: LatentIntentRecommender(
            "latent_intent_3", members=3, num_threads=1, **transition
        ),
        "transition_only": lambda: TransitionGRURecommender(
            "transition_only", num_threads=1, session_term=False, **transition
        ),
        "gru_no_transition": lambda: TransitionGRURecommender(
            "gru_no_transition", num_threads=1, transition_term=False, **large
        ),
    }[model]()


def run_shop(shop: str, models: list[str], family: str = "intent") -> dict:
    config = dataclasses.replace(SHOPS[shop], family=family)
    started = time.perf_counter()
    sessions = [(session.day, session.skus) for session in simulate_sessions(config)]
    split = split_by_time(sessions, TEST_DAYS)
    train_views = sum(len(session) for session in split.train)
    candidates = PopularityRecommender().fit(split.train).item_ids
    targets = next_item_targets(split.test[:: TEST_SESSION_STEP[shop]], candidates)
    print(
        f"\n{shop} shop ({config.family} family, seed {config.seed}, {config.n_items:,} items, "
        f"{config.sessions_per_day:,} sessions/day): {sum(len(s) for _, s in sessions):,} product "
        f"views, {train_views:,} in {len(split.train):,} training sessions; {len(targets):,} "
        f"test targets (test sessions: every {TEST_SESSION_STEP[shop]}); "
        f"simulated in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    lengths = np.array([len(prefix) for prefix in targets.prefixes])
    rows = {}
    for name in [*models, "oracle"]:
        started = time.perf_counter()
        if name == "oracle":
            recommender, epochs = Oracle(config).ranker, 0
        else:
            recommender = build(name, shop).fit(split.train)
            epochs = len(getattr(recommender, "training_log", [])) or 1
        seconds = time.perf_counter() - started
        load = os.getloadavg()[0]
        row, results = evaluate_recommender(
            recommender, targets, K, name=name, train_sessions=split.train
        )
        slices = {
            f"mrr_{K}_len_{low}" + (f"_{high}" if high != low else ""): mrr_at(
                results.ranks[(lengths >= low) & (lengths <= high)], K
            )
            for low, high in LENGTH_SLICES
        }
        rows[name] = {
            **row.metrics,
            **slices,
            "train_seconds": None if name == "oracle" else seconds,
            "train_events_per_second": None if name == "oracle" else train_views * epochs / seconds,
            "epochs": epochs,
            "eval_seconds": time.perf_counter() - started - seconds,
            # The machine is shared: its 1-minute load average when training ended.
            "load_average": load,
        }
        if hasattr(recommender, "training_log"):
            rows[name]["training_log"] = recommender.training_log
            rows[name]["hyperparameters"] = recommender.hyperparameters
        print(
            f"  {name:<10} HR@20 {row.metrics['hr_20']:.4f}  MRR@20 {row.metrics['mrr_20']:.4f}  "
            f"Cov@20 {row.metrics['coverage_20']:.4f}  train {seconds:7.1f} s  "
            + (
                f"{rows[name]['train_events_per_second']:9,.0f} events/s  "
                if name != "oracle"
                else ""
            )
            + "MRR@20 by prefix length "
            + " ".join(f"{value:.3f}" for value in slices.values())
            + f"  (load {rows[name]['load_average']:.1f})",
            flush=True,
        )
    result = {
        "config": {
            "seed": config.seed,
            "n_items": config.n_items,
            "sessions_per_day": config.sessions_per_day,
            "days": config.days,
        },
        "product_views": sum(len(s) for _, s in sessions),
        "train_views": train_views,
        "targets": len(targets),
        "rows": rows,
    }
    result["goals"] = goals(rows)
    return result


def goals(rows: dict) -> dict:
    baselines = [rows[name] for name in BASELINES if name in rows]
    neural = [name for name in TORCH if name in rows]
    if not baselines or not neural:
        return {}
    best = max(neural, key=lambda name: rows[name]["mrr_20"])
    best_mrr = max(row["mrr_20"] for row in baselines)
    best_hr = max(row["hr_20"] for row in baselines)
    found = {
        "best_torch": best,
        "mrr_vs_best_baseline (goal >= 1.05)": rows[best]["mrr_20"] / best_mrr,
        "hr_vs_best_baseline (goal >= 1.0)": rows[best]["hr_20"] / best_hr,
        "mrr_vs_oracle (goal >= 0.9)": rows[best]["mrr_20"] / rows["oracle"]["mrr_20"],
    }
    if "gru4rec" in rows:
        found["gru_events_per_second (goal >= 10,000)"] = rows["gru4rec"]["train_events_per_second"]
    return found


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shops", nargs="+", default=list(SHOPS), choices=list(SHOPS))
    parser.add_argument("--models", nargs="+", default=[*BASELINES, *COUNTED, *TORCH, *ABLATIONS])
    parser.add_argument(
        "--family", default="intent", choices=FAMILY_NAMES, help="the shops' generating process"
    )
    parser.add_argument("--verbose", action="store_true", help="log training progress")
    args = parser.parse_args()
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    result = {}
    for shop in args.shops:
        result[shop] = run_shop(shop, args.models, args.family)
        # Per shop, so one shop can be rerun alone: the goals, and everything (per-model
        # metrics, prefix-length slices, training logs) beside them.
        name = f"models_{shop}" + ("" if args.family == "intent" else f"_{args.family}")
        if result[shop]["goals"]:  # none without a baseline and a torch model
            save_and_print(name, f"models, {shop} shop: goals", result[shop]["goals"])
        (RESULTS / f"{name}_full.json").write_text(json.dumps(result[shop], indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
