"""One command per pipeline stage, as the seed's scripts were: same code as the components."""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from xdetox.cli.scoring_commands import add_scorer_arguments
from xdetox.config import (
    Config,
    DataConfig,
    GenerationConfig,
    MetricsConfig,
    TrainingConfig,
    load_config,
)
from xdetox.config.generation import protocol_values
from xdetox.config.interface import add_section_flags, flag_overrides
from xdetox.models import SOURCE_HELP as MODEL_SOURCES
from xdetox.models import resolve_model


def _config(args: argparse.Namespace, extra: dict[str, object] | None = None) -> Config:
    """The config files and ``--set``s, then ``extra``, then the flags derived from the config
    sections (``add_section_flags``), which win when given."""
    values = {**(extra or {}), **flag_overrides(args)}
    sets = [f"{k}={json.dumps(v)}" for k, v in values.items() if v is not None]
    return load_config(args.config, [*args.overrides, *sets])


def _print_summary(summary: dict) -> None:
    print(json.dumps(summary, indent=2, default=str, ensure_ascii=False))


def register(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("prepare-data", help="read, filter and split preference pairs")
    common(p)
    p.add_argument("--data", required=True, help="toxicity_pairwise folder/file or 'toy'")
    p.add_argument("--output", required=True, metavar="DIR", help="writes train/eval.jsonl")
    p.add_argument(
        "--model", help=f"model whose tokenizer counts tokens for the filter: {MODEL_SOURCES}"
    )
    # The sources are --data and --model; the filter's and split's keys become flags.
    add_section_flags(p, DataConfig, exclude=("preference", "prompts", "max_prompts_per_language"))
    p.set_defaults(handler=cmd_prepare_data)

    p = sub.add_parser("dpo", help="DPO preference tuning (TRL; LoRA via PEFT or full)")
    common(p)
    p.add_argument(
        "--data", required=True, help="toxicity_pairwise folder/file, a prepared folder, or 'toy'"
    )
    p.add_argument("--model", required=True, help=f"base model: {MODEL_SOURCES}")
    p.add_argument("--output", required=True, metavar="DIR", help="adapter or model folder")
    add_section_flags(p, TrainingConfig, exclude=("method",))  # --beta, --learning-rate, ...
    p.set_defaults(handler=cmd_dpo)

    p = sub.add_parser("merge", help="merge a LoRA adapter into its base model")
    common(p)
    p.add_argument("--base", required=True, help=f"base model: {MODEL_SOURCES}")
    p.add_argument(
        "--adapter", required=True, help="adapter (from xdetox dpo): a folder or gs:// folder"
    )
    p.add_argument("--output", required=True, metavar="DIR")
    p.set_defaults(handler=cmd_merge)

    p = sub.add_parser("generate", help="sample continuations of prompts with a model")
    common(p)
    p.add_argument("--model", required=True, help=f"model: {MODEL_SOURCES}")
    p.add_argument("--prompts", required=True, help="prompts file/folder (JSONL, RTP-LX, CSV)")
    p.add_argument("--output", required=True, metavar="FILE", help="generations JSON lines")
    p.add_argument("--language", help="only this language (default: all in --prompts)")
    p.add_argument("--label", default="base", help="model label in the output (default: base)")
    # --protocol, --n, --temperature, --top-p, --max-tokens, --seed, --backend, ...: a
    # --protocol preset replaces the recipe's sampling values; the other flags win over both.
    add_section_flags(p, GenerationConfig, rename={"max_new_tokens": "--max-tokens"})
    p.set_defaults(handler=cmd_generate)

    p = sub.add_parser("score", help="score generations for toxicity")
    common(p)
    p.add_argument("--generations", required=True, metavar="FILE")
    p.add_argument("--output", required=True, metavar="FILE")
    add_scorer_arguments(p)  # --scorer, --qps, --discovery-url, --cache-dir, ...
    p.set_defaults(handler=cmd_score)

    p = sub.add_parser("metrics", help="toxicity, perplexity and distinct-n per model × language")
    common(p)
    p.add_argument(
        "--scores",
        required=True,
        action="append",
        metavar="FILE",
        help="score JSON lines; repeat for several files",
    )
    p.add_argument("--output", required=True, metavar="DIR", help="writes DIR/metrics.csv")
    p.add_argument(
        "--model",
        help=f"reference model for perplexity (and distinct-n tokenizer): {MODEL_SOURCES}",
    )
    p.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="MODEL=OTHER",
        help="also measure MODEL against OTHER, paired per prompt (e.g. control=dpo, "
        "sft_dpo=sft); repeatable",
    )
    add_section_flags(p, MetricsConfig)  # --threshold, --perplexity-method, ...
    p.set_defaults(handler=cmd_metrics)

    p = sub.add_parser("report", help="aggregate metrics and write an HTML report")
    common(p)
    p.add_argument(
        "--metrics",
        required=True,
        metavar="DIR_OR_FILE",
        help="metrics.csv, or a folder of metrics CSVs",
    )
    p.add_argument("--output", required=True, metavar="FILE", help="report.html")
    p.add_argument(
        "--scores",
        action="append",
        default=[],
        metavar="FILE",
        help="score JSON lines (repeat; any models and languages): adds the examples, the "
        "prompts where the base model was most toxic with every model's continuations",
    )
    p.add_argument(
        "--top-prompts",
        type=int,
        default=3,
        metavar="N",
        help="examples: prompts shown per language (default: 3)",
    )
    p.set_defaults(handler=cmd_report)


