"""What both generation backends share: prompt tokens, end-of-sequence handling, output records.

Both backends tokenize the prompts here with the model's own transformers tokenizer and decode
the continuations here too (vLLM receives token ids and does not detokenize), so a prompt is cut
the same way, ``n_tokens`` counts the same tokens and ``text`` is decoded the same way whichever
backend ran. No torch here: the vLLM worker does not need transformers' model classes. The
tokenizer, the context limit and the end-of-sequence ids come from :mod:`xdetox.models`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from xdetox.components.generate.prompt_file import Prompt
from xdetox.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class GenerationSummary:
    """What one run did; logged, and returned by the backends."""

    prompts: int = 0
    samples: int = 0
    truncated_prompts: int = 0  # prompts cut from the left to fit the model's context
    finish_reasons: dict[str, int] = field(default_factory=lambda: {"stop": 0, "length": 0})
    device: str = "cpu"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def add(self, other: GenerationSummary) -> None:
        """Fold another shard's summary into this one."""
        self.prompts += other.prompts
        self.samples += other.samples
        self.truncated_prompts += other.truncated_prompts
        for reason, count in other.finish_reasons.items():
            self.finish_reasons[reason] = self.finish_reasons.get(reason, 0) + count
        self.device = other.device


def log_summary(model_label: str, summary: GenerationSummary) -> None:
    """The end-of-run log lines, the same for both backends."""
    if summary.prompts == 0:
        return  # every shard was reused: nothing was generated in this run
    log.info("generation summary for %s: %s", model_label, summary.as_dict())
    if summary.truncated_prompts:
        log.warning(
            "%d of %d prompts were longer than the model's context allows and were cut from the "
            "left",
            summary.truncated_prompts,
            summary.prompts,
        )


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


def sample_record(
    model_label: str,
    prompt: Prompt,
    sample_index: int,
    text: str,
    n_tokens: int,
    finish_reason: str,
) -> dict[str, Any]:
    """One generation line (``xdetox.records``' schema), keys in the order users see them;
    ``kind`` (the prompt's set) only when the prompt has one."""
    record = {
        "model": model_label,
        "prompt_id": prompt.prompt_id,
        "language": prompt.language,
        "prompt": prompt.prompt,
        "sample_index": sample_index,
        "text": text,
        "n_tokens": n_tokens,
        "finish_reason": finish_reason,
    }
    if prompt.kind is not None:
        record["kind"] = prompt.kind
    return record
