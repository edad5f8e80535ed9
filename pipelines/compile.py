"""Compile a pipeline to KFP IR YAML for a cluster."""

from __future__ import annotations

from pathlib import Path

from kfp import compiler

from pipelines.detox import build_detox_pipeline
from xdetox.config import Config
from xdetox.files import atomic_path


def compile_pipeline(config: Config, output: str | Path) -> Path:
    """Write the detox pipeline, with ``config``'s defaults and cluster settings, to ``output``."""
    output = Path(output)
    pipeline = build_detox_pipeline(config)
    with atomic_path(output) as tmp:
        # KFP picks the format from the suffix; the temporary file must keep ".yaml".
        tmp_yaml = tmp.with_suffix(".yaml")
        try:
            compiler.Compiler().compile(pipeline, str(tmp_yaml))
            tmp_yaml.replace(tmp)
        finally:
            tmp_yaml.unlink(missing_ok=True)
    return output
