"""Generation with transformers: n seeded samples per prompt, batched, written as JSON lines.

Reproducibility: every sample is drawn from its own random stream, seeded from
(seed, prompt_id, sample_index) (see ``seeded_sampler``), so the same sample gets the same text
whatever the batch size, the batch's other rows or the prompt order. Rows from several prompts
share a batch; batches are formed from rows sorted by prompt length to waste little padding.
The one limit is the arithmetic itself: a different batch shape can round the logits a little
differently (noticeably in bf16 on GPU), which very rarely flips a sampled token. Reruns with the
same prompts and ``batch_size`` form the same batches and repeat exactly (on GPU, as far as its
kernels are deterministic).

Temperature 0 is greedy decoding (no randomness); ``n`` must then be 1 (see
``sampling.check_generation_config``).

:func:`generate_file` works in shards and resumes after a kill (``shards``); the backend choice
(transformers or vLLM) is :func:`xdetox.components.generate.backends.generate_file`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig as HFGenerationConfig
from transformers import LogitsProcessorList

from xdetox.components.generate.decoding import (
    GenerationSummary,
    continuation_text,
    encode_prompts,
    log_summary,
    sample_record,
    split_finished,
)
from xdetox.components.generate.prompt_file import Prompt, read_prompts
from xdetox.components.generate.sampling import check_generation_config, sample_seed
from xdetox.components.generate.seeded_sampler import SeededSampler
from xdetox.components.generate.shards import (
    DEFAULT_SHARD_SIZE,
    ShardHook,
    generate_sharded,
    run_identity,
)
from xdetox.config import GenerationConfig
from xdetox.models import context_limit, eos_token_ids, load_model_and_tokenizer, pick_device

# Kept importable from here: the interpretability stage and the tests use them.
__all__ = [
    "GenerationSummary",
    "HFGenerator",
    "continuation_text",
    "encode_prompts",
    "generate_file",
    "generate_samples",
    "hf_generation_config",
    "left_pad",
    "split_finished",
]

log = logging.getLogger(__name__)


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r) :] = 1
    return ids, mask


def hf_generation_config(
    config: GenerationConfig, pad_id: int, eos_ids: list[int]
) -> HFGenerationConfig:
    """Greedy decoding settings; sampling, when wanted, is done by :class:`SeededSampler`.

    Logit-changing options a checkpoint may ship in its generation_config.json (repetition
    penalty, n-gram blocking, minimum length) are reset: the protocol is temperature and top-p
    only, as in vLLM and the papers. Warpers (temperature/top-k/top-p) are set to their neutral
    values so that transformers neither applies nor warns about a checkpoint's sampling defaults.
    """
    return HFGenerationConfig(
        max_new_tokens=config.max_new_tokens,
        do_sample=False,
        num_beams=1,
        temperature=1.0,
        top_p=1.0,
        top_k=50,  # transformers' own default: unused without do_sample, and silences a warning
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        min_new_tokens=0,
        pad_token_id=pad_id,
        eos_token_id=eos_ids or None,
    )


def generate_samples(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    *,
    model_label: str,
    config: GenerationConfig,
    source: Path,
    progress: bool = True,
) -> tuple[list[dict[str, Any]], GenerationSummary]:
    """Records (prompt order, then sample_index) and a summary for ``prompts``."""
    check_generation_config(config)
    device = next(model.parameters()).device
    limit = context_limit(model, config.max_new_tokens)
    encoded, truncated = encode_prompts(tokenizer, prompts, limit, source)
    eos_ids = eos_token_ids(model, tokenizer)
    hf_config = hf_generation_config(config, tokenizer.pad_token_id, eos_ids)
    greedy = config.temperature == 0

    rows = [(pi, si) for pi in range(len(prompts)) for si in range(config.n)]
    # Longest prompts first: similar lengths share a batch (little padding) and an
    # out-of-memory error shows on the first batch rather than after an hour.
    order = sorted(range(len(rows)), key=lambda r: (-len(encoded[rows[r][0]]), r))
    results: list[dict[str, Any] | None] = [None] * len(rows)
    done_per_prompt = [0] * len(prompts)
    summary = GenerationSummary(
        prompts=len(prompts), truncated_prompts=truncated, device=str(device)
    )

    bar = tqdm(
        total=len(prompts),
        desc=f"generate {model_label}",
        unit="prompt",
        disable=None if progress else True,
    )
    with torch.no_grad(), bar:
        for start in range(0, len(order), config.batch_size):
            chunk = order[start : start + config.batch_size]
            batch_prompts = [encoded[rows[r][0]] for r in chunk]
            input_ids, attention_mask = left_pad(batch_prompts, tokenizer.pad_token_id)
            processors = LogitsProcessorList()
            if not greedy:
                seeds = [
                    sample_seed(config.seed, prompts[rows[r][0]].prompt_id, rows[r][1])
                    for r in chunk
                ]
                processors.append(SeededSampler(seeds, config.temperature, config.top_p))
            out = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                generation_config=hf_config,
                logits_processor=processors,
            )
            new_tokens = out[:, input_ids.shape[1] :].tolist()
            for j, r in enumerate(chunk):
                pi, si = rows[r]
                kept, n_tokens, reason = split_finished(new_tokens[j], set(eos_ids))
                summary.finish_reasons[reason] += 1
                results[r] = sample_record(
                    model_label,
                    prompts[pi],
                    si,
                    continuation_text(tokenizer, batch_prompts[j], kept),
                    n_tokens,
                    reason,
                )
                done_per_prompt[pi] += 1
                if done_per_prompt[pi] == config.n:
                    bar.update(1)

    records = [r for r in results if r is not None]
    summary.samples = len(records)
    return records, summary


class HFGenerator:
    """Generates one shard of prompts at a time with a transformers model loaded on first use.

    Loading lazily means a rerun whose shards are all finished only concatenates them.
    """

    backend = "hf"

    def __init__(
        self,
        model_dir: str | Path,
        *,
        model_label: str,
        config: GenerationConfig,
        source: Path,
        device: str | None = None,
    ):
        self.model_dir = Path(model_dir)
        self.model_label = model_label
        self.config = config
        self.source = source
        self.device = device
        self.summary = GenerationSummary()
        self._loaded: tuple[Any, Any] | None = None

    def identity(self) -> dict[str, Any]:
        """What besides config, model and prompts decides the samples (see ``shards``)."""
        return {"backend": self.backend}

    def __call__(self, prompts: Sequence[Prompt]) -> list[dict[str, Any]]:
        if self._loaded is None:
            self._loaded = load_model_and_tokenizer(self.model_dir, pick_device(self.device))
        model, tokenizer = self._loaded
        records, summary = generate_samples(
            model,
            tokenizer,
            prompts,
            model_label=self.model_label,
            config=self.config,
            source=self.source,
            progress=False,  # the shard runner shows progress over all prompts
        )
        self.summary.add(summary)
        return records


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
    shard_size: int = DEFAULT_SHARD_SIZE,
    shard_dir: str | Path | None = None,
    on_shard: ShardHook | None = None,
) -> int:
    """Generate ``config.n`` samples per prompt (of ``language``, or all) and write them.

    Returns the number of lines written. Work goes in shards of ``shard_size`` prompts kept in
    ``shard_dir`` (default ``<output>.shards``) until the end, so a killed run resumes where it
    stopped; the output replaces ``output_path`` atomically, so a rerun never appends to or
    half-overwrites an earlier file.
    """
    check_generation_config(config)
    prompts_path = Path(prompts_path)
    prompts = read_prompts(prompts_path, language)
    generator = HFGenerator(
        model_dir, model_label=model_label, config=config, source=prompts_path, device=device
    )
    count = generate_sharded(
        prompts,
        output_path,
        generator,
        model_dir=model_dir,
        identity=run_identity(config, model_label, generator.identity()),
        samples_per_prompt=config.n,
        shard_size=shard_size,
        shard_dir=shard_dir,
        progress=progress,
        desc=f"generate {model_label} (transformers)",
        on_shard=on_shard,
    )
    log_summary(model_label, generator.summary)
    return count
