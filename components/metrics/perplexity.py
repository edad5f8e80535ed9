"""Fluency: perplexity of each continuation given its prompt.

Two methods (``metrics.perplexity_method``; the table's ``perplexity_method`` column says which):

* ``causal-conditional`` (here): the prompt and the continuation are fed to a causal LM as one
  sequence; only the continuation's tokens are targets, the prompt is context. Perplexity =
  exp(mean negative log-likelihood of the continuation tokens): the exact conditional
  perplexity, a documented alternative to XG's approximation.
* ``xg-seq2seq`` (``seq2seq_perplexity.py``): the approximation with an encoder-decoder such as
  mT5 used by XG (Li, Yong & Bach 2024, "Preference Tuning For Toxicity Mitigation Generalizes
  Across Languages", arXiv:2406.16235), for numbers comparable with their Table 2.

Whose model: the generations of *every* model (base and tuned) are measured under the same
model (``metrics.perplexity_model``, by default the *base* model), so the numbers compare
fluency on one scale (a tuned model judging its own text would reward its own drift). XG used
an external model (mT5-XL) for the same reason.

Per (model, language), as XG reports: the median (``perplexity``), Q1, Q3 and mean over samples.
The percentiles use numpy's ``linear`` method by default; ``metrics.quartile_method: midpoint``
is XG's (``np.percentile(..., interpolation="midpoint")`` in ``xg/eval/metric_perplexity.py``):
between two neighbouring values it takes their mean instead of interpolating by position. The
median is the same either way; Q1 and Q3 can differ.
Empty generations are skipped (``n_ppl_empty``); perplexities >= ``max_perplexity`` (1e4) or not
finite are dropped as degenerate (``n_ppl_dropped``). Nothing missing is ever reported as 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from xdetox.components.metrics.lm_loading import load_lm
from xdetox.components.metrics.seq2seq_perplexity import (
    load_seq2seq_lm,
    xg_seq2seq_perplexities,
)

PERPLEXITY_METHOD = "causal-conditional"


@dataclass(frozen=True)
class _Encoded:
    context: list[int]
    target: list[int]


def load_causal_lm(model_dir: str | Path, device: str | None = None) -> tuple[Any, Any, str]:
    """``(model, tokenizer, device)`` from a saved model folder, in eval mode.

    fp32 on CPU; on a GPU the dtype the checkpoint was saved in (log-softmax is done in fp32).
    """
    return load_lm("AutoModelForCausalLM", model_dir, device, what="a causal LM for perplexity")


def _max_positions(model: Any) -> int | None:
    config = model.config
    for name in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None  # e.g. ALiBi models (BLOOM): no hard limit


def _encode(tokenizer: Any, prompt: str, text: str, limit: int | None) -> _Encoded | None:
    """Token ids of the prompt (context) and continuation (targets); None when nothing to score.

    Prompt and continuation are tokenized separately, as they were at generation time (the
    prompt was encoded, new tokens appended): joint tokenization could merge tokens across the
    boundary. The prompt gets the tokenizer's special tokens (e.g. Llama's BOS), the
    continuation none.
    """
    if not text.strip():
        return None
    target = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    context = list(tokenizer(prompt)["input_ids"]) if prompt else []
    if not context:
        # The first target needs something to be predicted from: BOS, else GPT-2's EOS
        # (<|endoftext|> starts documents there), else the first token becomes context.
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else None
        start = start if start is not None else tokenizer.eos_token_id
        if start is not None:
            context = [start]
        else:
            context, target = target[:1], target[1:]
    if not target:
        return None
    if limit is not None and len(context) + len(target) > limit:
        target = target[: limit - 1]  # generations are short: this only guards odd inputs
        context = context[-(limit - len(target)) :]  # keep the prompt's end, nearest the text
    return _Encoded(context, target)


def conditional_perplexities(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    *,
    batch_size: int = 16,
    device: str | None = None,
    desc: str = "perplexity",
) -> list[float]:
    """Perplexity of each ``(prompt, continuation)`` under a causal LM; NaN where the
    continuation is empty (no tokens to score).

    Sequences are right-padded with an attention mask: the real tokens keep positions
    0..L-1 (so GPT-2's absolute position ids need no correction) and, with causal attention,
    padding after a token cannot change its logits. Sorting by length keeps padding small;
    identical pairs are computed once.
    """
    import torch

    if batch_size <= 0:
        raise ValueError("batch_size must be positive")
    device = device or str(next(model.parameters()).device)
    limit = _max_positions(model)
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0

    unique = list(dict.fromkeys(pairs))
    encoded = {pair: _encode(tokenizer, pair[0], pair[1], limit) for pair in unique}
    todo = sorted(
        (pair for pair in unique if encoded[pair] is not None),
        key=lambda p: len(encoded[p].context) + len(encoded[p].target),
        reverse=True,
    )
    result: dict[tuple[str, str], float] = {}
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    with torch.no_grad():
        for batch in tqdm(batches, desc=desc, unit=" batches", disable=None):
            items = [encoded[pair] for pair in batch]
            lengths = [len(e.context) + len(e.target) for e in items]
            width = max(lengths)
            ids = torch.full((len(items), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(items), width), dtype=torch.long)
            rows, positions = [], []
            for b, (item, length) in enumerate(zip(items, lengths, strict=True)):
                ids[b, :length] = torch.tensor(item.context + item.target)
                mask[b, :length] = 1
                # Token at position t is predicted by the logits at t - 1.
                start = len(item.context)
                rows.extend([b] * len(item.target))
                positions.extend(range(start, length))
            ids, mask = ids.to(device), mask.to(device)
            logits = model(input_ids=ids, attention_mask=mask).logits
            row_idx = torch.tensor(rows, device=logits.device)
            pos_idx = torch.tensor(positions, device=logits.device)
            # Only the target positions go through log-softmax (in fp32): vocabularies of
            # 250k tokens make the full (batch, length, vocab) tensor in fp32 too large.
            log_probs = torch.log_softmax(logits[row_idx, pos_idx - 1].float(), dim=-1)
            token_lp = log_probs.gather(1, ids[row_idx, pos_idx].unsqueeze(1)).squeeze(1)
            sums = torch.zeros(len(items), dtype=torch.float64, device=logits.device)
            sums.index_add_(0, row_idx, token_lp.double())
            for b, pair in enumerate(batch):
                n_targets = len(items[b].target)
                result[pair] = math.exp(-sums[b].item() / n_targets)
    return [result.get(pair, math.nan) for pair in pairs]


QUARTILE_METHODS: tuple[str, ...] = ("linear", "midpoint")


def summarize_perplexities(
    values: Sequence[float], max_perplexity: float = 1e4, quartile_method: str = "linear"
) -> dict[str, Any]:
    """XG's per-language summary of sample perplexities (NaN entries = empty, skipped); the
    median and quartiles with numpy's percentile ``quartile_method`` (linear or midpoint)."""
    if quartile_method not in QUARTILE_METHODS:
        raise ValueError(
            f"metrics.quartile_method: unknown value {quartile_method!r} "
            f"(known: {', '.join(QUARTILE_METHODS)})"
        )
    array = np.asarray(values, dtype=float)
    measured = array[~np.isnan(array)]
    keep = measured[np.isfinite(measured) & (measured < max_perplexity)]
    row: dict[str, Any] = {
        "n_ppl_empty": int(np.isnan(array).sum()),
        "n_ppl_dropped": int(len(measured) - len(keep)),
        "n_ppl_scored": len(keep),
    }
    if len(keep):
        q1, median, q3 = np.percentile(keep, [25, 50, 75], method=quartile_method)
        row.update(
            perplexity=float(median),
            perplexity_q1=float(q1),
            perplexity_q3=float(q3),
            perplexity_mean=float(keep.mean()),
        )
    else:
        row.update(
            perplexity=math.nan, perplexity_q1=math.nan, perplexity_q3=math.nan,
            perplexity_mean=math.nan,
        )  # fmt: skip
    return row


class Fluency(NamedTuple):
    """The perplexity summary per (model, language), and every sample's perplexity (aligned
    with the input table's index; NaN where the continuation had no tokens)."""

    summary: pd.DataFrame
    samples: pd.Series


def perplexity_metrics(
    table: pd.DataFrame,
    model_dir: str | Path,
    *,
    max_perplexity: float = 1e4,
    batch_size: int = 16,
    device: str | None = None,
    method: str = PERPLEXITY_METHOD,
    quartile_method: str = "linear",
) -> Fluency:
    """One row per (model, language) of ``table`` (from ``read_scores``): every sample's
    continuation measured under the model in ``model_dir`` (a folder or Hub id) with
    ``method`` (``causal-conditional`` or ``xg-seq2seq``), summarized with
    ``quartile_method`` (see :func:`summarize_perplexities`); and the samples' values."""
    if method == PERPLEXITY_METHOD:
        model, tokenizer, device = load_causal_lm(model_dir, device)
        measure = conditional_perplexities
    elif method == "xg-seq2seq":
        model, tokenizer, device = load_seq2seq_lm(model_dir, device)
        measure = xg_seq2seq_perplexities
    else:
        raise ValueError(f"unknown perplexity method {method!r}")
    rows = []
    samples = pd.Series(math.nan, index=table.index, dtype=float)
    for (name, language), group in table.groupby(["model", "language"], sort=True):
        pairs = list(zip(group["prompt"], group["text"], strict=True))
        values = measure(
            model, tokenizer, pairs, batch_size=batch_size, device=device,
            desc=f"perplexity {name}/{language}",
        )  # fmt: skip
        samples.loc[group.index] = values
        row: dict[str, Any] = {"model": name, "language": language}
        row.update(summarize_perplexities(values, max_perplexity, quartile_method))
        row["perplexity_method"] = method
        row["perplexity_model"] = str(model_dir)
        rows.append(row)
    return Fluency(pd.DataFrame(rows), samples)
