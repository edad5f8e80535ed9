"""``xdetox make-pairs``: preference pairs from a model's own samples, for users without
toxicity_pairwise data. The output folder is what ``xdetox dpo --data DIR`` reads.

The keys of ``data.self_pairs`` become flags (``--n``, ``--margin``, ``--scorer``,
``--temperature``, ...); the scorer's own settings (``--qps``, ``--classifier-model``, ...), the
generation backend's (``--backend``, ``--batch-size``, ``--shard-size``) and the split's
(``--eval-fraction``, ``--max-pairs``) too. A killed run resumes when run again with the same
arguments (the samples wait in ``<output>.samples``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from xdetox.config import (
    DataConfig,
    GenerationConfig,
    ScoringConfig,
    SelfPairsConfig,
    load_config,
)
from xdetox.config.interface import add_section_flags, flag_overrides
from xdetox.config.scoring import ClassifierConfig
from xdetox.models import SOURCE_HELP as MODEL_SOURCES
from xdetox.models import resolve_model


def register(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser(
        "make-pairs",
        help="preference pairs from a model's own samples: least vs most toxic per prompt",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common(p)
    p.add_argument("--model", required=True, help=f"model sampled from: {MODEL_SOURCES}")
    p.add_argument(
        "--prompts", help="prompts file/folder (JSONL, RTP-LX, CSV), gs:// or 'toy' "
        "(default: data.self_pairs.prompts, else data.prompts)"
    )  # fmt: skip
    p.add_argument(
        "--output", required=True, metavar="DIR", help="writes train/eval.jsonl and stats.json"
    )
    # --prompts is above; --max-tokens as in xdetox generate.
    add_section_flags(
        p, SelfPairsConfig, exclude=("prompts",), rename={"max_new_tokens": "--max-tokens"}
    )
    # The scorer's settings; which scorer is data.self_pairs.scorer (--scorer above).
    add_section_flags(p, ScoringConfig, exclude=("scorer", "agreement_with"))
    add_section_flags(p, ClassifierConfig, "scoring.classifier", flag_prefix="classifier-")
    add_section_flags(p, GenerationConfig, only=("backend", "batch_size", "shard_size"))
    add_section_flags(p, DataConfig, only=("eval_fraction", "max_pairs"))
    p.set_defaults(handler=cmd_make_pairs)


def cmd_make_pairs(args: argparse.Namespace) -> None:
    from xdetox.components.prepare_data.make_self_pairs import make_self_pairs
    from xdetox.components.prepare_prompts.prompts import prepare_prompts

    sets = [f"{k}={json.dumps(v)}" for k, v in flag_overrides(args).items()]
    config = load_config(args.config, [*args.overrides, *sets])
    settings = config.data.self_pairs
    source = args.prompts or settings.prompts or config.data.prompts
    model = resolve_model(args.model)
    with tempfile.TemporaryDirectory(prefix="xdetox-prompts-") as tmp:
        prompts = Path(tmp) / "prompts.jsonl"
        # Every prompt of the language: make_self_pairs draws data.self_pairs.max_prompts.
        prepare_prompts(
            source, prompts, languages=[settings.language], max_per_language=None,
            seed=config.data.seed,
        )  # fmt: skip
        stats = make_self_pairs(
            model,
            prompts,
            args.output,
            data=config.data,
            generation=config.generation,
            scoring=config.scoring,
        )
    print(json.dumps(stats, indent=2, default=str, ensure_ascii=False))
    print(f"pairs → {args.output}")
