"""``xdetox run`` and ``xdetox compile``: whole pipelines."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from xdetox.config import load_config

# The interpret stages' toy-sized recipe (shipped): `run --pipeline interpret` and the interpret
# commands (interpret_commands.py) default to it.
TOY_INTERPRET_CONFIG = "toy-interpret.yaml"


def register(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    run = sub.add_parser(
        "run",
        help="run the detox pipeline on KFP's local runner (default: the embedded toy setup)",
        description="Run the whole detox pipeline locally with kfp.local's SubprocessRunner.",
    )
    common(run)
    run.add_argument(
        "--pipeline",
        default="detox",
        help="which pipeline: detox (tune and compare, default), eval (one model vs a "
        "baseline) or interpret (why the detoxification works; see also interpret-run)",
    )
    run.add_argument(
        "--output",
        metavar="DIR",
        help="run folder (default: runs/<name>-<timestamp>)",
    )
    add_verbose_flag(run)
    run.set_defaults(handler=cmd_run)

    comp = sub.add_parser(
        "compile",
        help="compile a pipeline (default: detox) to KFP IR YAML for a cluster",
        description="Compile with the config's defaults and cluster settings (GPUs, nodes).",
    )
    common(comp)
    comp.add_argument(
        "--pipeline", default="detox", help="which pipeline: detox, eval or interpret"
    )
    comp.add_argument(
        "-o",
        "--output",
        default="detox.yaml",
        metavar="FILE",
        help="output YAML (default: detox.yaml)",
    )
    comp.set_defaults(handler=cmd_compile)

    toy = sub.add_parser(
        "toy-model",
        help="write the embedded tiny model (with tokenizer) to a folder",
        description="Build (or reuse from the cache) the toy causal LM and copy it to DIR.",
    )
    toy.add_argument("dir", metavar="DIR")
    toy.add_argument("--debug", action="store_true", help="show tracebacks")
    toy.set_defaults(handler=cmd_toy_model)


def add_verbose_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="stream KFP's logs (every task's executor input and output) instead of the live "
        "view; either way each task's log is in <run folder>/logs/",
    )


def cmd_run(args: argparse.Namespace) -> None:
    from xdetox.cli.live_view import run_and_show
    from xdetox.pipelines.registry import get_pipeline_factory

    paths = args.config
    if args.pipeline == "interpret" and not paths:
        paths = [TOY_INTERPRET_CONFIG]  # the interpret stages' own toy-sized recipe
    factory = get_pipeline_factory(args.pipeline)  # an unknown name fails before anything
    config = load_config(paths, args.overrides)
    run_dir = Path(args.output or f"runs/{config.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    if run_dir.exists() and any(run_dir.iterdir()):
        from xdetox.errors import XdetoxError

        raise XdetoxError(f"{run_dir}: run folder exists and is not empty")
    title = f"running [cyan]{args.pipeline}[/] pipeline ({config.name}) locally"
    result = run_and_show(
        config, run_dir, args.pipeline, factory, verbose=args.verbose, title=title
    )
    print(f"report:  {result.report}")
    if result.metrics_csv is not None:
        print(f"metrics: {result.metrics_csv}")
    comparison = result.run_dir / "comparison.html"
    if comparison.exists():
        print(f"regression check: {comparison}")


def cmd_compile(args: argparse.Namespace) -> None:
    from xdetox.pipelines.compile import compile_pipeline

    config = load_config(args.config, args.overrides)
    path = compile_pipeline(config, args.output, args.pipeline)
    print(f"compiled {args.pipeline} pipeline ({config.name}) → {path}")


def cmd_toy_model(args: argparse.Namespace) -> None:
    from xdetox.models import TOY_MODEL, materialize_model

    meta = materialize_model(TOY_MODEL, args.dir)
    print(f"toy model ({meta['model_type']}, {meta['weights_bytes']} bytes) → {args.dir}")
