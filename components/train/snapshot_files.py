"""The snapshot folders of ``training.dose_response`` (``snapshots.py`` writes them during
training): their names, the index every train task writes, and taking one out as a model.

Kept apart from the training callback so that the task that takes a snapshot out needs neither
torch nor transformers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from xdetox.errors import ConfigError
from xdetox.files import atomic_dir, write_json

SNAPSHOT_INFO = "snapshot.json"


def snapshot_name(fraction: float) -> str:
    """The folder of the snapshot after ``fraction`` of training: ``at25`` for 0.25."""
    return f"at{round(100 * fraction):02d}"


INDEX = "snapshots.json"


def write_index(folder: str | Path) -> list[str]:
    """Write ``snapshots.json`` (the snapshots taken, by name; an empty list without any) into
    ``folder``, creating it: the artifact always holds a file, taken or not."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    taken = taken_snapshots(folder)
    write_json(Path(folder) / INDEX, {"snapshots": taken})
    return taken


def copy_snapshot(folder: str | Path, name: str, dest: str | Path) -> dict[str, Any]:
    """Copy the snapshot ``name`` of ``folder`` to ``dest`` (all or nothing); return its info."""
    source = Path(folder) / name
    if not (source / SNAPSHOT_INFO).is_file():
        taken = ", ".join(taken_snapshots(folder)) or "none"
        raise ConfigError(f"no snapshot {name!r} in {folder} (taken: {taken})")
    with atomic_dir(dest) as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
    return json.loads((source / SNAPSHOT_INFO).read_text(encoding="utf-8"))


def taken_snapshots(folder: str | Path) -> list[str]:
    """The names of the complete snapshots in ``folder`` (none when it does not exist)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / SNAPSHOT_INFO).is_file())
