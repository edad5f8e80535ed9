"""Checkpoints of the transformers-based trainers (DPO, SFT, RLOO, GRPO) and resuming from them.

Why a folder *beside* the output (``<output>.checkpoints``) rather than inside it: the output is
written whole and atomically at the end (a temporary folder renamed into place), so anything
inside it before that would be lost with a crash, which is exactly when checkpoints matter. In a
KFP component the output is ``tuned.path``; its sibling ``<tuned.path>.checkpoints`` lies under
the same task folder of the pipeline root, and a retried task (``set_retry``) of the same run gets
the same path again. Where that path is on storage that outlives the pod (GCS FUSE ``/gcs/...``
on Vertex AI Pipelines, or a mounted volume), the retry finds the checkpoints and resumes. On a
standalone cluster whose launcher downloads/uploads artifacts instead of mounting them, the path
is pod-local: point ``checkpoint_dir`` at a mounted volume there for resume to work.

A checkpoint counts as complete when transformers has written its ``trainer_state.json``, which
it does last; a half-written ``checkpoint-N`` left by a kill during a save is removed and the one
before it is resumed.

``run_config.json`` in the folder records the settings the checkpoints were made with; a resume
with other settings (except those listed as resumable, e.g. the number of steps) is refused with
a :class:`ConfigError` naming the key, instead of silently mixing two runs.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from xdetox.errors import ConfigError, DataError
from xdetox.files import write_json

RUN_CONFIG = "run_config.json"
CHECKPOINT_SUFFIX = ".checkpoints"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_STATE = "trainer_state.json"
_MODEL_CARD = "README.md"


def default_checkpoint_dir(output_dir: str | Path) -> Path:
    """``<output_dir>.checkpoints``: beside the output, outside its atomic replacement."""
    output_dir = Path(output_dir)
    return output_dir.with_name(output_dir.name + CHECKPOINT_SUFFIX)


def list_checkpoints(
    folder: str | Path, *, prefix: str = "checkpoint-", marker: str | None = None
) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``<prefix>N`` folder under ``folder``, oldest first.

    transformers names its checkpoints ``checkpoint-N`` (the default); our PPO loop ``step-N``.
    With ``marker``, only folders holding that file count: the file a trainer writes last, so
    a folder without it is a save cut short. Without, every folder counts, complete or not.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)$")
    found = []
    for child in folder.iterdir():
        match = pattern.match(child.name)
        if match and child.is_dir() and (marker is None or (child / marker).is_file()):
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_complete_checkpoint(
    folder: str | Path, *, remove_incomplete: bool = False
) -> Path | None:
    """The newest checkpoint with a ``trainer_state.json``; optionally delete newer partial ones."""
    latest = None
    for _, path in list_checkpoints(folder):
        if (path / _STATE).is_file():
            latest = path
        elif remove_incomplete:
            shutil.rmtree(path, ignore_errors=True)
    return latest


def checkpoint_step(path: str | Path | None) -> int:
    """The step of a ``checkpoint-N`` folder (0 for None)."""
    if path is None:
        return 0
    match = _CHECKPOINT.match(Path(path).name)
    return int(match.group(1)) if match else 0


def clear_checkpoints(folder: str | Path) -> None:
    """Remove the checkpoints, the run record and TRL's model card (TRL writes a ``README.md``
    into its ``output_dir``); the folder itself too when nothing else is left in it."""
    folder = Path(folder)
    for _, path in list_checkpoints(folder):
        shutil.rmtree(path, ignore_errors=True)
    for name in (RUN_CONFIG, _MODEL_CARD):
        (folder / name).unlink(missing_ok=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def first_difference(
    saved: Any, current: Any, allowed: frozenset[str] = frozenset(), key: str = ""
) -> str | None:
    """The first dotted key whose value differs between two nested mappings (``allowed`` keys
    may differ), or None when they agree."""
    if isinstance(saved, dict) and isinstance(current, dict):
        for name in sorted(set(saved) | set(current)):
            where = f"{key}.{name}" if key else name
            if where in allowed:
                continue
            if name not in saved or name not in current:
                return where
            found = first_difference(saved[name], current[name], allowed, where)
            if found:
                return found
        return None
    return None if saved == current else key


def resume_checkpoint(
    folder: str | Path,
    run_config: dict[str, Any],
    *,
    resume: bool,
    allowed_changes: frozenset[str] = frozenset(),
    is_main_process: bool = True,
) -> Path | None:
    """The checkpoint to resume from (None: start from scratch), after checking it fits.

    With ``resume=False`` old checkpoints are removed first. Otherwise the newest complete
    checkpoint is returned if ``run_config`` matches the one it was made with (keys in
    ``allowed_changes`` may differ); a mismatch raises :class:`ConfigError` naming the key.
    Only the main process deletes; the others only read. :func:`record_run_config` writes the
    record for the run about to start.
    """
    folder = Path(folder)
    if not resume:
        if is_main_process:
            clear_checkpoints(folder)
        latest = None
    else:
        latest = latest_complete_checkpoint(folder, remove_incomplete=is_main_process)
    record = folder / RUN_CONFIG
    if latest is not None and record.is_file():
        try:
            saved = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"unreadable run record ({exc})", record) from None
        key = first_difference(saved, run_config, allowed_changes)
        if key is not None:
            raise ConfigError(
                f"{key}: differs from the checkpoints in {folder} (resume with the same settings, "
                "or start over: --no-resume, or remove that folder)"
            )
    return latest


def record_run_config(
    folder: str | Path, run_config: dict[str, Any], is_main_process: bool
) -> None:
    """Write ``run_config.json`` (called once the model has loaded, right before training, so
    that input errors leave no checkpoint folder behind)."""
    if is_main_process:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / RUN_CONFIG, run_config)


def files_digest(*paths: str | Path | None) -> str:
    """SHA-256 over the bytes of the given files (absent/None ones skipped): the training data
    a checkpoint belongs to, so a resume on other data is refused like other changed settings."""
    import hashlib

    digest = hashlib.sha256()
    for path in paths:
        if path is None or not Path(path).is_file():
            continue
        digest.update(Path(path).name.encode())
        with Path(path).open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
