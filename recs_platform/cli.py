"""`recs-platform`: the command line."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

from recs_platform.settings import Settings, SettingsError


class UsageError(Exception):
    """Arguments that parse but do not make sense together; exit code 2 like argparse."""


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-01") from error


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from error
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _shop_config(args: argparse.Namespace):
    """The shop of the arguments: --preset's (simulate only) or the default shop, with the
    options given on the command line changing it."""
    from recs_platform.simulation import ShopConfig

    given = {
        "start": args.start,
        "days": args.days,
        "sessions_per_day": args.sessions_per_day,
        "n_items": args.items,
        "seed": args.seed,
        "family": args.family,
    }
    changes = {name: value for name, value in given.items() if value is not None}
    preset, scale = getattr(args, "preset", None), getattr(args, "scale", None)
    try:
        if preset is not None:
            return ShopConfig.preset(preset, scale=1.0 if scale is None else scale, **changes)
        if scale is not None:
            raise UsageError("--scale scales a --preset; give one")
        return ShopConfig(**changes)
    except ValueError as error:
        raise UsageError(str(error)) from error


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from error
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{value} must lie in (0, 1]")
    return value


def _add_shop_arguments(parser: argparse.ArgumentParser) -> None:
    from recs_platform.simulation import FAMILY_NAMES, FAMILY_SUMMARIES, ShopConfig

    # No defaults here: an option not given keeps the value of the preset or the default shop.
    defaults = ShopConfig()
    parser.add_argument(
        "--family",
        choices=FAMILY_NAMES,
        help="the shoppers' generating process (README, 'The synthetic shop'): "
        + "; ".join(f"{name}: {FAMILY_SUMMARIES[name]}" for name in FAMILY_NAMES),
    )
    parser.add_argument(
        "--start", type=_date, help=f"first day (UTC; default {defaults.start.isoformat()})"
    )
    parser.add_argument("--days", type=_positive_int, help=f"default {defaults.days}")
    parser.add_argument(
        "--sessions-per-day", type=_positive_int, help=f"default {defaults.sessions_per_day}"
    )
    parser.add_argument("--items", type=_positive_int, help=f"default {defaults.n_items}")
    parser.add_argument("--seed", type=int, help=f"default {defaults.seed}")


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from recs_platform.simulation import simulate_to_landing

    config = _shop_config(args)
    try:
        report = simulate_to_landing(config, settings.landing_dir)
    except FileExistsError as error:
        print(
            f"error: {error}\nThis shop (seed {config.seed}) is already in the landing zone, "
            "which is immutable. Pick another --seed or another RECS_DATA_DIR.",
            file=sys.stderr,
        )
        return 1
    print(f"Simulated shop written to {settings.landing_dir}")
    print(report.format_table())
    return 0


def _simulate_online(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from recs_platform.simulation import SHOP_CONFIG_FILE, ShopConfig
    from recs_platform.simulation.online import (
        ClickModel,
        OnlineShopper,
        http_carousel,
        http_sender,
    )

    shop_file = args.shop or settings.landing_dir / SHOP_CONFIG_FILE
    if not shop_file.is_file():
        raise UsageError(
            f"no shop at {shop_file}: run `recs-platform simulate` first (its shop.json says "
            "which catalogue the shoppers browse), or give --shop"
        )
    try:
        config = ShopConfig.read(shop_file)
        click_model = ClickModel(args.attention, args.position_decay)
    except ValueError as error:
        raise UsageError(str(error)) from error
    shopper = OnlineShopper(
        config,
        http_carousel(args.url),
        http_sender(args.collector or args.url),
        click_model,
        k=args.k,
        seed=args.seed,
        clock_ms=lambda: int(time.time() * 1000),
    )
    report = shopper.browse(args.shoppers)
    print(json.dumps(report.as_dict(), indent=2))
    return 0


def _headroom(args: argparse.Namespace, settings: Settings) -> int:
    from recs_platform.evaluation.protocol import shop_headroom

    print(shop_headroom(_shop_config(args), test_days=args.test_days).format_table())
    return 0


def _import_coveo(args: argparse.Namespace, settings: Settings) -> int:
    from recs_platform.importers.coveo import CoveoFormatError, import_coveo

    if not args.path.is_file():
        print(f"error: {args.path} is not a file", file=sys.stderr)
        return 1
    try:
        summary = import_coveo(args.path, settings.landing_dir)
    except CoveoFormatError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Imported {args.path} into {settings.landing_dir}")
    print(summary.format_table())
    return 0


def _collector_storefront(args: argparse.Namespace, settings: Settings):
    """The shop the collector serves under /shop: --storefront's shop.json, else the simulated
    shop of the landing zone if there is one, else none (--no-storefront: none either way)."""
    from recs_platform.serving.storefront import Storefront
    from recs_platform.simulation import SHOP_CONFIG_FILE

    if args.no_storefront:
        if args.storefront is not None:
            raise UsageError("give --storefront or --no-storefront, not both")
        return None
    path = args.storefront
    if path is None:
        path = settings.landing_dir / SHOP_CONFIG_FILE
        if not path.is_file():
            return None
    try:
        return Storefront.read(path)
    except (OSError, ValueError) as error:
        raise UsageError(f"--storefront {path}: {error}") from error


def _collector(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from recs_platform.collection.app import CollectorConfig, create_app

    storefront = _collector_storefront(args, settings)
    app = create_app(
        CollectorConfig(
            landing_root=settings.landing_dir,
            cors_origins=settings.cors_origins,
            rotate_bytes=args.rotate_mb * 1024 * 1024,
            rotate_seconds=args.rotate_seconds,
            endpoint_url=args.endpoint_url or settings.endpoint_url,
            storefront=storefront,
        )
    )
    print(f"Collector on http://{args.host}:{args.port}, landing in {settings.landing_dir}")
    if storefront is not None:
        print(
            f"The shop: http://{args.host}:{args.port}/shop ({len(storefront.products)} products)"
        )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from recs_platform.serving.inference import load_model
    from recs_platform.serving.local_endpoint import LocalEndpoint
    from recs_platform.serving.server import (
        WORKER_CONFIG_VARIABLE,
        ServerConfig,
        config_to_environment,
        create_app,
    )

    if args.stop:
        stopped = LocalEndpoint(settings.endpoint_dir, port=settings.endpoint_port).stop()
        print("Stopped the local endpoint." if stopped else "No local endpoint was running.")
        return 0
    if args.model is not None and args.endpoint_dir is not None:
        raise UsageError("give --model or --endpoint-dir, not both")
    if args.challenger is not None and args.model is None:
        raise UsageError("--challenger goes with --model (the champion)")
    endpoint_dir = None
    if args.model is None:
        endpoint_dir = args.endpoint_dir or settings.endpoint_dir
    try:
        config = ServerConfig(
            model_source=args.model,
            endpoint_dir=endpoint_dir,
            torch_threads=args.torch_threads,
            challenger_source=args.challenger,
            challenger_share=args.challenger_share,
            variant=args.variant,
            max_batch_instances=args.max_batch_instances,
        )
        # One process: the models load here, so a bad source stops the command at once. Several:
        # each worker loads its own, and uvicorn would restart a worker that fails for ever, so
        # the sources are checked here first (the parent holds no model).
        if args.workers == 1:
            app = create_app(config)
        else:
            app = "recs_platform.serving.server:app_from_environment"
            os.environ[WORKER_CONFIG_VARIABLE] = config_to_environment(config)
            for source in (args.model, args.challenger):
                if source is not None:
                    load_model(source)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    source = args.model or f"the endpoint folder {endpoint_dir}"
    if args.challenger is not None:
        source += f" and the challenger {args.challenger} ({args.challenger_share:g} of sessions)"
    workers = f" in {args.workers} worker processes" if args.workers > 1 else ""
    print(
        f"Inference server on http://{args.host}:{args.port} serving {source}{workers}", flush=True
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        workers=args.workers if args.workers > 1 else None,
        factory=args.workers > 1,
    )
    return 0


def _dev(args: argparse.Namespace, settings: Settings) -> int:
    from recs_platform.dev import DevPorts, run_dev

    if settings.env != "local":
        raise UsageError("the local stack runs on the embedded defaults: unset RECS_ENV")
    return run_dev(settings, DevPorts(args.dagster_port, args.mlflow_port, args.collector_port))


def _dbt_manifest(args: argparse.Namespace, settings: Settings) -> int:
    from recs_platform.transform.manifest import prepare_manifest

    manifest = prepare_manifest(settings.env, settings.data_dir)
    print(f"dbt manifest for target {settings.env}, data in {settings.data_dir}: {manifest}")
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from recs_platform.demo import run_demo

    return run_demo(
        settings,
        search_trials=args.search_trials,
        epochs=args.epochs,
        candidates=args.candidates.split(",") if args.candidates else None,
    )


def build_parser() -> argparse.ArgumentParser:
    from recs_platform.simulation.config import PRESETS
    from recs_platform.training.candidates import CANDIDATE_NAMES

    parser = argparse.ArgumentParser(
        prog="recs-platform",
        description="In-session product recommendations: simulate, import, load, train, serve.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    simulate = commands.add_parser(
        "simulate", help="simulate a shop into the landing zone and print its statistics"
    )
    _add_shop_arguments(simulate)
    simulate.add_argument(
        "--preset",
        choices=list(PRESETS),
        help="a named shop size, the other options changing it: coveo = the size of Coveo's "
        "SIGIR eCom 2021 data (30 days, 4.95 M sessions, about 36 M events, 50,000 products, "
        "the mixed shop)",
    )
    simulate.add_argument(
        "--scale",
        type=_scale,
        help="with --preset: multiply its sessions per day (and returning shoppers) by this, "
        "same catalogue (a smoke test of the full size)",
    )
    simulate.set_defaults(run=_simulate)

    online = commands.add_parser(
        "simulate-online",
        help="simulated shoppers browse the live storefront: each product page asks /recommend "
        "for its carousel, the impressions and clicks go to the collector (README, 'The online "
        "loop')",
    )
    online.add_argument("--shoppers", type=_positive_int, default=100, help="sessions to walk")
    online.add_argument(
        "--url", default="http://127.0.0.1:8000", help="the collector serving /recommend"
    )
    online.add_argument("--collector", help="where the events go (default: --url)")
    online.add_argument(
        "--shop", type=Path, help="the shop's shop.json (default: the landing zone's)"
    )
    online.add_argument("--k", type=_positive_int, default=10, help="carousel size")
    online.add_argument(
        "--attention", type=float, default=0.9, help="P(the shopper notices position 1)"
    )
    online.add_argument(
        "--position-decay",
        type=float,
        default=1.0,
        help="position p is noticed with attention / p ** decay",
    )
    online.add_argument("--seed", type=int, default=0)
    online.set_defaults(run=_simulate_online)

    headroom = commands.add_parser(
        "headroom",
        help="evaluate the simulator's oracle against a Markov chain and popularity (in memory)",
    )
    _add_shop_arguments(headroom)
    headroom.add_argument("--test-days", type=_positive_int, default=2)
    headroom.set_defaults(run=_headroom)

    coveo = commands.add_parser(
        "import-coveo", help="convert a Coveo SIGIR eCom 2021 browsing CSV into landing files"
    )
    coveo.add_argument("path", type=Path, help="browsing_train.csv")
    coveo.set_defaults(run=_import_coveo)

    collector = commands.add_parser(
        "collector", help="run the event collector (pixel, JSON, Snowplow) into the landing zone"
    )
    collector.add_argument("--host", default="127.0.0.1")
    collector.add_argument("--port", type=_positive_int, default=8000)
    collector.add_argument(
        "--rotate-mb",
        type=_positive_int,
        default=64,
        help="publish a landing file once it reaches this size",
    )
    collector.add_argument(
        "--rotate-seconds",
        type=float,
        default=60.0,
        help="publish a landing file once it is this old",
    )
    collector.add_argument(
        "--endpoint-url",
        default=None,
        help="the inference endpoint GET /recommend asks "
        "(default: the local endpoint, http://127.0.0.1:$RECS_ENDPOINT_PORT)",
    )
    collector.add_argument(
        "--storefront",
        type=Path,
        default=None,
        metavar="SHOP_JSON",
        help="serve a demo shop under /shop on the catalogue this simulator config describes "
        "(default: $RECS_DATA_DIR/landing/simulator/shop.json when it exists, which "
        "`recs-platform simulate` writes; otherwise no shop)",
    )
    collector.add_argument(
        "--no-storefront",
        action="store_true",
        help="no shop under /shop, even when the landing zone has a simulated shop",
    )
    collector.set_defaults(run=_collector)

    serve = commands.add_parser(
        "serve",
        help="run the inference server (SageMaker's /ping and /invocations) for a model",
    )
    # The SageMaker container sets these (deployments/sagemaker/Dockerfile): SageMaker runs
    # `<image> serve` with the model unpacked in /opt/ml/model and expects port 8080.
    serve.add_argument(
        "--model",
        default=os.environ.get("RECS_SERVE_MODEL") or None,
        help="a model folder or MLflow URI (models:/session-recommender@champion); default "
        "$RECS_SERVE_MODEL, else follow the local endpoint folder ($RECS_DATA_DIR/endpoint)",
    )
    serve.add_argument("--endpoint-dir", type=Path, default=None)
    serve.add_argument(
        "--variant",
        choices=["champion", "challenger"],
        default=os.environ.get("RECS_SERVE_VARIANT") or "champion",
        help="with --model alone: the variant its answers name (default $RECS_SERVE_VARIANT, "
        "which a SageMaker production variant's model sets, else champion)",
    )
    serve.add_argument(
        "--challenger",
        default=None,
        help="with --model: a second model folder or MLflow URI served beside it as the "
        "challenger, to --challenger-share of sessions (by a hash of the session id)",
    )
    serve.add_argument(
        "--challenger-share",
        type=float,
        default=0.0,
        help="with --challenger: the share of sessions (0 to 1) it answers (default 0)",
    )
    serve.add_argument("--host", default=os.environ.get("RECS_SERVE_HOST", "127.0.0.1"))
    # argparse passes a string default through `type` too: a bad RECS_SERVE_PORT is named.
    serve.add_argument(
        "--port", type=_positive_int, default=os.environ.get("RECS_SERVE_PORT", "8080")
    )
    # Counts, each defaulting to its RECS_SERVE_* variable (a bad value is named, as the port's).
    for flag, default, help_text in (
        ("--torch-threads", "1", "torch's intra-op threads for torch models (default 1: fastest "
         "when the machine is shared; see benchmarks/README.md)"),
        ("--workers", "1", "server processes, each with its own copy of the models (default 1; "
         "one per core the model may use: each process scores one batch at a time)"),
        ("--max-batch-instances", "32", "the most instances one model call scores for the "
         "requests that queued while the model was busy (default 32; 1: one request per call)"),
    ):  # fmt: skip
        variable = "RECS_SERVE_" + flag.removeprefix("--").replace("-", "_").upper()
        serve.add_argument(
            flag,
            type=_positive_int,
            default=os.environ.get(variable, default),
            help=f"{help_text}; ${variable}",
        )
    serve.add_argument(
        "--stop", action="store_true", help="stop the local endpoint a deployment started"
    )
    serve.set_defaults(run=_serve)

    dev = commands.add_parser(
        "dev",
        help="the local stack: Dagster UI and daemon, MLflow UI, the endpoint, the collector "
        "with the storefront (Ctrl-C stops them all)",
    )
    dev.add_argument("--dagster-port", type=_positive_int, default=3000)
    dev.add_argument("--mlflow-port", type=_positive_int, default=5000)
    dev.add_argument("--collector-port", type=_positive_int, default=8000)
    dev.set_defaults(run=_dev)

    manifest = commands.add_parser(
        "dbt-manifest",
        help="parse the dbt project for the Dagster definitions (make dbt-manifest) as their runs "
        "invoke dbt (target RECS_ENV, data under RECS_DATA_DIR), so each run reuses the parse",
    )
    manifest.set_defaults(run=_dbt_manifest)

    demo = commands.add_parser(
        "demo",
        help="simulate the default shop and materialize the asset graph: every day loaded, "
        "dbt, the training dataset, the model (search, MLflow, champion), the dashboard",
    )
    # A laptop-sized budget: the defaults and one Optuna trial per tunable candidate, torch
    # models for 3 epochs (a few minutes on two cores). The session_model config in the Dagster
    # UI has the full search.
    demo.add_argument(
        "--search-trials",
        type=int,
        default=2,
        help="Optuna trials per tunable candidate, the defaults counted (1: defaults only; "
        "the demo's default is a small search: the defaults and one trial)",
    )
    demo.add_argument(
        "--epochs",
        type=int,
        default=3,
        help="the most epochs a torch model trains (early stopping may stop it sooner; "
        "0: their defaults)",
    )
    demo.add_argument(
        "--candidates",
        default=None,
        help=f"comma-separated candidates to train (default: all: {','.join(CANDIDATE_NAMES)})",
    )
    demo.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        return args.run(args, settings)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