def cmd_prepare_data(args: argparse.Namespace) -> None:
    from xdetox.components.prepare_data.preference_data import prepare_pairs

    config = _config(args)
    # Only the tokenizer is fetched, and only when the length filter counts tokens.
    _print_summary(prepare_pairs(args.data, args.output, config.data, tokenizer_source=args.model))


def _prepared_pairs_dir(data: str) -> bool:
    return (Path(data) / "train.jsonl").is_file()


def cmd_dpo(args: argparse.Namespace) -> None:
    from xdetox.components.prepare_data.preference_data import prepare_pairs
    from xdetox.components.train.dpo.train_dpo import train_dpo

    config = _config(args)
    model = resolve_model(args.model)
    if _prepared_pairs_dir(args.data):
        _print_summary(train_dpo(model, args.data, args.output, config.training))
        return
    with tempfile.TemporaryDirectory(prefix="xdetox-pairs-") as tmp:
        pairs = Path(tmp) / "pairs"
        prepare_pairs(args.data, pairs, config.data, tokenizer_source=model)
        _print_summary(train_dpo(model, pairs, args.output, config.training))


def cmd_merge(args: argparse.Namespace) -> None:
    from xdetox.components.merge.merge_lora import merge_adapter

    _config(args)  # validates --config/--set even though merge has no hyperparameters
    base, adapter = resolve_model(args.base), resolve_model(args.adapter)
    _print_summary(merge_adapter(base, adapter, args.output))


def cmd_generate(args: argparse.Namespace) -> None:
    from xdetox.components.generate.backends import generate_file
    from xdetox.components.generate.vllm_backend import VLLMOptions
    from xdetox.components.prepare_prompts.prompts import prepare_prompts

    # A --protocol preset replaces the recipe's sampling values; explicit flags win over both.
    protocol = flag_overrides(args).get("generation.protocol")
    preset = {} if protocol is None else protocol_values(protocol)
    config = _config(args, {f"generation.{k}": v for k, v in preset.items()})
    languages = [args.language] if args.language else None
    model = resolve_model(args.model)
    with tempfile.TemporaryDirectory(prefix="xdetox-prompts-") as tmp:
        prompts = Path(tmp) / "prompts.jsonl"
        prepare_prompts(
            args.prompts,
            prompts,
            languages=languages,
            max_per_language=config.data.max_prompts_per_language,
            seed=config.data.seed,
        )
        n = generate_file(
            model,
            prompts,
            args.output,
            model_label=args.label,
            config=config.generation,
            language=args.language,
            backend=config.generation.backend,
            shard_size=config.generation.shard_size,
            vllm_options=VLLMOptions.from_dict(config.generation.vllm.model_dump()),
        )
    print(f"{n} generations → {args.output}")


def cmd_score(args: argparse.Namespace) -> None:
    from xdetox.components.score.score_file import score_generations

    config = _config(args)  # the scorer flags are derived from the scoring section
    _print_summary(score_generations(args.generations, args.output, config.scoring))


def cmd_metrics(args: argparse.Namespace) -> None:
    from xdetox.components.metrics.per_language import compute_metrics, write_metrics_csv
    from xdetox.errors import ConfigError

    config = _config(args)
    metrics = config.metrics
    if args.model is None:
        # Without a reference model there is no perplexity (unless metrics.perplexity_model
        # names one), and distinct-n falls back to whitespace tokens; the CSV's columns say
        # which tokenizer and perplexity method were used.
        if not metrics.perplexity_model:
            metrics = metrics.model_copy(update={"perplexity": False})
        if metrics.diversity_tokenizer == "model":
            metrics = metrics.model_copy(update={"diversity_tokenizer": "whitespace"})
    model = resolve_model(args.model) if args.model is not None else None
    comparisons = {}
    for item in args.compare:
        name, sep, other = item.partition("=")
        if not sep or not name.strip() or not other.strip():
            raise ConfigError(f"--compare: {item!r} is not MODEL=OTHER")
        comparisons[name.strip()] = other.strip()
    df = compute_metrics(args.scores, metrics, model_dir=model, comparisons=comparisons)
    out = Path(args.output) / "metrics.csv"
    write_metrics_csv(df, out)
    print(df.to_string(index=False, max_cols=12))
    print(f"→ {out}")


def cmd_report(args: argparse.Namespace) -> None:
    from xdetox.components.report.aggregate import aggregate_metrics
    from xdetox.components.report.examples import build_examples
    from xdetox.components.report.html_report import render_report
    from xdetox.components.score.scorers import get_scorer
    from xdetox.errors import ConfigError

    config = _config(args)
    if args.top_prompts < 1:
        raise ConfigError(f"--top-prompts: {args.top_prompts}; show at least 1 prompt")
    source = Path(args.metrics)
    csvs = sorted(source.glob("*.csv")) if source.is_dir() else [source]
    df = aggregate_metrics(csvs)
    # The same examples the pipeline's per-language tasks build, from any set of score files.
    examples = build_examples(args.scores, top_prompts=args.top_prompts) if args.scores else None
    render_report(
        df,
        args.output,
        title=f"xdetox report: {config.name}",
        scorer_description=get_scorer(config.scoring).name,
        # base_model: the report sets the XG paper's row beside a run of one of its models
        run_info={"name": config.name, "metrics": str(source), "base_model": config.model.base},
        examples=examples,
    )
    print(f"report → {args.output}")
