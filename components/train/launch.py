"""The training stage over all GPUs of its node: in-process on CPU or one GPU, ``accelerate
launch`` (DeepSpeed ZeRO-2 or ZeRO-3, ``components/train/deepspeed``) over several.

With ``N > 1`` GPUs the stage runs::

    accelerate launch --config_file zero2.yaml --num_processes N -m xdetox.components.train.run \\
        --config run.json --model-dir ... --output-dir ... [--pairs ...] [--prompts ...]

``xdetox.components.train.run`` calls the same
:func:`~xdetox.components.train.dispatch.run_training` in each of the N processes; the main process
writes the output folder and its ``train_summary.json``,
which the stage then reads back. The compact PPO trainer runs on one device only: with several
GPUs it runs in-process on the first (a warning says so); RLOO/GRPO are the multi-GPU online
methods.

QLoRA and ZeRO-3 do not mix here (4-bit weights cannot be sharded by ZeRO-3 without a matching
``bnb_4bit_quant_storage``): that combination is refused with a :class:`ConfigError`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from xdetox.components.train.deepspeed.deepspeed_configs import (
    ZERO_STAGES,
    accelerate_launch_command,
)
from xdetox.components.train.outputs import TRAIN_SUMMARY
from xdetox.config import RLConfig, ScoringConfig, TrainingConfig
from xdetox.errors import ConfigError, XdetoxError

log = logging.getLogger(__name__)

RUN_MODULE = "xdetox.components.train.run"


def visible_gpus() -> int:
    """CUDA devices this process can see (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def processes_for(method: str, num_gpus: int) -> int:
    """How many training processes ``method`` uses on ``num_gpus`` GPUs (1 = in-process)."""
    if num_gpus <= 1:
        return 1
    if method == "ppo":
        log.warning(
            "training.method=ppo: the compact PPO trainer uses one GPU; %d are visible "
            "(rloo and grpo use them all)",
            num_gpus,
        )
        return 1
    return num_gpus


def check_launch(training: TrainingConfig, zero_stage: int) -> None:
    if zero_stage not in ZERO_STAGES:
        raise ConfigError(f"zero_stage: expected one of {ZERO_STAGES}, got {zero_stage!r}")
    if training.mode == "qlora" and zero_stage == 3:
        raise ConfigError(
            "training.mode=qlora cannot run under DeepSpeed ZeRO-3 here; use zero_stage 2 "
            "(QLoRA's 4-bit base fits each GPU whole)"
        )


def run_config_payload(
    training: TrainingConfig, rl: RLConfig, scoring: ScoringConfig | None
) -> dict:
    """The sections the launched processes validate again (JSON: exact, nulls included)."""
    payload = {"training": training.model_dump(mode="json"), "rl": rl.model_dump(mode="json")}
    if scoring is not None:
        payload["scoring"] = scoring.model_dump(mode="json")
    return payload


def launch_command(
    num_processes: int,
    zero_stage: int,
    *,
    config_file: str | Path,
    model_dir: str | Path,
    output_dir: str | Path,
    pairs_dir: str | Path | None = None,
    prompts_path: str | Path | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    snapshot_dir: str | Path | None = None,
) -> list[str]:
    """The ``accelerate launch ... -m xdetox.components.train.run ...`` command line."""
    script = [
        "-m",
        RUN_MODULE,
        "--config",
        str(config_file),
        "--model-dir",
        str(model_dir),
        "--output-dir",
        str(output_dir),
    ]
    if pairs_dir is not None:
        script += ["--pairs", str(pairs_dir)]
    if prompts_path is not None:
        script += ["--prompts", str(prompts_path)]
    if checkpoint_dir is not None:
        script += ["--checkpoint-dir", str(checkpoint_dir)]
    if snapshot_dir is not None:
        script += ["--snapshot-dir", str(snapshot_dir)]
    if not resume:
        script.append("--no-resume")
    command = accelerate_launch_command(num_processes, zero_stage, script)
    if shutil.which(command[0]) is None:
        # No console script on PATH (e.g. a venv not activated): the same launcher as a module.
        command = [sys.executable, "-m", "accelerate.commands.launch", *command[2:]]
    return command


def train_stage(
    model_dir: str | Path,
    output_dir: str | Path,
    training: TrainingConfig,
    rl: RLConfig | None = None,
    *,
    pairs_dir: str | Path | None = None,
    prompts_path: str | Path | None = None,
    scoring: ScoringConfig | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    num_gpus: int | None = None,
    zero_stage: int = 2,
    progress: bool = True,
    snapshot_dir: str | Path | None = None,
) -> dict[str, float]:
    """Train on every GPU of the node (``num_gpus``: None = all visible); see module doc.

    ``snapshot_dir``: where ``training.dose_response``'s snapshots go (``snapshots.py``)."""
    from xdetox.components.train.dispatch import check_inputs, run_training

    rl = rl if rl is not None else RLConfig()
    check_inputs(training.method, pairs_dir, prompts_path)
    gpus = visible_gpus() if num_gpus is None else num_gpus
    if gpus < 0:
        raise ConfigError(f"num_gpus: expected 0 or more, got {gpus}")
    processes = processes_for(training.method, gpus)
    if processes == 1:
        return run_training(
            model_dir,
            output_dir,
            training,
            rl,
            pairs_dir=pairs_dir,
            prompts_path=prompts_path,
            scoring=scoring,
            checkpoint_dir=checkpoint_dir,
            resume=resume,
            progress=progress,
            snapshot_dir=snapshot_dir,
        )
    check_launch(training, zero_stage)
    with tempfile.TemporaryDirectory(prefix="xdetox-launch-") as tmp:
        config_file = Path(tmp) / "run.json"
        config_file.write_text(json.dumps(run_config_payload(training, rl, scoring)))
        command = launch_command(
            processes,
            zero_stage,
            config_file=config_file,
            model_dir=model_dir,
            output_dir=output_dir,
            pairs_dir=pairs_dir,
            prompts_path=prompts_path,
            checkpoint_dir=checkpoint_dir,
            resume=resume,
            snapshot_dir=snapshot_dir,
        )
        log.info("launching: %s", " ".join(command))
        code = subprocess.run(command, env=dict(os.environ), check=False).returncode
    if code != 0:
        raise XdetoxError(
            f"training under accelerate launch ({processes} processes) failed with exit code "
            f"{code}; the processes' errors are in the log above"
        )
    summary_path = Path(output_dir) / TRAIN_SUMMARY
    if not summary_path.is_file():
        raise XdetoxError(f"{summary_path}: the launched training wrote no summary")
    return json.loads(summary_path.read_text(encoding="utf-8"))
