"""Module entry point of one training process: ``python -m xdetox.components.train.run ...``.

``accelerate launch`` starts it once per GPU (``components/train/launch.py``); every process runs
the same :func:`~xdetox.components.train.dispatch.run_training`.
``--config`` is a JSON (or YAML) file
with the ``training``, ``rl`` and optionally ``scoring`` sections, validated again here.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from xdetox.config import RLConfig, ScoringConfig, TrainingConfig, validate_section
from xdetox.errors import ConfigError, XdetoxError


def read_run_config(path: str | Path) -> tuple[TrainingConfig, RLConfig, ScoringConfig | None]:
    """The sections of a run config file (JSON is YAML, so one reader serves both)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read run config ({exc})") from None
    if not isinstance(data, dict) or "training" not in data:
        raise ConfigError(f"{path}: expected a mapping with a 'training' section")
    training = validate_section(TrainingConfig, data["training"], f"{path}: training")
    rl = validate_section(RLConfig, data.get("rl") or {}, f"{path}: rl")
    scoring = (
        validate_section(ScoringConfig, data["scoring"], f"{path}: scoring")
        if data.get("scoring") is not None
        else None
    )
    return training, rl, scoring


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m xdetox.components.train.run", description=__doc__
    )
    parser.add_argument("--config", required=True, help="JSON/YAML: training, rl, scoring")
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--pairs", default=None, help="prepared preference pairs folder")
    parser.add_argument("--prompts", default=None, help="prompts JSON lines (online RL)")
    parser.add_argument("--checkpoint-dir", default=None)
    parser.add_argument("--snapshot-dir", default=None, help="training.dose_response snapshots")
    parser.add_argument("--no-resume", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from xdetox.components.train.dispatch import run_training
    from xdetox.components.train.outputs import process_state

    args = build_parser().parse_args(argv)
    try:
        training, rl, scoring = read_run_config(args.config)
        summary = run_training(
            args.model_dir,
            args.output_dir,
            training,
            rl,
            pairs_dir=args.pairs,
            prompts_path=args.prompts,
            scoring=scoring,
            checkpoint_dir=args.checkpoint_dir,
            resume=not args.no_resume,
            progress=not args.no_progress,
            snapshot_dir=args.snapshot_dir,
        )
    except XdetoxError as exc:
        print(f"xdetox: error: {exc}", file=sys.stderr)
        return 2
    if process_state().is_main_process:
        print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
