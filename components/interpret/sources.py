"""Where the interpretability stages' inputs come from: ``toy``, a local path or ``gs://``.

Shared by the CLI commands and the KFP components, so ``xdetox probe --data toy`` and the
pipeline's ``probe_data: toy`` read the very same file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from xdetox.storage import local_copy

SourceKind = Literal["probe", "parallel"]
TOY = "toy"


def _toy_path(kind: SourceKind) -> Path:
    # Imported here: the toy package is optional for users who bring their own data.
    from xdetox.toy.interpret_data import toy_jigsaw_path, toy_parallel_path

    paths: dict[str, Callable[[], Path]] = {"probe": toy_jigsaw_path, "parallel": toy_parallel_path}
    return paths[kind]()


@contextlib.contextmanager
def local_source(source: str | Path, kind: SourceKind) -> Iterator[Path]:
    """``with local_source(source, "probe") as path:`` a local file for ``source``.

    ``toy`` is the shipped toy file of that kind; a ``gs://`` object is downloaded for the block
    and deleted after it; a local path is used as it is (a missing one is a one-line
    :class:`~xdetox.errors.DataError` naming it).
    """
    if str(source) == TOY:
        yield _toy_path(kind)
        return
    with local_copy(str(source)) as path:
        yield path


def optional_source(source: str | Path | None) -> str | None:
    """``None`` for an absent optional source (``None`` or ``""``, as KFP passes it)."""
    if source is None or str(source).strip() == "":
        return None
    return str(source)
