"""Optional inputs of the interpretability stages: KFP passes an unset string as ``""``.

``toy``, local and ``gs://`` data sources are resolved by :mod:`xdetox.toy.data_sources` (the
same resolution every stage uses), so ``xdetox probe --data toy`` and the pipeline's
``probe_data: toy`` read the very same file.
"""

from __future__ import annotations

from pathlib import Path


def optional_source(source: str | Path | None) -> str | None:
    """``None`` for an absent optional source (``None`` or ``""``, as KFP passes it)."""
    if source is None or str(source).strip() == "":
        return None
    return str(source)
