"""``xdetox train``, ``sft``, ``ppo``, ``rloo`` and ``grpo``: the training stage from the shell.

``xdetox train`` runs whatever ``training.method`` the config names (dpo, sft_dpo, ppo, rloo,
grpo), exactly as the pipeline's training step does; ``ppo``/``rloo``/``grpo`` set the method
themselves, ``sft`` runs the supervised stage alone. All of them: ``--config``/``--set``,
``--model`` (``toy``, a folder, ``gs://`` or a Hub id), ``--output``; the data flag of the method
(``--data``: preference pairs or SFT data, ``--prompts``: prompts JSON lines); checkpoints beside
the output (``<output>.checkpoints``) resumed when the command is run again, unless
``--no-resume``; several GPUs used through ``accelerate launch`` (``--num-gpus``,
``--zero-stage``). Training curves go to ``<output>/training_curves.html`` (or ``--curves``).
``ppo``/``rloo``/``grpo`` name their reward in a help section of its own: ``--reward-kind``,
``--reward-classifier``, ... (``rl.reward``) and the scorer flags for ``--reward-kind scorer``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from xdetox.cli.scoring_commands import add_scorer_arguments
from xdetox.config import Config, RLConfig, TrainingConfig, load_config
from xdetox.config.interface import add_section_flags, flag_overrides
from xdetox.config.rl import OnlineRLConfig, PPOConfig, RewardConfig
from xdetox.config.training import SFTConfig
from xdetox.errors import ConfigError
from xdetox.models import SOURCE_HELP as MODEL_SOURCES
from xdetox.models import resolve_model
from xdetox.storage import is_gcs
from xdetox.toy.data_sources import is_toy

CURVES_FILE = "training_curves.html"


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help=f"base model: {MODEL_SOURCES}")
    p.add_argument("--output", required=True, metavar="DIR", help="adapter or model folder")
    p.add_argument(
        "--checkpoint-dir", metavar="DIR", help="checkpoints (default: <output>.checkpoints)"
    )
    p.add_argument(
        "--no-resume", action="store_true", help="start over instead of resuming a checkpoint"
    )
    p.add_argument(
        "--num-gpus", type=int, metavar="N", help="GPUs to train on (default: all visible)"
    )
    p.add_argument("--zero-stage", type=int, choices=(2, 3), default=2,
                   help="DeepSpeed ZeRO config used with several GPUs (default: 2)")  # fmt: skip
    p.add_argument(
        "--curves", metavar="FILE", help=f"curves page (default: <output>/{CURVES_FILE})"
    )


def _data_flag(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--data", metavar="SOURCE", help=what)


def _prompts_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--prompts",
        metavar="FILE",
        help="prompts JSON lines (prepared, or RealToxicityPrompts lines), gs:// URI, or 'toy' "
        "(default: the config's rl.prompts)",
    )


# The ``training`` keys every method reads; sft, ppo, rloo and grpo get flags for them too.
_SHARED_TRAINING_KEYS = ("mode", "seed", "gradient_checkpointing", "bf16")


def register(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser(
        "train",
        help="train with the config's training.method (dpo, sft_dpo, ppo, rloo, grpo)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common(p)
    _add_run_flags(p)
    _data_flag(p, "preference pairs for dpo/sft_dpo: toxicity_pairwise folder/file, a prepared "
                  "folder, gs:// or 'toy' (default: the config's data.preference)")  # fmt: skip
    _prompts_flag(p)
    add_section_flags(p, TrainingConfig)  # --method, --beta, --learning-rate, ...
    p.set_defaults(handler=cmd_train, method=None)

    p = sub.add_parser("sft", help="supervised fine-tuning (TRL SFTTrainer; LoRA/QLoRA/full)")
    common(p)
    _add_run_flags(p)
    _data_flag(p, "JSON lines of prompt/completion, text or messages; or preference pairs "
                  "(chosen side). Default: training.sft.data, else data.preference")  # fmt: skip
    add_section_flags(p, SFTConfig, "training.sft", exclude=("data",))  # --data is above
    add_section_flags(p, TrainingConfig, only=_SHARED_TRAINING_KEYS)
    p.set_defaults(handler=cmd_sft)

    for method, text in (
        ("ppo", "PPO with a value head and adaptive KL (the TRL detox recipe)"),
        ("rloo", "RLOO (TRL RLOOTrainer) with the same rewards"),
        ("grpo", "GRPO (TRL GRPOTrainer) with the same rewards"),
    ):
        p = sub.add_parser(method, help=f"online RL: {text}")
        common(p)
        _add_run_flags(p)
        _prompts_flag(p)
        add_section_flags(p, RLConfig, exclude=("prompts",))  # --prompts is above
        if method == "ppo":
            add_section_flags(p, PPOConfig)
        else:
            add_section_flags(p, OnlineRLConfig)
        add_section_flags(p, TrainingConfig, only=_SHARED_TRAINING_KEYS)
        _reward_flags(p)
        p.set_defaults(handler=cmd_train, method=method)


def _reward_flags(p: argparse.ArgumentParser) -> None:
    """What the reward is, in its own help section: ``--reward-kind``, ``--reward-classifier``,
    ``--reward-label-index``, ... (``rl.reward``) and, for ``--reward-kind scorer``, the scorer's
    flags (``--scorer``, ``--classifier-model``, ...: the ``scoring`` section)."""
    reward = p.add_argument_group(
        "reward (rl.reward)",
        (RewardConfig.__doc__ or "").replace("``", "'").replace("%", "%%"),
    )
    # reward- keeps them apart from PPO's own --batch-size and the scorer's classifier flags.
    # (An argument group takes add_argument as a parser does: the flags land in its section.)
    add_section_flags(reward, RewardConfig, flag_prefix="reward-")
    scorer = p.add_argument_group(
        "reward scorer (scoring; with --reward-kind scorer)",
        "The toxicity scorer whose score the reward is computed from.",
    )
    add_scorer_arguments(scorer)


def _config(args: argparse.Namespace) -> Config:
    """The config files and ``--set``s, then the flags derived from the config sections, then
    the method a ppo/rloo/grpo command stands for."""
    extra = [f"{k}={json.dumps(v)}" for k, v in flag_overrides(args).items()]
    if getattr(args, "method", None):
        extra.append(f"training.method={args.method}")
    return load_config(args.config, [*args.overrides, *extra])


def _model_dir(model: str) -> Path:
    """A local folder for any model source (toy, folder, gs://, Hub id)."""
    return resolve_model(model)


def _is_prepared(path: Path) -> bool:
    return path.is_dir() and (path / "train.jsonl").is_file()


def _is_toxicity_pairwise_file(path: Path) -> bool:
    """A raw DT file (``prompt_text``/``unpert_gen_text``): it needs preparing first."""
    from xdetox.files import iter_jsonl

    for _, record in iter_jsonl(path):
        return "prompt_text" in record
    return False


@contextlib.contextmanager
def _pairs(source: str, config: Config, model_dir: Path) -> Iterator[Path]:
    """A prepared pairs folder: ``source`` itself, or ``source`` read, filtered and split."""
    from xdetox.components.prepare_data.preference_data import prepare_pairs

    if not is_toy(source) and not is_gcs(source) and _is_prepared(Path(source)):
        yield Path(source)
        return
    with tempfile.TemporaryDirectory(prefix="xdetox-pairs-") as tmp:
        pairs = Path(tmp) / "pairs"
        prepare_pairs(source, pairs, config.data, tokenizer_source=model_dir)
        yield pairs


def _finish(args: argparse.Namespace, method: str, summary: dict) -> None:
    from xdetox.components.train.curves import stage_metrics, write_curves

    curves = Path(args.curves) if args.curves else Path(args.output) / CURVES_FILE
    finals = write_curves(args.output, method, curves)
    print(json.dumps(stage_metrics(summary, finals), indent=2, sort_keys=True))
    print(f"model → {args.output}\ncurves → {curves}")


def cmd_train(args: argparse.Namespace) -> None:
    from xdetox.components.train.launch import train_stage

    config = _config(args)
    training = config.training
    model_dir = _model_dir(args.model)
    common = {
        "rl": config.rl,
        "scoring": config.scoring,
        "checkpoint_dir": args.checkpoint_dir,
        "resume": not args.no_resume,
        "num_gpus": args.num_gpus,
        "zero_stage": args.zero_stage,
    }
    if training.method in ("dpo", "sft_dpo"):
        with _pairs(args.data or config.data.preference, config, model_dir) as pairs:
            summary = train_stage(model_dir, args.output, training, pairs_dir=pairs, **common)
    else:
        from xdetox.components.train.dispatch import prompts_file

        with prompts_file(args.prompts or config.rl.prompts) as prompts:
            summary = train_stage(model_dir, args.output, training, prompts_path=prompts, **common)
    _finish(args, training.method, summary)


@contextlib.contextmanager
def _sft_source(source: str, config: Config, model_dir: Path) -> Iterator[Path]:
    """SFT data as a file or train/eval folder; raw preference pairs are prepared first."""
    from xdetox.storage import local_copy

    if is_toy(source):
        with _pairs(source, config, model_dir) as pairs:
            yield pairs
        return
    with local_copy(source) as local:
        if _is_prepared(local) or (local.is_file() and not _is_toxicity_pairwise_file(local)):
            yield local
        else:
            with _pairs(str(local), config, model_dir) as pairs:
                yield pairs


def cmd_sft(args: argparse.Namespace) -> None:
    from xdetox.components.train.sft.train_sft import train_sft

    config = _config(args)
    if (args.num_gpus or 0) > 1:
        raise ConfigError("xdetox sft runs in one process; for several GPUs use "
                          "training.method=sft_dpo with xdetox train")  # fmt: skip
    model_dir = _model_dir(args.model)
    source = args.data or config.training.sft.data or config.data.preference
    with _sft_source(source, config, model_dir) as data:
        summary = train_sft(
            model_dir,
            data,
            args.output,
            config.training,
            checkpoint_dir=args.checkpoint_dir,
            resume=not args.no_resume,
        )
    _finish(args, "sft", summary)
