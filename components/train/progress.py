"""Progress bars of the libraries the trainers call, switched with the stage's ``progress``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import datasets


@contextlib.contextmanager
def dataset_progress(enabled: bool) -> Iterator[None]:
    """Silence the ``datasets`` bars of TRL's tokenization when progress is off; restore after."""
    was_enabled = datasets.is_progress_bar_enabled()
    if not enabled:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()
