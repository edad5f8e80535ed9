"""The local cache of downloaded and built models, and the lock that keeps processes from racing.

One folder for everything xdetox keeps between runs: ``$XDETOX_CACHE_DIR`` when set, else
``~/.cache/xdetox`` (the XDG base-directory convention's default cache location). Models from
``gs://`` live under ``models/``, the toy model beside them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

CACHE_ENV = "XDETOX_CACHE_DIR"


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir`` when given, else ``$XDETOX_CACHE_DIR``, else ``~/.cache/xdetox``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "xdetox"


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (``fcntl.flock``), so parallel pipeline tasks fill a cache
    entry once instead of racing; released when the block ends or the process dies."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock; atomic_dir still prevents half-written folders
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
