"""Writing a training stage's output folder from one process or from every process of a launch.

Under ``accelerate launch`` every process runs the same script: all of them must take part in
``trainer.save_model`` (DeepSpeed ZeRO-3 gathers the sharded weights collectively), but only the
main process may write the output folder. The others save into a throw-away temporary folder.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from xdetox.files import atomic_dir, write_json, write_jsonl

# What every training stage writes beside the weights (the merge and the curves read them).
TRAINING_LOG = "training_log.jsonl"  # the trainer's log history, one record per log step
BASE_CONFIG = "base_config.json"  # the base's config.json: merge checks the architecture
TRAIN_SUMMARY = "train_summary.json"  # final figures, also logged as KFP Metrics


def process_state():
    """accelerate's ``PartialState`` (single-process outside ``accelerate launch``)."""
    from accelerate import PartialState

    return PartialState()


@contextlib.contextmanager
def main_process_output(output_dir: str | Path, is_main: bool) -> Iterator[Path]:
    """The main process gets an atomic folder that becomes ``output_dir``; others a temp one."""
    target = atomic_dir(output_dir) if is_main else tempfile.TemporaryDirectory()
    with target as tmp:
        yield Path(tmp)


def save_trained(
    trainer: Any,
    tokenizer: Any,
    model_dir: str | Path,
    output_dir: str | Path,
    summary: dict,
    *,
    checkpoint_dir: str | Path,
    keep_checkpoints: bool,
) -> None:
    """Save a Hugging Face trainer's model, tokenizer, log and summary into ``output_dir``.

    Every process takes part in ``save_model``; only the main one writes, atomically. The
    checkpoints are removed once the final model is in place, unless ``keep_checkpoints``.
    """
    from xdetox.components.train.checkpointing import clear_checkpoints

    main = trainer.accelerator.is_main_process
    trainer.accelerator.wait_for_everyone()
    with main_process_output(output_dir, main) as tmp:
        trainer.save_model(str(tmp))  # every process: ZeRO-3 gathers the weights
        if main:
            tokenizer.save_pretrained(str(tmp))
            shutil.copyfile(Path(model_dir) / "config.json", tmp / BASE_CONFIG)
            write_jsonl(tmp / TRAINING_LOG, trainer.state.log_history)
            write_json(tmp / TRAIN_SUMMARY, summary)
    if main and not keep_checkpoints:
        clear_checkpoints(checkpoint_dir)
    trainer.accelerator.wait_for_everyone()
