"""DPO resume after preemption: a run killed mid-way and started again continues from its newest
checkpoint (step count continues, no completed step is trained or logged twice), refuses changed
settings, skips a half-written checkpoint, and leaves no checkpoint behind after success."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny_dpo import CHOSEN, PROMPTS, REJECTED, fast_dpo_config, save_dpo_base
from transformers import TrainerCallback

from xdetox.components.train.checkpointing import default_checkpoint_dir
from xdetox.components.train.dpo.train_dpo import train_dpo
from xdetox.config import TrainingConfig
from xdetox.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    return save_dpo_base(tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pairs")
    rows = [{"prompt": PROMPTS[i % 4], "chosen": CHOSEN, "rejected": REJECTED} for i in range(24)]
    (path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _config(**kwargs) -> TrainingConfig:
    # A linear schedule: the schedule must come back on resume too, not restart.
    return fast_dpo_config(
        **{"lr_scheduler_type": "linear", "max_steps": 10, "save_steps": 4, **kwargs}
    )


class _Preempted(RuntimeError):
    pass


class CrashAt(TrainerCallback):
    """Raise at the end of optimizer step ``step``, as a preemption would interrupt the run."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise _Preempted(f"killed at step {self.step}")


class RecordSteps(TrainerCallback):
    def __init__(self):
        self.steps: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]


def _train_steps(log: list[dict]) -> list[int]:
    return [e["step"] for e in log if "loss" in e and "train_loss" not in e]


def _run(base_dir, pairs_dir, out, config, **kwargs):
    return train_dpo(base_dir, pairs_dir, out, config, progress=False, **kwargs)


@pytest.mark.slow
def test_killed_run_resumes_from_newest_checkpoint(base_dir, pairs_dir, tmp_path):
    config = _config()
    straight = tmp_path / "straight"
    _run(base_dir, pairs_dir, straight, config)

    out = tmp_path / "tuned"
    checkpoints = default_checkpoint_dir(out)
    with pytest.raises(_Preempted):
        _run(base_dir, pairs_dir, out, config, callbacks=[CrashAt(7)])
    assert not out.exists()  # no half output
    assert sorted(p.name for p in checkpoints.glob("checkpoint-*")) == ["checkpoint-4"]

    recorder = RecordSteps()
    summary = _run(base_dir, pairs_dir, out, config, callbacks=[recorder])
    assert recorder.steps == [5, 6, 7, 8, 9, 10]  # continued after step 4, not from 1
    assert summary["resumed_from_step"] == 4.0 and summary["steps"] == 10.0
    log = _log(out)
    assert _train_steps(log) == list(range(1, 11))  # every step logged once
    # The losses of steps 1-4 come from the checkpoint: those of the uninterrupted run.
    straight_log = _log(straight)
    for mine, theirs in zip(log[:4], straight_log[:4], strict=True):
        assert mine["loss"] == theirs["loss"]
    # Optimizer, scheduler, RNG and data order came back: the result is the uninterrupted one.
    expected = load_file(straight / "adapter_model.safetensors")
    got = load_file(out / "adapter_model.safetensors")
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, rtol=1e-5, atol=1e-6)
    assert not checkpoints.exists()  # removed after the final save


@pytest.mark.slow
def test_half_written_checkpoint_is_skipped(base_dir, pairs_dir, tmp_path):
    config = _config()
    out = tmp_path / "tuned"
    checkpoints = default_checkpoint_dir(out)
    with pytest.raises(_Preempted):
        _run(base_dir, pairs_dir, out, config, callbacks=[CrashAt(9)])
    assert (checkpoints / "checkpoint-8").is_dir()
    # A kill during the save of checkpoint-8: transformers writes trainer_state.json last.
    (checkpoints / "checkpoint-8" / "trainer_state.json").unlink()
    recorder = RecordSteps()
    summary = _run(base_dir, pairs_dir, out, config, callbacks=[recorder])
    assert recorder.steps[0] == 5 and summary["resumed_from_step"] == 4.0
    assert _train_steps(_log(out)) == list(range(1, 11))


@pytest.mark.slow
def test_resume_refuses_changed_settings_and_resume_off_starts_over(base_dir, pairs_dir, tmp_path):
    out = tmp_path / "tuned"
    with pytest.raises(_Preempted):
        _run(base_dir, pairs_dir, out, _config(), callbacks=[CrashAt(5)])
    with pytest.raises(ConfigError, match=re.escape("training.beta: differs from the checkpoints")):
        _run(base_dir, pairs_dir, out, _config(beta=0.3))
    assert not out.exists()
    # Other pairs: the checkpoint belongs to other data.
    other = tmp_path / "other_pairs"
    other.mkdir()
    rows = [{"prompt": p, "chosen": REJECTED, "rejected": CHOSEN} for p in PROMPTS * 4]
    (other / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ConfigError, match=r"^data: differs"):
        _run(base_dir, other, out, _config())
    # The run length may change; resume=False starts from step 1 whatever is there.
    recorder = RecordSteps()
    summary = _run(base_dir, pairs_dir, out, _config(beta=0.3, max_steps=6), resume=False,
                   callbacks=[recorder])  # fmt: skip
    assert recorder.steps == [1, 2, 3, 4, 5, 6] and summary["resumed_from_step"] == 0.0
    recorder = RecordSteps()
    with pytest.raises(_Preempted):
        _run(base_dir, pairs_dir, out, _config(), resume=False, callbacks=[CrashAt(5)])
    _run(base_dir, pairs_dir, out, _config(max_steps=12), callbacks=[recorder])
    assert recorder.steps == list(range(5, 13))


def test_checkpoints_can_be_kept_and_put_elsewhere(base_dir, pairs_dir, tmp_path):
    where = tmp_path / "persistent" / "ckpt"
    out = tmp_path / "tuned"
    _run(base_dir, pairs_dir, out, _config(max_steps=4), checkpoint_dir=where,
         keep_checkpoints=True)  # fmt: skip
    assert (where / "checkpoint-4" / "trainer_state.json").is_file()
    assert (where / "run_config.json").is_file()
    assert not default_checkpoint_dir(out).exists()


def test_bad_model_leaves_no_checkpoint_folder(pairs_dir, tmp_path):
    out = tmp_path / "tuned"
    with pytest.raises(DataError, match=r"nomodel: cannot load tokenizer"):
        _run(tmp_path / "nomodel", pairs_dir, out, _config())
    assert list(tmp_path.iterdir()) == []
