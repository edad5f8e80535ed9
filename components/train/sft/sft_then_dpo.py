"""The model card's recipe (``training.method: sft_dpo``): SFT, then DPO from the SFT model.

Decision: the SFT adapter is **merged** into the base before DPO, rather than DPO stacking a
second adapter on the first. The card applied DPO to a standalone SFT model
(``llama2-7b-sft-detox``); a merged SFT model is exactly that, it can be quantised again for a
QLoRA DPO (a 4-bit base cannot carry a trainable merged adapter), and DPO's reference policy
("the model with its adapters disabled") is then the SFT model, as DPO requires, not the raw base.

The stage's output is a **full model** (SFT merged, then the DPO adapter merged on top, both into
full-precision weights), not an adapter: a DPO adapter belongs to the SFT model, and the merge
stage, which only knows the original base, would otherwise fold it into the wrong weights.
``merge_adapter`` passes a full model through unchanged. The output also holds the DPO log
(``training_log.jsonl``), the SFT log (``sft_training_log.jsonl``) and a summary with the SFT
figures prefixed ``sft_``.

Intermediate results live in ``checkpoint_dir`` (default ``<output>.checkpoints``) so that a
retried task skips what is done: ``sft/`` (SFT adapter or model), ``sft-model/`` (merged),
``dpo/`` (DPO adapter or model), each complete once it exists (written atomically), plus each
trainer's own checkpoints; ``stages_config.json`` records the settings and data they were made
with, and a retry with other settings is refused rather than reusing a stale stage. All of it
is removed after success unless ``keep_checkpoints``.
"""

from __future__ import annotations

import gc
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import TrainerCallback

from xdetox.components.merge.merge_lora import ADAPTER_CONFIG, load_merged, merge_adapter
from xdetox.components.train.checkpointing import (
    default_checkpoint_dir,
    files_digest,
    first_difference,
)
from xdetox.components.train.dpo.train_dpo import (
    BASE_CONFIG,
    RESUMABLE_TRAINING_KEYS,
    TRAIN_SUMMARY,
    TRAINING_LOG,
    train_dpo,
)
from xdetox.components.train.outputs import main_process_output, process_state
from xdetox.components.train.sft.train_sft import RESUMABLE_SFT_KEYS, train_sft
from xdetox.config import TrainingConfig
from xdetox.errors import ConfigError
from xdetox.files import write_json
from xdetox.models import load_tokenizer

SFT_LOG = "sft_training_log.jsonl"
SFT_SUMMARY = "sft_summary.json"
STAGES_RECORD = "stages_config.json"


