"""Scoring commands: ``xdetox agreement`` (two scorers on the same generations).

Also the scorer flags (``--scorer offline|perspective|classifier|jigsaw|wordlist``, ``--qps``,
``--discovery-url``, ``--cache-dir``, ``--max-retries``, ``--classifier-model``,
``--classifier-preset``, ``--jigsaw-batch-size``, ``--jigsaw-device``, ...), derived from the
``scoring`` section, as two helpers, :func:`add_scorer_arguments` and :func:`scorer_overrides`,
for any command that scores text.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from xdetox.config import MetricsConfig, ScoringConfig, load_config
from xdetox.config.interface import add_section_flags, flag_overrides
from xdetox.config.scoring import ClassifierConfig


def add_scorer_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags that override ``scoring.*`` (each one wins over the config files when given):
    one per scalar key of the section, and ``--classifier-<key>`` for ``scoring.classifier``.
    ``agreement_with`` is left to ``--set``: it belongs to the pipeline, not to one scorer."""
    add_section_flags(parser, ScoringConfig, exclude=("agreement_with",))
    add_section_flags(parser, ClassifierConfig, "scoring.classifier", flag_prefix="classifier-")


def scorer_overrides(args: argparse.Namespace) -> dict[str, object]:
    """``{dotted config key: value}`` of the scorer flags that were given."""
    return {k: v for k, v in flag_overrides(args).items() if k.startswith("scoring.")}


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
    add_section_flags(p, MetricsConfig, only=("threshold",))
    p.set_defaults(handler=cmd_agreement)


def cmd_agreement(args: argparse.Namespace) -> None:
    from xdetox.components.agreement.render import agreement_markdown, run_agreement

    extra = [f"{k}={json.dumps(v)}" for k, v in flag_overrides(args).items()]
    config = load_config(args.config, [*args.overrides, *extra])
    df = run_agreement(
        args.scores, args.output, attribute=args.attribute, threshold=config.metrics.threshold
    )
    print(agreement_markdown(df), end="")
    print(f"→ {Path(args.output) / 'agreement.csv'}")
