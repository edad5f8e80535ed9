"""Scoring commands: ``xdetox agreement`` (two scorers on the same generations).

Also the scorer flags (``--scorer``, ``--qps``, ``--discovery-url``, ``--cache-dir``,
``--max-retries``, ``--classifier-model``, ``--classifier-preset``) as two helpers,
:func:`add_scorer_arguments` and :func:`scorer_overrides`, for any command that scores text.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from xdetox.config import load_config


def add_scorer_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags that override ``scoring.*`` (each one wins over the config files when given)."""
    parser.add_argument("--scorer", choices=("offline", "perspective", "classifier"))
    parser.add_argument("--qps", type=float, help="perspective: items per second (default 1)")
    parser.add_argument(
        "--discovery-url",
        help="perspective: discovery document URL (default: $PERSPECTIVE_DISCOVERY_URL, "
        "else Google's); the key always comes from $PERSPECTIVE_API_KEY",
    )
    parser.add_argument("--cache-dir", help="perspective: folder of the persistent score cache")
    parser.add_argument("--max-retries", type=int, help="perspective: retries per item")
    parser.add_argument("--classifier-model", help="classifier: model folder or Hub id")
    parser.add_argument(
        "--classifier-preset", choices=("textdetox-xlmr", "roberta-hate-dynabench", "toxic-bert")
    )


def scorer_overrides(args: argparse.Namespace) -> dict[str, object]:
    """``{dotted config key: value}`` of the scorer flags that were given."""
    flags = {
        "scoring.scorer": getattr(args, "scorer", None),
        "scoring.qps": getattr(args, "qps", None),
        "scoring.discovery_url": getattr(args, "discovery_url", None),
        "scoring.cache_dir": getattr(args, "cache_dir", None),
        "scoring.max_retries": getattr(args, "max_retries", None),
        "scoring.classifier.model": getattr(args, "classifier_model", None),
        "scoring.classifier.preset": getattr(args, "classifier_preset", None),
    }
    return {key: value for key, value in flags.items() if value is not None}


def register(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser(
        "agreement",
        help="per language, how two scorers agree on the same generations",
        description=(
            "Join the score files of two (or more) scorers on model, prompt_id, sample_index "
            "and language, and report per language Pearson and Spearman correlation, "
            "agreement at the threshold and Cohen's kappa. Files are grouped by their "
            "'scorer' field."
        ),
    )
    common(p)
    p.add_argument(
        "--scores",
        required=True,
        action="append",
        metavar="FILE",
        help="score JSON lines of either scorer; repeat for every file",
    )
    p.add_argument(
        "--output", required=True, metavar="DIR", help="writes agreement.csv, .md and .html"
    )
    p.add_argument("--attribute", default="TOXICITY", help="attribute to compare (TOXICITY)")
    p.add_argument("--threshold", type=float, help="default: metrics.threshold (0.5)")
    p.set_defaults(handler=cmd_agreement)


def cmd_agreement(args: argparse.Namespace) -> None:
    from xdetox.components.agreement.render import agreement_markdown, run_agreement

    extra = []
    if args.threshold is not None:
        extra.append(f"metrics.threshold={json.dumps(args.threshold)}")
    config = load_config(args.config, [*args.overrides, *extra])
    df = run_agreement(
        args.scores, args.output, attribute=args.attribute, threshold=config.metrics.threshold
    )
    print(agreement_markdown(df), end="")
    print(f"→ {Path(args.output) / 'agreement.csv'}")
