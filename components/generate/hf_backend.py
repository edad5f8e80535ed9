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
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessorList
from transformers import GenerationConfig as HFGenerationConfig

from components.generate.prompt_file import Prompt, read_prompts
from components.generate.sampling import check_generation_config, sample_seed
from components.generate.seeded_sampler import SeededSampler
from xdetox.config import GenerationConfig
from xdetox.errors import ConfigError, DataError
from xdetox.files import write_jsonl

log = logging.getLogger(__name__)


@dataclass
class GenerationSummary:
    """What one run did; logged, and returned by :func:`generate_samples`."""

    prompts: int = 0
    samples: int = 0
    truncated_prompts: int = 0  # prompts cut from the left to fit the model's context
    finish_reasons: dict[str, int] = field(default_factory=lambda: {"stop": 0, "length": 0})
    device: str = "cpu"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def pick_device(device: str | None = None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model(model_dir: str | Path, device: torch.device) -> tuple[Any, Any]:
    """Tokenizer (left padding, pad = eos when missing) and model (eval mode) from a folder."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise DataError("model folder not found", model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    # Left padding: generation appends on the right, so every row's last real token is aligned.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise DataError("tokenizer has neither a pad nor an eos token; cannot batch", model_dir)
        tokenizer.pad_token = tokenizer.eos_token
    # fp32 on CPU (bf16 matmuls are slow there); on GPU the checkpoint's own dtype.
    dtype: Any = "auto" if device.type == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    model.to(device)
    model.eval()
    return model, tokenizer


def context_limit(model: Any, max_new_tokens: int) -> int | None:
    """Longest prompt (tokens) that still leaves room for ``max_new_tokens``; None if unbounded."""
    cfg = model.config
    positions = getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None)
    if positions is None:
        return None  # e.g. ALiBi models (BLOOM) have no fixed position table
    limit = int(positions) - max_new_tokens
    if limit <= 0:
        raise ConfigError(
            f"generation.max_new_tokens: {max_new_tokens} leaves no room for a prompt in a "
            f"context of {positions} positions"
        )
    return limit


def encode_prompts(
    tokenizer: Any, prompts: Sequence[Prompt], limit: int | None, source: Path
) -> tuple[list[list[int]], int]:
    """Token ids per prompt, cut from the left to ``limit``; also how many were cut.

    The left is dropped because the continuation follows the prompt's end. A leading BOS token
    (Llama-style tokenizers) is kept in front of the cut.
    """
    encoded: list[list[int]] = []
    truncated = 0
    bos = tokenizer.bos_token_id
    for p in prompts:
        ids = list(tokenizer(p.prompt)["input_ids"])
        if not ids:
            raise DataError(f"prompt {p.prompt_id!r} encodes to no tokens", source, p.line)
        if limit is not None and len(ids) > limit:
            truncated += 1
            keep_bos = bos is not None and ids[0] == bos and limit > 1
            ids = [bos, *ids[len(ids) - limit + 1 :]] if keep_bos else ids[len(ids) - limit :]
        encoded.append(ids)
    return encoded, truncated


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r) :] = 1
    return ids, mask


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    if eos is None:
        return []
    return [int(e) for e in eos] if isinstance(eos, (list, tuple)) else [int(eos)]


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


def continuation_text(tokenizer: Any, prompt_ids: list[int], new_ids: list[int]) -> str:
    """The continuation's text such that ``prompt_text + text`` is what the model wrote.

    Decoding the new tokens alone loses the leading space of SentencePiece tokenizers (and can
    split a multi-byte character), so decode prompt+continuation and strip the decoded prompt.
    """
    head = tokenizer.decode(prompt_ids, skip_special_tokens=True)
    full = tokenizer.decode(prompt_ids + new_ids, skip_special_tokens=True)
    if full.startswith(head):
        return full[len(head) :]
    return tokenizer.decode(new_ids, skip_special_tokens=True)


def split_finished(new_ids: list[int], eos_ids: set[int]) -> tuple[list[int], int, str]:
    """(tokens before eos, generated token count incl. eos, finish reason).

    Padding after eos is not counted: a row that finished early is padded while the rest of its
    batch keeps generating (and pad may be the eos token itself).
    """
    for i, tok in enumerate(new_ids):
        if tok in eos_ids:
            return new_ids[:i], i + 1, "stop"
    return new_ids, len(new_ids), "length"


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
                p = prompts[pi]
                results[r] = {
                    "model": model_label,
                    "prompt_id": p.prompt_id,
                    "language": p.language,
                    "prompt": p.prompt,
                    "sample_index": si,
                    "text": continuation_text(tokenizer, batch_prompts[j], kept),
                    "n_tokens": n_tokens,
                    "finish_reason": reason,
                }
                done_per_prompt[pi] += 1
                if done_per_prompt[pi] == config.n:
                    bar.update(1)

    records = [r for r in results if r is not None]
    summary.samples = len(records)
    return records, summary


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
) -> int:
    """Generate ``config.n`` samples per prompt (of ``language``, or all) and write them.

    Returns the number of lines written. The output replaces ``output_path`` atomically, so a
    rerun never appends to or half-overwrites an earlier file.
    """
    check_generation_config(config)
    prompts_path = Path(prompts_path)
    prompts = read_prompts(prompts_path, language)
    dev = pick_device(device)
    model, tokenizer = load_model(model_dir, dev)
    records, summary = generate_samples(
        model,
        tokenizer,
        prompts,
        model_label=model_label,
        config=config,
        source=prompts_path,
        progress=progress,
    )
    count = write_jsonl(output_path, records)
    log.info("generation summary for %s: %s", model_label, summary.as_dict())
    if summary.truncated_prompts:
        log.warning(
            "%d of %d prompts were longer than the model's context allows and were cut from the "
            "left",
            summary.truncated_prompts,
            summary.prompts,
        )
    return count
