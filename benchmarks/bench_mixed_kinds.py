"""How much of the mixed shop's headroom is knowing what kind of shopper a session is.

The `mixed` shop's sessions each follow one of the five single families (hidden); the oracle's
posterior runs over (family, state), and every learned candidate pools the five behaviours in the
same item statistics. This measures, with the context chains (`models/context_chains.py`, counts
only, seconds to fit) on the mixed shop's default size:

- `pooled`: one model on every training session (what `session_model` trains);
- `kind known`: one model per family, fitted on that family's training sessions only, each test
  target scored by its own session's family's model (the true label: a ceiling no shop has);
- `kind inferred`: the same five models, mixed by the posterior over the family that the prefix
  gives (the family's share of the training sessions times each model's probability of the
  prefix's first item and of every later step), as the oracle does with the true processes.

Per family of the test sessions and overall, test MRR@20 and its ratio to the oracle's on the same
targets. `--quick`: a small shop (a smoke test).

Usage: .venv/bin/python benchmarks/bench_mixed_kinds.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from report import save_and_print

from recs_platform.datasets.training import TrainingWindow
from recs_platform.evaluation.metrics import mrr_at
from recs_platform.evaluation.protocol import next_item_targets, ranks_of_targets
from recs_platform.models.context_chains import ContextChainsRecommender
from recs_platform.simulation import ShopConfig, simulate_sessions
from recs_platform.simulation.catalogue import build_catalogue
from recs_platform.simulation.families import SINGLE_FAMILIES, build_family
from recs_platform.simulation.oracle import Oracle

K = 20
QUICK_SHOP = {"n_items": 300, "n_categories": 10, "sessions_per_day": 600, "days": 6}
FLOOR = 1e-9  # a probability below any a model gives: keeps the logarithms finite


def aligned(model: ContextChainsRecommender, prefixes: list, columns: dict) -> np.ndarray:
    """The model's scores, one column per item of `columns` (0 where it does not know one)."""
    scores = np.zeros((len(prefixes), len(columns)))
    scores[:, [columns[sku] for sku in model.item_ids]] = model.score(prefixes)
    return scores


def inferred_ranks(models, shares, test_sessions, columns) -> tuple[np.ndarray, np.ndarray]:
    """Each test target's rank under the posterior mixture of `models`, and its session's index."""
    ranks, sessions = [], []
    for number, skus in enumerate(test_sessions):
        prefixes = [skus[:position] for position in range(1, len(skus))]
        scores = [aligned(model, prefixes, columns) for model in models]
        first = np.log(
            [model.popular[model.item_index()[skus[0]]] if skus[0] in model.item_index() else FLOOR
             for model in models]
        )  # fmt: skip
        evidence = np.log(shares) + first
        for position in range(1, len(skus)):
            target = skus[position]
            if target in skus[:position] or target not in columns:
                continue  # a return visit or an unknown item: not a target, no evidence
            posterior = np.exp(evidence - evidence.max())
            mixture = (posterior / posterior.sum()) @ np.stack([s[position - 1] for s in scores])
            mixture[[columns[sku] for sku in skus[:position] if sku in columns]] = -np.inf
            ranks.append(1 + int(np.sum(mixture > mixture[columns[target]])))
            sessions.append(number)
            evidence = evidence + np.log([s[position - 1, columns[target]] + FLOOR for s in scores])
    return np.array(ranks), np.array(sessions)


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a small shop: a smoke test")
    args = parser.parse_args()
    config = ShopConfig(family="mixed", **(QUICK_SHOP if args.quick else {}))
    started = time.perf_counter()
    family = build_family(config, build_catalogue(config))
    window = TrainingWindow(config.end, days=config.days)
    sessions = [session for session in simulate_sessions(config) if len(session.skus) >= 2]
    kinds = family.member_of(np.array([session.state for session in sessions]))
    is_test = np.array([window.split_of(session.date) == "test" for session in sessions])
    train = [list(s.skus) for s, test in zip(sessions, is_test, strict=True) if not test]
    train_kinds = kinds[~is_test]
    test = [(s.date, list(s.skus)) for s, test in zip(sessions, is_test, strict=True) if test]
    items = sorted({sku for session in train for sku in session})
    columns = {sku: column for column, sku in enumerate(items)}
    targets = next_item_targets(test, items)
    target_kinds = kinds[is_test][targets.session_of_target]
    oracle = ranks_of_targets(Oracle(config).ranker(test[0][0]), targets)
    pooled = ranks_of_targets(ContextChainsRecommender().fit(train), targets)
    names = list(SINGLE_FAMILIES)
    models = [
        ContextChainsRecommender().fit([train[row] for row in np.flatnonzero(train_kinds == kind)])
        for kind in range(len(names))
    ]
    known = np.empty_like(pooled)
    for kind, model in enumerate(models):
        rows = np.flatnonzero(target_kinds == kind)
        known[rows] = ranks_of_targets(model, targets, rows)
    shares = np.bincount(train_kinds, minlength=len(names)) / len(train_kinds)
    inferred, _ = inferred_ranks(models, shares, [skus for _, skus in test], columns)
    if len(inferred) != len(targets):
        raise RuntimeError(f"{len(inferred)} inferred ranks for {len(targets)} targets")

    def figures(rows: np.ndarray) -> dict:
        ceiling = mrr_at(oracle[rows], K)
        return {
            "targets": int(len(rows)),
            "oracle_mrr": round(ceiling, 4),
            **{
                f"{name}_vs_oracle": round(mrr_at(ranks[rows], K) / ceiling, 3)
                for name, ranks in (
                    ("pooled", pooled),
                    ("kind_known", known),
                    ("kind_inferred", inferred),
                )
            },  # fmt: skip
        }

    result = {"all": figures(np.arange(len(targets)))}
    for kind, name in enumerate(names):
        result[name] = figures(np.flatnonzero(target_kinds == kind))
    result["seconds"] = round(time.perf_counter() - started, 1)
    return save_and_print(
        "mixed_kinds" + ("_quick" if args.quick else ""),
        "The mixed shop: context chains pooled, per known family, per inferred family (MRR@20 / "
        "oracle)",
        result,
    )


if __name__ == "__main__":
    main()