def _free_memory() -> None:
    """Drop the finished stage's model and optimizer before the next stage loads its own."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _done(folder: Path) -> bool:
    return (folder / TRAIN_SUMMARY).is_file()


def _read_summary(folder: Path) -> dict[str, float]:
    return json.loads((folder / TRAIN_SUMMARY).read_text(encoding="utf-8"))


def _copy_logs(sft_dir: Path, dpo_dir: Path, dest: Path, summary: dict[str, float]) -> None:
    shutil.copyfile(dpo_dir / TRAINING_LOG, dest / TRAINING_LOG)
    shutil.copyfile(sft_dir / TRAINING_LOG, dest / SFT_LOG)
    shutil.copyfile(sft_dir / TRAIN_SUMMARY, dest / SFT_SUMMARY)
    write_json(dest / TRAIN_SUMMARY, summary)


class _RecordStages(TrainerCallback):
    """Writes the stages record when a stage starts training (after its inputs and model loaded
    fine, so that bad input leaves no folder behind)."""

    def __init__(self, path: Path, record: dict, is_main: bool):
        self.path, self.record, self.is_main = path, record, is_main

    def on_train_begin(self, args, state, control, **kwargs):
        if self.is_main:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json(self.path, self.record)


def _check_finished_stages(work: Path, config: TrainingConfig, pairs_dir: Path, sft_data) -> dict:
    """Refuse to reuse stages finished with other settings or data; return the current record.

    A finished stage is skipped on a retry, so without this record a changed hyperparameter
    would silently keep the old SFT or DPO result."""
    sft_source = Path(sft_data) if sft_data is not None else pairs_dir
    sft_files = (sft_source / "train.jsonl", sft_source / "eval.jsonl") if sft_source.is_dir() \
        else (sft_source,)  # fmt: skip
    current = {
        "training": config.model_dump(mode="json"),
        "data": files_digest(pairs_dir / "train.jsonl", pairs_dir / "eval.jsonl"),
        "sft_data": files_digest(*sft_files),
    }
    record = work / STAGES_RECORD
    if record.is_file():
        saved = json.loads(record.read_text(encoding="utf-8"))
        key = first_difference(saved, current, RESUMABLE_TRAINING_KEYS | RESUMABLE_SFT_KEYS)
        if key is not None:
            raise ConfigError(
                f"{key}: differs from the stages already run in {work} (resume with the same "
                "settings, or start over: --no-resume, or remove that folder)"
            )
    return current


def train_sft_then_dpo(
    model_dir: str | Path,
    pairs_dir: str | Path,
    output_dir: str | Path,
    config: TrainingConfig,
    *,
    sft_data: str | Path | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    keep_checkpoints: bool = False,
    progress: bool = True,
    callbacks: Sequence[TrainerCallback] = (),
) -> dict[str, float]:
    """SFT on ``sft_data`` (default: the chosen side of ``pairs_dir``), merge, DPO on
    ``pairs_dir``, merge; write the full model to ``output_dir``. Returns the DPO summary plus
    the SFT one under ``sft_`` keys."""
    model_dir, pairs_dir, output_dir = Path(model_dir), Path(pairs_dir), Path(output_dir)
    work = Path(checkpoint_dir) if checkpoint_dir else default_checkpoint_dir(output_dir)
    sft_dir, sft_model, dpo_dir = work / "sft", work / "sft-model", work / "dpo"
    state = process_state()
    if not resume and state.is_main_process:
        shutil.rmtree(work, ignore_errors=True)
    state.wait_for_everyone()
    record = _check_finished_stages(work, config, pairs_dir, sft_data)
    callbacks = [*callbacks, _RecordStages(work / STAGES_RECORD, record, state.is_main_process)]

    if not (sft_model / "config.json").is_file():
        if not _done(sft_dir):
            train_sft(
                model_dir,
                sft_data if sft_data is not None else pairs_dir,
                sft_dir,
                config,
                progress=progress,
                checkpoint_dir=work / "sft.checkpoints",
                resume=resume,
                callbacks=callbacks,
            )
            _free_memory()
        if state.is_main_process:
            # A full fine-tuned SFT model is copied as it is; an adapter is merged into the base.
            merge_adapter(model_dir, sft_dir, sft_model)
        state.wait_for_everyone()

    if not _done(dpo_dir):
        train_dpo(
            sft_model,
            pairs_dir,
            dpo_dir,
            config,
            progress=progress,
            checkpoint_dir=work / "dpo.checkpoints",
            resume=resume,
            callbacks=callbacks,
        )
        _free_memory()

    summary = dict(_read_summary(dpo_dir))
    summary.update({f"sft_{k}": v for k, v in _read_summary(sft_dir).items()})
    if state.is_main_process:
        with main_process_output(output_dir, True) as tmp:
            if (dpo_dir / ADAPTER_CONFIG).is_file():
                merged = load_merged(sft_model, dpo_dir)
                merged.save_pretrained(str(tmp))
                del merged
            else:
                for item in dpo_dir.iterdir():
                    if item.is_file():
                        shutil.copy2(item, tmp / item.name)
            load_tokenizer(dpo_dir).save_pretrained(str(tmp))
            shutil.copyfile(model_dir / "config.json", tmp / BASE_CONFIG)
            _copy_logs(sft_dir, dpo_dir, tmp, summary)
        if not keep_checkpoints:
            shutil.rmtree(work, ignore_errors=True)
    state.wait_for_everyone()
    return summary
