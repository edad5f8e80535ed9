"""Writing a training stage's output folder from one process or from every process of a launch.

Under ``accelerate launch`` every process runs the same script: all of them must take part in
``trainer.save_model`` (DeepSpeed ZeRO-3 gathers the sharded weights collectively), but only the
main process may write the output folder. The others save into a throw-away temporary folder.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from xdetox.files import atomic_dir


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
