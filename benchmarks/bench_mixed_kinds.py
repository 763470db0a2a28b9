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
  prefix's first item and of every later step), as the oracle does with the true processes;
- with `--found-kinds K`, `kinds found`: no labels, as in a real shop: the `shopper_kinds`
  candidate (`models/shopper_kinds.py`) with K kinds: found by EM over the training sessions,
  one model per kind, mixed by the posterior as above, each kind's distribution backing off to
  the pooled model's with weight `--backoff` / (views of the last item among the kind's sessions
  + `--backoff`), the kinds refined by `--refine-rounds` of hard EM on at most
  `--refine-sessions` sessions (0 rounds: the kinds of the EM over second-order chains alone).

Per family of the test sessions and overall, test MRR@20 and its ratio to the oracle's on the same
targets. `--quick`: a small shop (a smoke test).

A larger shop (`--sessions-per-day 30000 --items 5000`: about as many views per item as the
Coveo-sized month) scores a sample of its test sessions (`--test-sessions`) and finds the kinds on
a sample of its training sessions (`--found-sample`; every session is then given its likeliest
kind, and the kinds' models are fitted on them all).

Usage: .venv/bin/python benchmarks/bench_mixed_kinds.py [--quick] [--found-kinds K]
       [--backoff 50] [--family mixed] [--sessions-per-day N --items N] [--test-sessions N]
       [--found-sample N] [--refine-rounds 3] [--refine-sessions 200000]
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
from recs_platform.models.shopper_kinds import ShopperKindsRecommender
from recs_platform.simulation import FAMILY_NAMES, ShopConfig, simulate_sessions
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
    parser.add_argument("--family", default="mixed", choices=FAMILY_NAMES)
    parser.add_argument("--found-kinds", type=int, default=0, help="find this many kinds too")
    parser.add_argument("--backoff", type=float, default=50.0)
    parser.add_argument("--sessions-per-day", type=int, help="a larger shop (default 3,000)")
    parser.add_argument("--items", type=int, help="its catalogue (default 2,000; 200 per category)")
    parser.add_argument(
        "--test-sessions", type=int, help="score this many sampled test sessions (default all)"
    )
    parser.add_argument(
        "--found-sample",
        type=int,
        help="find the kinds on this many sampled training sessions (default all)",
    )
    parser.add_argument(
        "--refine-rounds", type=int, default=3, help="rounds of the kinds' hard EM (0: none)"
    )
    parser.add_argument(
        "--refine-sessions", type=int, default=200_000, help="sessions the hard EM moves"
    )
    args = parser.parse_args()
    size = dict(QUICK_SHOP) if args.quick else {}
    if args.sessions_per_day:
        size["sessions_per_day"] = args.sessions_per_day
    if args.items:
        size.update(n_items=args.items, n_categories=max(40, args.items // 200))
    config = ShopConfig(family=args.family, **size)
    started = time.perf_counter()
    window = TrainingWindow(config.end, days=config.days)
    sessions = [session for session in simulate_sessions(config) if len(session.skus) >= 2]
    if args.family == "mixed":
        family = build_family(config, build_catalogue(config))
        kinds = family.member_of(np.array([session.state for session in sessions]))
        names = list(SINGLE_FAMILIES)
    else:
        kinds, names = np.zeros(len(sessions), dtype=np.int64), [args.family]
    is_test = np.array([window.split_of(session.date) == "test" for session in sessions])
    rng = np.random.default_rng(0)
    if args.test_sessions and args.test_sessions < is_test.sum():  # the rest are not scored
        scored = rng.choice(np.flatnonzero(is_test), args.test_sessions, replace=False)
        kept = ~is_test
        kept[scored] = True
        sessions = [session for session, keep in zip(sessions, kept, strict=True) if keep]
        kinds, is_test = kinds[kept], is_test[kept]
    train = [list(s.skus) for s, test in zip(sessions, is_test, strict=True) if not test]
    train_kinds = kinds[~is_test]
    test = [(s.date, list(s.skus)) for s, test in zip(sessions, is_test, strict=True) if test]
    test_skus = [skus for _, skus in test]
    items = sorted({sku for session in train for sku in session})
    columns = {sku: column for column, sku in enumerate(items)}
    targets = next_item_targets(test, items)
    target_kinds = kinds[is_test][targets.session_of_target]
    oracle = ranks_of_targets(Oracle(config).ranker(test[0][0]), targets)
    pooled_model = ContextChainsRecommender().fit(train)
    rankings = {"pooled": ranks_of_targets(pooled_model, targets)}

    def per_kind(labels: np.ndarray, rows=None) -> tuple[list, np.ndarray, np.ndarray]:
        """A model per kind of at least 50 sessions, the kinds' shares and their item views;
        `labels` of the training sessions `rows` (default all)."""
        rows = np.arange(len(train)) if rows is None else rows
        kept = [kind for kind in range(labels.max() + 1) if np.sum(labels == kind) >= 50]
        fitted = [
            ContextChainsRecommender().fit([train[row] for row in rows[labels == kind]])
            for kind in kept
        ]
        views = np.zeros((len(kept), len(columns)))
        for slot, kind in enumerate(kept):
            for row in rows[labels == kind]:
                np.add.at(views[slot], [columns[sku] for sku in train[row]], 1.0)
        return fitted, np.array([np.mean(labels == kind) for kind in kept]), views

    models, shares, _ = per_kind(train_kinds)
    known = np.empty_like(rankings["pooled"])
    for kind, model in enumerate(models):
        rows = np.flatnonzero(target_kinds == kind)
        known[rows] = ranks_of_targets(model, targets, rows)
    rankings["kind_known"] = known
    rankings["kind_inferred"], _ = inferred_ranks(models, shares, test_skus, columns)
    purity = None
    if args.found_kinds:
        found = ShopperKindsRecommender(
            kinds=args.found_kinds,
            backoff=args.backoff,
            sample_sessions=args.found_sample or len(train),
            refine_rounds=args.refine_rounds,
            refine_sessions=args.refine_sessions,
        ).fit(train)
        labels = found.training_kinds
        # The share of sessions in the true family most common in their kind.
        purity = sum(np.bincount(train_kinds[labels == kind]).max() for kind in set(labels))
        purity = round(purity / len(train), 3)
        rankings[f"{args.found_kinds}_kinds_found"] = ranks_of_targets(found, targets)
    for name, ranks in rankings.items():
        if len(ranks) != len(targets):
            raise RuntimeError(f"{name}: {len(ranks)} ranks for {len(targets)} targets")

    def figures(rows: np.ndarray) -> dict:
        ceiling = mrr_at(oracle[rows], K)
        return {
            "targets": int(len(rows)),
            "oracle_mrr": round(ceiling, 4),
            **{
                f"{name}_vs_oracle": round(mrr_at(ranks[rows], K) / ceiling, 3)
                for name, ranks in rankings.items()
            },
        }

    result = {
        "family": args.family,
        "views_per_item": round(sum(map(len, train)) / len(columns), 1),
        "all": figures(np.arange(len(targets))),
    }
    if len(names) > 1:
        for kind, name in enumerate(names):
            result[name] = figures(np.flatnonzero(target_kinds == kind))
    if purity is not None:
        result["found_kinds_purity"] = purity
        result["backoff"] = args.backoff
        result["refine_rounds"] = args.refine_rounds if found.refined else 0
    result["seconds"] = round(time.perf_counter() - started, 1)
    suffix = f"_{args.family}" + (f"_{args.found_kinds}" if args.found_kinds else "")
    suffix += f"_{config.sessions_per_day}_per_day" if args.sessions_per_day else ""
    return save_and_print(
        "mixed_kinds" + suffix + ("_quick" if args.quick else ""),
        f"The {args.family} shop's context chains: pooled, per kind of shopper (MRR@20 / oracle)",
        result,
    )


if __name__ == "__main__":
    main()
