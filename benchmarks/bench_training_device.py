"""Training events/s of each torch candidate on the CPU, and on CUDA where there is one (issue 22).

The torch candidates of `session_model` (GRU4Rec, SASRec, the transition GRU, the latent-intent
chains), built as the training pipeline builds them (`training.candidates.candidate`, their
defaults), trained on the same simulated shop:

- `cpu`: float32 with `--cpu-threads` intra-op threads (default 1, as on the 2-core machine);
- `cuda_fp32`: on the GPU in float32 (`mixed_precision=False`);
- `cuda_mixed`: on the GPU with mixed precision (autocast to bfloat16, or float16 with a
  gradient scaler where the GPU has no bfloat16); the latent-intent chains train in float32
  only, so they have no such row.

The CUDA rows are measured only where `torch.cuda.is_available()`; elsewhere they are listed as
not measured. Events/s are the training product views over an epoch's seconds (the models'
`training_log`; on CUDA an epoch's end waits for the device), the median over the epochs; the
whole `fit` (network and cluster set-up included) is reported beside it. The MRR@20 of each
trained model on the shop's last day (its first `--eval-sessions` sessions, ranked against the
whole catalogue) shows that a faster device or precision did not change what was learned.

Shop: the default simulated shop (2,000 items, 14 days of 3,000 sessions, about 180,000 training
product views; the last day held out), `--items` another catalogue size (e.g. 50,000, where the
output layer dominates). `--quick`: 3 days of 1,000 sessions, 1 epoch, for a smoke test.
Usage: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_training_device.py [--quick]
       [--items 2000] [--epochs 2] [--models gru4rec sasrec gru_transition latent_intent]
       [--cpu-threads 1] [--eval-sessions 1000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time

import torch
from report import RESULTS, save_and_print

from recs_platform.evaluation.metrics import mrr_at
from recs_platform.evaluation.protocol import next_item_targets, ranks_of_targets
from recs_platform.simulation import ShopConfig, simulate_sessions
from recs_platform.training.candidates import candidate

TORCH_CANDIDATES = ("gru4rec", "sasrec", "gru_transition", "latent_intent")
K = 20
QUICK_SHOP = {"days": 3, "sessions_per_day": 1_000}


def shop_sessions(args) -> tuple[ShopConfig, list[tuple[str, ...]], list[tuple[str, ...]]]:
    """(config, training sessions, the held-out last day's sessions)."""
    config = ShopConfig(n_items=args.items, **(QUICK_SHOP if args.quick else {}))
    sessions = simulate_sessions(config)
    last_day = config.days - 1
    train = [session.skus for session in sessions if session.day < last_day]
    held_out = [session.skus for session in sessions if session.day == last_day]
    return config, train, held_out[: args.eval_sessions]


def variants() -> dict[str, dict]:
    """The device and precision settings measured here, CUDA ones only with a GPU."""
    measured = {"cpu": {"device": "cpu"}}
    if torch.cuda.is_available():
        measured["cuda_fp32"] = {"device": "cuda", "mixed_precision": False}
        # Unset: mixed precision where the model has it (the latent-intent chains do not).
        measured["cuda_mixed"] = {"device": "cuda"}
    return measured


def train_one(name: str, label: str, train, held_out, epochs: int, cpu_threads: int) -> dict:
    settings = variants()[label]
    params = {"epochs": epochs, **settings}
    if settings["device"] == "cpu":
        params["num_threads"] = cpu_threads
    recommender = candidate(name).make(params)
    if label == "cuda_mixed" and recommender.precision.dtype is None:
        return {"skipped": f"{name} trains in float32 only"}
    started = time.perf_counter()
    recommender.fit(train)
    fit_seconds = time.perf_counter() - started
    per_epoch = [record["events_per_second"] for record in recommender.training_log]
    targets = next_item_targets([(0, session) for session in held_out], recommender.item_ids)
    mrr = float(mrr_at(ranks_of_targets(recommender, targets), K))
    dtype = recommender.precision.dtype
    return {
        "device": str(recommender.device),
        "precision": str(dtype).removeprefix("torch.") if dtype is not None else "float32",
        "epochs": len(per_epoch),
        "events_per_s": round(statistics.median(per_epoch)),
        "events_per_s_by_epoch": [round(value) for value in per_epoch],
        "fit_seconds": round(fit_seconds, 2),
        f"mrr_{K}_last_day": round(mrr, 4),
        "targets": len(targets.prefixes),
    }


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a small shop and 1 epoch")
    parser.add_argument("--items", type=int, default=ShopConfig().n_items)
    parser.add_argument("--epochs", type=int, default=None, help="default 2 (1 with --quick)")
    parser.add_argument("--models", nargs="+", default=list(TORCH_CANDIDATES))
    parser.add_argument("--cpu-threads", type=int, default=1)
    parser.add_argument("--eval-sessions", type=int, default=1_000)
    args = parser.parse_args()
    unknown = set(args.models) - set(TORCH_CANDIDATES)
    if unknown:
        parser.error(f"not torch candidates: {', '.join(sorted(unknown))}")
    epochs = args.epochs or (1 if args.quick else 2)
    started = time.perf_counter()
    config, train, held_out = shop_sessions(args)
    views = sum(len(session) for session in train)
    measured = variants()
    result: dict = {
        "config": {
            "shop": dataclasses.asdict(config) | {"start": str(config.start)},
            "training_sessions": len(train),
            "training_product_views": views,
            "epochs": epochs,
            "cpu_threads": args.cpu_threads,
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "cpus": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "variants": list(measured),
        },
        "load_average_start": [round(value, 2) for value in os.getloadavg()],
    }
    print(
        f"{config.n_items:,}-item shop: {len(train):,} training sessions, {views:,} product views "
        f"(simulated in {time.perf_counter() - started:.0f} s); {epochs} epoch(s); "
        f"{', '.join(measured)}",
        flush=True,
    )
    for name in args.models:
        result[name] = {}
        for label in measured:
            row = train_one(name, label, train, held_out, epochs, args.cpu_threads)
            result[name][label] = row
            print(f"{name} {label}: {json.dumps(row)}", flush=True)
    result["load_average_end"] = [round(value, 2) for value in os.getloadavg()]
    result["run_seconds"] = round(time.perf_counter() - started, 1)
    name = "training_device_quick" if args.quick else "training_device"
    if args.items != ShopConfig().n_items:
        name += f"_{args.items}_items"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}_full.json").write_text(json.dumps(result, indent=2) + "\n")

    print(f"\n{'model':<16} {'variant':<11} {'precision':<9} {'events/s':>9} {'x cpu':>6} "
          f"{'fit s':>7} {'MRR@20':>7}")  # fmt: skip
    summary: dict = {"load_average_start_end": [result["load_average_start"],
                                                result["load_average_end"]]}  # fmt: skip
    for model in args.models:
        cpu = result[model]["cpu"]["events_per_s"]
        for label in measured:
            row = result[model][label]
            if "skipped" in row:
                print(f"{model:<16} {label:<11} {row['skipped']}")
                continue
            speedup = row["events_per_s"] / cpu
            print(
                f"{model:<16} {label:<11} {row['precision']:<9} {row['events_per_s']:>9,} "
                f"{speedup:>6.2f} {row['fit_seconds']:>7.1f} {row[f'mrr_{K}_last_day']:>7.4f}"
            )
            summary[f"{model}_{label}_events_per_s"] = row["events_per_s"]
            summary[f"{model}_{label}_mrr_{K}"] = row[f"mrr_{K}_last_day"]
        if not torch.cuda.is_available():
            summary[f"{model}_cuda"] = "not measured: no CUDA device here"
    summary["run_seconds"] = result["run_seconds"]
    return save_and_print(name, "training events/s by device (torch candidates)", summary)


if __name__ == "__main__":
    main()
