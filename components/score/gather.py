"""Several models' score files as one folder, in the order the models were evaluated.

Why a folder: a KFP component has a fixed signature and a list of artifacts can only come from
``dsl.Collected`` over a loop, while the models a run evaluates are separate tasks (base, sft,
dpo, control, ...). The evaluation sub-pipeline therefore chains one small gather task per
additional model; the metrics and examples tasks read the folder (or a single file, when one
model is evaluated). Files are named by position (``000.jsonl``, ``001.jsonl``, ...), so the
order, which the metrics table keeps for its rows, survives.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from xdetox.errors import DataError
from xdetox.files import atomic_dir

SUFFIX = ".jsonl"


def score_files(path: str | Path) -> list[Path]:
    """The score files of a gathered folder, in order, or ``[path]`` for one score file."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError("no score file or gathered folder here", path)
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix == SUFFIX)
    if not files:
        raise DataError("a gathered folder without score files", path)
    return files


def gather(dest: str | Path, scores: str | Path, earlier: str | Path | None = None) -> list[Path]:
    """Write ``earlier``'s files (a gathered folder or one score file), then ``scores``, into the
    folder ``dest`` (all or nothing); return the files written, in order."""
    sources = [*(score_files(earlier) if earlier is not None else []), *score_files(scores)]
    with atomic_dir(dest) as tmp:
        for index, source in enumerate(sources):
            shutil.copyfile(source, tmp / f"{index:03d}{SUFFIX}")
    return [Path(dest) / f"{index:03d}{SUFFIX}" for index in range(len(sources))]
