"""Compile a pipeline to KFP IR YAML for a cluster."""

from __future__ import annotations

from pathlib import Path

from kfp import compiler

from xdetox.config import Config
from xdetox.files import atomic_path


def compile_pipeline(config: Config, output: str | Path, pipeline_name: str = "detox") -> Path:
    """Write a pipeline, with ``config``'s defaults and cluster settings, to ``output``."""
    from xdetox.pipelines.registry import get_pipeline_factory

    output = Path(output)
    pipeline = get_pipeline_factory(pipeline_name)(config)
    with atomic_path(output) as tmp:
        # KFP picks the format from the suffix; the temporary file must keep ".yaml".
        tmp_yaml = tmp.with_suffix(".yaml")
        try:
            compiler.Compiler().compile(pipeline, str(tmp_yaml))
            tmp_yaml.replace(tmp)
        finally:
            tmp_yaml.unlink(missing_ok=True)
    return output
