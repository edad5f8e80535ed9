"""``xdetox compare``: a local page with k scored continuations per model, side by side.

The command only parses its flags and hands over to :mod:`xdetox.playground` (imported when
the command runs: ``xdetox --help`` stays quick without torch).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from xdetox.cli.scoring_commands import add_scorer_arguments, scorer_overrides
from xdetox.config import load_config
from xdetox.models import SOURCE_HELP as MODEL_SOURCES


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range (0 to 65535)")
    return port


def register(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser(
        "compare",
        help="a local page: type a prompt, see k scored continuations per model side by side",
        description=(
            "Load every --model once, then serve a page on this machine where you pick a "
            "language (data.languages), pick an example prompt (data.prompts) or type one, and "
            "see k continuations from each model side by side with their toxicity scores from "
            "the configured scorer. Sampling follows the recipe's generation section (every "
            "model with the same seed on the same prompt); --k replaces generation.n. "
            "Example: xdetox compare --model base=toy --model tuned=RUN/models/dpo"
        ),
    )
    common(p)
    p.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="[LABEL=]SOURCE",
        help=f"a model to compare, repeat for each: {MODEL_SOURCES} (e.g. a run's "
        "RUN/models/dpo); LABEL heads its column (default: the source's last path part)",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this "
        "machine only)"
    )  # fmt: skip
    p.add_argument(
        "--port", type=_port, default=0, help="port (default: 0, a free one the OS picks)"
    )
    p.add_argument(
        "--k", type=int, default=3, help="continuations per model the page starts with (1-10; "
        "default 3); replaces generation.n"
    )  # fmt: skip
    p.add_argument("--device", help="torch device for the models (default: cuda if visible)")
    add_scorer_arguments(p)  # --scorer, --classifier-model, ...
    p.set_defaults(handler=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> None:
    from xdetox.playground.models import parse_model_specs
    from xdetox.playground.server import serve
    from xdetox.playground.session import open_comparison

    specs = parse_model_specs(args.model)  # a bad --model fails before anything loads
    extra = [f"{key}={json.dumps(value)}" for key, value in scorer_overrides(args).items()]
    config = load_config(args.config, [*args.overrides, *extra])
    comparison = open_comparison(specs, config, k=args.k, device=args.device)
    serve(comparison, args.host, args.port)
