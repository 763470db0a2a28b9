"""Score one setting of a model on a benchmark shop's validation day.

The model is the transition GRU, unless the settings name another: {"model": "latent_intent"}
(the latent-intent chains) or {"markov": true}.

The shop is split as `bench_models.py` splits it (the last 2 days are the test set); of the
days before, the last one is the validation day and the others train. The test days are never
read. Prints one JSON line: the settings, HR@20, MRR@20 and the training time.

Usage: .venv/bin/python benchmarks/validate_settings.py mid '{"epochs": 15}'
       .venv/bin/python benchmarks/validate_settings.py default '{"markov": true}'
       .venv/bin/python benchmarks/validate_settings.py mid '{"model": "latent_intent"}'
       .venv/bin/python benchmarks/validate_settings.py mid '{"model": "latent_intent",
           "members": 3}'
"""

from __future__ import annotations

import argparse
import json
import time

from bench_models import SHOPS, TEST_DAYS, K

from recs_platform.evaluation.protocol import (
    evaluate_recommender,
    next_item_targets,
    split_by_time,
)
from recs_platform.models.gru4rec import TransitionGRURecommender
from recs_platform.models.latent_intent import LatentIntentRecommender
from recs_platform.models.markov import MarkovRecommender
from recs_platform.models.popularity import PopularityRecommender
from recs_platform.simulation import simulate_sessions


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("shop", choices=list(SHOPS))
    parser.add_argument(
        "settings",
        help='the model\'s keywords as JSON, with "model": "latent_intent" for that one, '
        'or {"markov": true}',
    )
    args = parser.parse_args()
    settings = json.loads(args.settings)
    sessions = [(session.day, session.skus) for session in simulate_sessions(SHOPS[args.shop])]
    days = sorted({day for day, _ in sessions})
    before_the_test_days = [(day, skus) for day, skus in sessions if day not in days[-TEST_DAYS:]]
    split = split_by_time(before_the_test_days, 1)
    targets = next_item_targets(split.test, PopularityRecommender().fit(split.train).item_ids)
    started = time.perf_counter()
    keywords = {key: value for key, value in settings.items() if key != "model"}
    if settings.get("markov"):
        recommender = MarkovRecommender().fit(split.train)
    elif settings.get("model") == "latent_intent":
        recommender = LatentIntentRecommender(num_threads=1, **keywords).fit(split.train)
    else:
        recommender = TransitionGRURecommender(num_threads=1, **keywords).fit(split.train)
    seconds = time.perf_counter() - started
    row, _ = evaluate_recommender(recommender, targets, K, name="validation")
    print(
        json.dumps(
            {
                "shop": args.shop,
                "settings": settings,
                "targets": len(targets),
                f"hr_{K}": round(row.metrics[f"hr_{K}"], 4),
                f"mrr_{K}": round(row.metrics[f"mrr_{K}"], 4),
                "train_seconds": round(seconds),
            }
        )
    )


if __name__ == "__main__":
    main()
