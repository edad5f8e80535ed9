"""training.dose_response: snapshots of a tiny DPO run part-way through, taken at the right
steps, differing from each other and from the final model, and taken out as models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file
from tiny_dpo import CHOSEN, PROMPTS, REJECTED, fast_dpo_config, save_dpo_base

from xdetox.components.train.dispatch import run_training
from xdetox.components.train.snapshot_files import copy_snapshot, taken_snapshots, write_index
from xdetox.components.train.snapshots import snapshot_steps
from xdetox.config import TrainingConfig
from xdetox.errors import ConfigError
from xdetox.records import parse_snapshot_label, snapshot_label


def write_pairs(folder: Path) -> Path:
    folder.mkdir(parents=True)
    rows = [{"pair_id": f"x:{i}", "prompt": PROMPTS[i % 4], "chosen": CHOSEN,
             "rejected": REJECTED} for i in range(16)]  # fmt: skip
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture(scope="module")
def snapshot_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("dose")
    base = save_dpo_base(root / "base")
    config = fast_dpo_config(max_steps=8, save_steps=100, eval_steps=100,
                             dose_response=[0.25, 0.5])  # fmt: skip
    run_training(base, root / "tuned", config, pairs_dir=write_pairs(root / "pairs"),
                 progress=False, snapshot_dir=root / "snapshots")  # fmt: skip
    return root


def adapter(folder: Path) -> dict:
    return load_file(str(folder / "adapter_model.safetensors"))


def test_snapshots_are_taken_at_their_steps_and_differ(snapshot_run):
    snapshots = snapshot_run / "snapshots"
    assert taken_snapshots(snapshots) == ["at25", "at50"]
    infos = [json.loads((snapshots / n / "snapshot.json").read_text()) for n in ("at25", "at50")]
    steps = [(i["fraction"], i["step"], i["max_steps"]) for i in infos]
    assert steps == [(0.25, 2, 8), (0.5, 4, 8)]
    early, middle = adapter(snapshots / "at25"), adapter(snapshots / "at50")
    final = adapter(snapshot_run / "tuned")
    assert early.keys() == final.keys()
    # Training went on between the snapshots: the LoRA weights moved each time.
    for a, b in ((early, middle), (middle, final)):
        assert any(not (a[k] == b[k]).all() for k in a)
    assert (snapshots / "at25" / "tokenizer_config.json").is_file()


def test_a_snapshot_is_taken_out_as_a_model_and_a_missing_one_is_named(snapshot_run, tmp_path):
    assert write_index(snapshot_run / "snapshots") == ["at25", "at50"]
    info = copy_snapshot(snapshot_run / "snapshots", "at50", tmp_path / "model")
    assert info["step"] == 4 and (tmp_path / "model" / "adapter_config.json").is_file()
    with pytest.raises(ConfigError, match=r"no snapshot 'at75'.*taken: at25, at50"):
        copy_snapshot(snapshot_run / "snapshots", "at75", tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_steps_and_labels():
    assert snapshot_steps([0.5, 0.25], 8) == {2: 0.25, 4: 0.5}
    with pytest.raises(ConfigError, match="dose_response"):
        snapshot_steps([0.3, 0.35], 4)  # both round to step 1
    assert snapshot_label("sft_dpo", 0.25) == "sft_dpo_at25"
    assert parse_snapshot_label("sft_dpo_at25") == ("sft_dpo", 0.25)
    assert parse_snapshot_label("dpo") is None and parse_snapshot_label("x_at100") is None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"dose_response": [0.0, 0.5]}, "between 0 and 1"),
        ({"dose_response": [0.5, 0.501]}, "at least 1%"),
        ({"dose_response": [0.5], "method": "ppo"}, "online RL"),
    ],
)
def test_bad_fractions_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        TrainingConfig.model_validate(values)


def test_snapshots_of_a_one_task_sft_dpo_are_refused(tmp_path):
    config = fast_dpo_config(method="sft_dpo", max_steps=4, dose_response=[0.5])
    with pytest.raises(ConfigError, match="dose_response: snapshots are taken of a dpo or sft"):
        run_training(tmp_path, tmp_path / "out", config, pairs_dir=tmp_path,
                     snapshot_dir=tmp_path / "s")  # fmt: skip
