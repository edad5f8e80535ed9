"""PPO checkpoints: everything a preempted run needs to continue exactly where it stopped.

``<checkpoint_dir>/step-N/`` (each written whole via ``atomic_dir``, so a kill mid-save leaves
the previous checkpoint as the newest):

* ``policy/``: the LoRA adapter or the full model (``save_pretrained``: loadable on its own);
* ``value_head.safetensors``, ``optimizer.pt`` (Adam moments and step counts);
* ``rng_state.pt``: torch (CPU and CUDA), Python and NumPy generator states;
* ``trainer_state.json``: step, KL-controller state, the settings the run was started with
  (the ``rl`` section and the ``training`` keys PPO reads);
* ``log.jsonl``: the per-step log up to step N. On resume the log is taken from here, so steps
  that ran after the checkpoint and before the crash are redone once and logged once.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xdetox.components.train import checkpointing
from xdetox.components.train.ppo.ppo_config import RESUMABLE_CHANGES
from xdetox.components.train.ppo.value_head import ValueHead, load_value_head, save_value_head
from xdetox.errors import ConfigError, DataError
from xdetox.files import atomic_dir, iter_jsonl, write_json, write_jsonl

POLICY_DIR = "policy"
OPTIMIZER_FILE = "optimizer.pt"
RNG_FILE = "rng_state.pt"
STATE_FILE = "trainer_state.json"
LOG_FILE = "log.jsonl"
STEP_PREFIX = "step-"


def step_dir_name(step: int) -> str:
    return f"{STEP_PREFIX}{step}"


def list_checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``folder`` as ``(step, path)``, oldest first."""
    return checkpointing.list_checkpoints(folder, prefix=STEP_PREFIX, marker=STATE_FILE)


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    checkpoints = list_checkpoints(folder)
    return checkpoints[-1][1] if checkpoints else None


def capture_rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    folder: str | Path,
    step: int,
    *,
    policy,
    value_head: ValueHead,
    optimizer: torch.optim.Optimizer,
    kl_state: dict[str, Any],
    config: dict[str, Any],
    log: list[dict[str, Any]],
    keep: int,
) -> Path:
    """Write ``step-N`` atomically, then drop all but the ``keep`` newest checkpoints."""
    folder = Path(folder)
    target = folder / step_dir_name(step)
    with atomic_dir(target) as tmp:
        policy.save_pretrained(str(tmp / POLICY_DIR))
        save_value_head(value_head, tmp)
        torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
        torch.save(capture_rng_state(), tmp / RNG_FILE)
        write_jsonl(tmp / LOG_FILE, log)
        # Written last: a folder without it is never taken for a checkpoint.
        write_json(tmp / STATE_FILE, {"step": step, "kl_controller": kl_state, "config": config})
    for _, old in list_checkpoints(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """``trainer_state.json`` of a checkpoint plus its ``log`` (list of step records)."""
    path = Path(path)
    try:
        state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"unreadable checkpoint state ({exc})", path / STATE_FILE) from None
    state["log"] = [record for _, record in iter_jsonl(path / LOG_FILE)]
    return state


def check_resumable(saved_config: dict[str, Any], config: dict[str, Any], path: Path) -> None:
    """Refuse to continue a checkpoint made with different settings (only the dotted keys in
    ``RESUMABLE_CHANGES``, e.g. ``rl.max_steps``, may change)."""
    key = checkpointing.first_difference(saved_config, config, RESUMABLE_CHANGES)
    if key is not None:
        raise ConfigError(
            f"{key}: differs from the checkpoint at {path} "
            "(resume with the same settings, or start over with resume off)"
        )


def load_training_state(
    path: str | Path, *, value_head: ValueHead, optimizer: torch.optim.Optimizer
) -> None:
    """Restore value head, optimizer and random generators from a checkpoint."""
    path = Path(path)
    load_value_head(value_head, path)
    device = next(value_head.parameters()).device
    optimizer.load_state_dict(torch.load(path / OPTIMIZER_FILE, map_location=device))
    # Our own file, holding NumPy/Python generator states: not loadable with weights_only.
    restore_rng_state(torch.load(path / RNG_FILE, weights_only=False))
