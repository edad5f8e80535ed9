"""``xdetox probe``, ``value-vectors``, ``intervene``, ``activations``, ``alignment`` (one stage
each, the same code as the components) and ``interpret-run`` (the interpret pipeline, locally)."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from xdetox.cli.pipeline_commands import TOY_INTERPRET_CONFIG, add_verbose_flag
from xdetox.config import (
    ActivationConfig,
    AlignmentConfig,
    Config,
    InterventionConfig,
    ProbeConfig,
    ValueVectorConfig,
    load_config,
)
from xdetox.config.interface import add_section_flags, flag_overrides
from xdetox.errors import ConfigError, XdetoxError
from xdetox.models import resolve_model

_MODEL_HELP = "model: 'toy' (the embedded toy model), a folder, a gs:// folder or a Hub id"
_PROMPTS_HELP = "prompts file/folder (JSONL, RTP-LX, CSV) or 'toy'"


def _config(args: argparse.Namespace, extra: dict[str, object] | None = None) -> Config:
    """The config files (default: the toy interpret recipe) and ``--set``s, then the command's
    own flags (``extra`` and those derived from the config sections), which win when given."""
    values = {**(extra or {}), **flag_overrides(args)}
    sets = [f"{k}={json.dumps(v)}" for k, v in values.items() if v is not None]
    return load_config(args.config or [TOY_INTERPRET_CONFIG], [*args.overrides, *sets])


def _print_summary(summary: dict) -> None:
    print(json.dumps(summary, indent=2, default=str, ensure_ascii=False))


def _model_dir(source: str) -> Path:
    """A local model folder for any model source ("toy" builds or reuses the cached toy model)."""
    return resolve_model(source)


@contextmanager
def _prepared_prompts(source: str, config: Config) -> Iterator[Path]:
    """Prompts normalised to one JSON-lines file (any language; first N per language as the
    recipe's ``data.max_prompts_per_language`` says), deleted after the block."""
    from xdetox.components.prepare_prompts.prompts import prepare_prompts

    with tempfile.TemporaryDirectory(prefix="xdetox-prompts-") as tmp:
        path = Path(tmp) / "prompts.jsonl"
        prepare_prompts(
            source,
            path,
            languages=None,
            max_per_language=config.data.max_prompts_per_language,
            seed=config.data.seed,
        )
        yield path


def _labelled_models(items: list[str]) -> dict[str, Path]:
    """``LABEL=DIR`` items (``DIR`` alone means ``base=DIR``) as an ordered mapping."""
    models: dict[str, Path] = {}
    for item in items:
        label, sep, folder = item.partition("=")
        if not sep:
            label, folder = "base", item
        label = label.strip()
        if not label or not folder:
            raise ConfigError(f"--model {item!r}: expected LABEL=DIR")
        if label in models:
            raise ConfigError(f"--model {item!r}: label {label!r} given twice")
        models[label] = _model_dir(folder)
    return models


def _offsets(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--offsets {text!r}: expected numbers separated by commas") from None


def register(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    default_note = f"Default config: {TOY_INTERPRET_CONFIG}."

    p = sub.add_parser(
        "probe",
        help="train a linear toxicity probe on a frozen model's mean-pooled final states",
        description="Bias-free linear probe, seeded 90/10 split, Adam, BCE, best epoch by "
        "validation loss (interpret.probe). " + default_note,
    )
    common(p)
    p.add_argument("--model", required=True, help=_MODEL_HELP)
    p.add_argument(
        "--data",
        required=True,
        help="Jigsaw train.csv, a text,label CSV, or scored generations .jsonl labelled by "
        "--threshold (path, gs:// or 'toy')",
    )
    p.add_argument("--test", help="optional held-out CSV (same formats) to evaluate the probe on")
    p.add_argument("--output", required=True, metavar="DIR", help="writes probe.safetensors, ...")
    add_section_flags(p, ProbeConfig)  # --label, --epochs, --learning-rate, ...
    p.set_defaults(handler=cmd_probe)

    p = sub.add_parser(
        "value-vectors",
        help="rank MLP value vectors by cosine with the probe; keep the active ones",
        description="Top-k value vectors by cosine with the probe, kept when their mean "
        "activation over greedy steps on prompts of one language is positive, projected onto "
        "the vocabulary (interpret.value_vectors). " + default_note,
    )
    common(p)
    p.add_argument("--model", required=True, help=_MODEL_HELP)
    p.add_argument("--probe", required=True, help="probe folder or probe.safetensors")
    p.add_argument("--prompts", required=True, help=_PROMPTS_HELP)
    p.add_argument("--output", required=True, metavar="DIR", help="writes value_vectors.csv")
    add_section_flags(p, ValueVectorConfig)  # --top-k, --steps, --language, ...
    p.set_defaults(handler=cmd_value_vectors)

    p = sub.add_parser(
        "intervene",
        help="shift the toxic neurons by offsets, generate, score, plot toxicity per language",
        description="Offset sweep × languages with the configured generation and scorer "
        "(interpret.intervention, generation, scoring). " + default_note,
    )
    common(p)
    p.add_argument("--model", required=True, help=_MODEL_HELP)
    p.add_argument("--neurons", required=True, help="value_vectors.csv (kept rows) or layer,index")
    p.add_argument("--prompts", required=True, help=_PROMPTS_HELP)
    p.add_argument("--offsets", help="comma-separated, e.g. 0,-1,-2,-3,-4,-5")
    p.add_argument("--language", action="append", help="only this language (repeat for several)")
    p.add_argument("--output", required=True, metavar="DIR", help="writes intervention.csv, ...")
    # Lists keep their own flags above (--offsets, --language); the scalars are derived.
    add_section_flags(p, InterventionConfig)
    p.set_defaults(handler=cmd_intervene)

    p = sub.add_parser(
        "activations",
        help="the toxic neurons' mean activation per language, per model (base vs tuned)",
        description="Mean activation at the last position over greedy steps "
        "(interpret.activations). " + default_note,
    )
    common(p)
    p.add_argument(
        "--model",
        required=True,
        action="append",
        metavar="LABEL=DIR",
        help="a model and its label, e.g. base=DIR and dpo=DIR (repeat); DIR alone is 'base'",
    )
    p.add_argument("--neurons", required=True, help="value_vectors.csv (kept rows) or layer,index")
    p.add_argument("--prompts", required=True, help=_PROMPTS_HELP)
    p.add_argument("--output", required=True, metavar="DIR", help="writes activations.csv, ...")
    add_section_flags(p, ActivationConfig)  # --steps, --batch-size, ...
    p.set_defaults(handler=cmd_activations)

    p = sub.add_parser(
        "alignment",
        help="cross-lingual alignment per layer (mean cosine and retrieval accuracy)",
        description="Mean-pooled hidden states of parallel sentences English ↔ X, per layer; "
        "with --metrics, correlated with each language's toxicity drop "
        "(interpret.alignment). " + default_note,
    )
    common(p)
    p.add_argument("--model", required=True, help=_MODEL_HELP)
    p.add_argument(
        "--pairs", required=True, help="parallel sentences, JSONL/CSV en,text,language, or 'toy'"
    )
    p.add_argument("--metrics", help="metrics.csv of a detox run (base vs tuned per language)")
    p.add_argument("--output", required=True, metavar="DIR", help="writes alignment.csv, ...")
    add_section_flags(p, AlignmentConfig)  # --layer, --metric, ...
    p.set_defaults(handler=cmd_alignment)

    p = sub.add_parser(
        "interpret-run",
        help="run the interpret pipeline on KFP's local runner (default: the toy setup)",
        description="Probe → value vectors → intervention sweep → activations → alignment → "
        "report, locally with kfp.local's SubprocessRunner. " + default_note,
    )
    common(p)
    p.add_argument("--output", metavar="DIR", help="run folder (default: runs/<name>-<timestamp>)")
    add_verbose_flag(p)
    p.set_defaults(handler=cmd_interpret_run)


def cmd_probe(args: argparse.Namespace) -> None:
    from xdetox.components.interpret.runners import probe_from_sources

    config = _config(args)
    model = _model_dir(args.model)
    summary = probe_from_sources(
        model, args.data, args.output, config.interpret.probe, test_source=args.test
    )
    summary.pop("roc_curve", None)  # hundreds of numbers; roc_curve.csv holds them
    summary.pop("history", None)
    _print_summary(summary)


def cmd_value_vectors(args: argparse.Namespace) -> None:
    from xdetox.components.interpret.value_vectors import run_value_vectors

    config = _config(args)
    model = _model_dir(args.model)
    with _prepared_prompts(args.prompts, config) as prompts:
        summary = run_value_vectors(
            model, args.probe, prompts, args.output, config.interpret.value_vectors
        )
    _print_summary(summary)


def cmd_intervene(args: argparse.Namespace) -> None:
    from xdetox.components.interpret.runners import intervention_scored

    config = _config(
        args,
        {
            "interpret.intervention.offsets": _offsets(args.offsets),
            "interpret.intervention.languages": args.language,
        },
    )
    model = _model_dir(args.model)
    with _prepared_prompts(args.prompts, config) as prompts:
        summary = intervention_scored(
            model,
            args.neurons,
            prompts,
            args.output,
            config.interpret.intervention,
            config.generation,
            config.scoring,
        )
    _print_summary(summary)


def cmd_activations(args: argparse.Namespace) -> None:
    from xdetox.components.interpret.activations import run_activations

    config = _config(args)
    models = _labelled_models(args.model)
    with _prepared_prompts(args.prompts, config) as prompts:
        summary = run_activations(
            models, args.neurons, prompts, args.output, config.interpret.activations
        )
    _print_summary(summary)


def cmd_alignment(args: argparse.Namespace) -> None:
    from xdetox.components.interpret.runners import alignment_from_sources

    config = _config(args)
    model = _model_dir(args.model)
    summary = alignment_from_sources(
        model, args.pairs, args.output, config.interpret.alignment, metrics_source=args.metrics
    )
    _print_summary(summary)


def cmd_interpret_run(args: argparse.Namespace) -> None:
    from xdetox.cli.live_view import run_and_show
    from xdetox.pipelines.interpret import build_interpret_pipeline, check_interpret_config

    config = _config(args)
    check_interpret_config(config)
    run_dir = Path(args.output or f"runs/{config.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise XdetoxError(f"{run_dir}: run folder exists and is not empty")
    title = f"interpret pipeline ([cyan]{config.name}[/]) locally"
    result = run_and_show(
        config, run_dir, "interpret", build_interpret_pipeline, verbose=args.verbose, title=title
    )
    print(f"report:  {result.report}")
    print(f"summary: {result.markdown}")
