"""The one place that decides when a *data* source means the shipped toy data.

Every stage that reads data (prompts, preference pairs, the interpretability stages' probe and
parallel sentences) accepts ``toy`` for its shipped toy file, so that ``xdetox generate
--prompts toy`` and the pipeline's ``prompts: toy`` read the very same file. (The toy *model*
is a model source, resolved by :mod:`xdetox.models`.)

Beside ``toy``, the project's own prompt sets for real models (:mod:`xdetox.prompts`: ``real``,
``real-train``) are shipped sources of kind ``prompts``, and ``real-parallel`` of kind
``parallel``; :func:`shipped_data` knows them all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from xdetox.prompts import shipped_parallel, shipped_prompts
from xdetox.storage import local_copy
from xdetox.toy import toy_pairs_dir, toy_prompts_path
from xdetox.toy.interpret_data import toy_jigsaw_path, toy_parallel_path

TOY_SOURCE = "toy"
ToyData = Literal["prompts", "pairs", "probe", "parallel"]

_TOY_PATHS: dict[str, Callable[[], Path]] = {
    "prompts": toy_prompts_path,  # JSON lines: prompt_id, language, prompt
    "pairs": toy_pairs_dir,  # folder of toxicity_pairwise split_*.jsonl
    "probe": toy_jigsaw_path,  # Jigsaw train.csv format
    "parallel": toy_parallel_path,  # JSON lines: id, language, en, text, toxic
}


def is_toy(source: object) -> bool:
    """Whether ``source`` is the word ``toy``. A ``Path`` never is: ``Path("toy")`` is a
    folder named toy."""
    return isinstance(source, str) and source.strip() == TOY_SOURCE


def toy_data(source: object, kind: ToyData) -> Path | None:
    """The shipped toy file (or folder) of ``kind`` when ``source`` is ``toy``, else None."""
    return _TOY_PATHS[kind]() if is_toy(source) else None


def shipped_data(source: object, kind: ToyData) -> Path | None:
    """The shipped file (or folder) that ``source`` names for ``kind``, else None: the toy data,
    for ``prompts`` also a project prompt set (``real``, ``real-train``), for ``parallel`` the
    project's parallel sentences (``real-parallel``)."""
    toy = toy_data(source, kind)
    if toy is not None:
        return toy
    if kind == "prompts":
        return shipped_prompts(source)
    if kind == "parallel":
        return shipped_parallel(source)
    return None


@contextlib.contextmanager
def local_data(source: str | Path, kind: ToyData) -> Iterator[Path]:
    """``with local_data(source, "prompts") as path:`` a local path for a data source.

    ``toy`` is the shipped toy data of ``kind`` (for prompts also ``real``/``real-train``); a
    ``gs://`` file or folder is downloaded for the block and deleted after it; a local path is
    used as it is (a missing one is a one-line :class:`~xdetox.errors.DataError` naming it).
    """
    shipped = shipped_data(source, kind)
    if shipped is not None:
        yield shipped
        return
    with local_copy(source) as path:
        yield path
