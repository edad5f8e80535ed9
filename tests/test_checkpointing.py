"""Numbered checkpoint folders: found in step order, partial saves told apart."""

from __future__ import annotations

from xdetox.components.train.checkpointing import latest_complete_checkpoint, list_checkpoints
from xdetox.components.train.ppo import checkpoints as ppo_checkpoints


def test_numbered_folders_in_step_order_and_nothing_else(tmp_path):
    for name in ("checkpoint-10", "checkpoint-9", "checkpoint-x", "step-3", "other"):
        (tmp_path / name).mkdir()
    (tmp_path / "checkpoint-11").write_text("a file, not a checkpoint")
    (tmp_path / "checkpoint-9" / "trainer_state.json").write_text("{}")
    nine, ten = tmp_path / "checkpoint-9", tmp_path / "checkpoint-10"
    assert list_checkpoints(tmp_path) == [(9, nine), (10, ten)]
    assert list_checkpoints(tmp_path, marker="trainer_state.json") == [(9, nine)]
    assert list_checkpoints(tmp_path, prefix="step-") == [(3, tmp_path / "step-3")]
    assert list_checkpoints(tmp_path / "absent") == []
    # The newest complete one is resumed; the partial save after it is removed.
    assert latest_complete_checkpoint(tmp_path, remove_incomplete=True) == nine
    assert not ten.exists()


def test_ppo_checkpoints_count_only_once_their_state_is_written(tmp_path):
    for step in (2, 12):
        (tmp_path / ppo_checkpoints.step_dir_name(step)).mkdir()
    (tmp_path / "step-2" / ppo_checkpoints.STATE_FILE).write_text("{}")
    assert ppo_checkpoints.list_checkpoints(tmp_path) == [(2, tmp_path / "step-2")]
    assert ppo_checkpoints.latest_checkpoint(tmp_path) == tmp_path / "step-2"
