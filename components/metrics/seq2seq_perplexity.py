"""Fluency as XG measured it: an encoder-decoder (mT5) and its approximation formula.

``perplexity_method = "xg-seq2seq"``: the fluency measure of Li, Yong & Bach 2024, "Preference
Tuning For Toxicity Mitigation Generalizes Across Languages" (arXiv:2406.16235; "XG" here), with
``google/mt5-xl``. For each (prompt, continuation):

1. ``full = prompt + continuation`` (the strings concatenated as generated) is tokenized with
   the model's tokenizer (its special tokens included: mT5 appends ``</s>``) and fed as both the
   encoder input and the labels; ``L_full`` is the mean token loss, ``n_full`` the label count;
2. the same for the prompt alone: ``L_prompt``, ``n_prompt``;
3. ``loss = (L_full·(n_full−1) − L_prompt·(n_prompt−1)) / (n_full − n_prompt)``,
   ``ppl = exp(loss)`` (:func:`xg_seq2seq_loss`).

It is an approximation, documented as such: the encoder sees the whole text it is asked to
reproduce, so the decoder copies rather than predicts; the numbers are comparable with XG's
Table 2, not with a causal LM's perplexity. The exact variant is ``causal-conditional``.

Batching: sequences are right-padded; padded label positions are ignored (-100) and, since the
decoder is causal, padding after a token cannot change its loss; so a text's value does not
depend on its batch. A continuation that is empty, or adds no token to the prompt's tokens, has
nothing to measure: NaN (skipped and counted as ``n_ppl_empty``), never a number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from xdetox.components.metrics.lm_loading import load_lm

PERPLEXITY_METHOD = "xg-seq2seq"


def xg_seq2seq_loss(loss_full: float, n_full: int, loss_prompt: float, n_prompt: int) -> float:
    """XG's continuation loss from two mean losses of an encoder-decoder (mT5).

    ``loss_full``/``n_full``: mean loss and label length of ``prompt + continuation`` fed as both
    encoder input and labels; ``loss_prompt``/``n_prompt``: the same for the prompt alone. The
    continuation's loss is taken as
    ``(L_full·(n_full−1) − L_prompt·(n_prompt−1)) / (n_full − n_prompt)``: total minus prompt
    loss, spread over the continuation's length. It is an approximation: the encoder sees the
    whole text, so the "targets" are copied rather than predicted.
    """
    if n_full <= n_prompt:
        raise ValueError(f"n_full ({n_full}) must exceed n_prompt ({n_prompt})")
    return (loss_full * (n_full - 1) - loss_prompt * (n_prompt - 1)) / (n_full - n_prompt)


def xg_seq2seq_perplexity(
    loss_full: float, n_full: int, loss_prompt: float, n_prompt: int
) -> float:
    """``exp`` of :func:`xg_seq2seq_loss`."""
    return math.exp(xg_seq2seq_loss(loss_full, n_full, loss_prompt, n_prompt))


def load_seq2seq_lm(source: str | Path, device: str | None = None) -> tuple[Any, Any, str]:
    """``(model, tokenizer, device)`` of an encoder-decoder LM (folder or Hub id), eval mode."""
    return load_lm(
        "AutoModelForSeq2SeqLM",
        source,
        device,
        what="a seq2seq LM for perplexity (metrics.perplexity_method xg-seq2seq needs one, "
        "e.g. google/mt5-xl)",
    )


def mean_losses(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    batch_size: int = 16,
    device: str | None = None,
    desc: str = "seq2seq loss",
) -> dict[str, tuple[float, int]]:
    """``{text: (mean token loss, number of label tokens)}`` with the text as encoder input and
    labels (the model's own loss for one unpadded sequence); ``(nan, 0)`` for no tokens."""
    import torch

    if batch_size <= 0:
        raise ValueError("batch_size must be positive")
    device = device or str(next(model.parameters()).device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    unique = list(dict.fromkeys(texts))
    encoded = {text: list(tokenizer(text)["input_ids"]) for text in unique}
    out: dict[str, tuple[float, int]] = {t: (math.nan, 0) for t in unique if not encoded[t]}
    todo = sorted((t for t in unique if encoded[t]), key=lambda t: len(encoded[t]), reverse=True)
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    with torch.no_grad():
        for batch in tqdm(batches, desc=desc, unit=" batches", disable=None):
            width = max(len(encoded[t]) for t in batch)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, text in enumerate(batch):
                tokens = encoded[text]
                ids[row, : len(tokens)] = torch.tensor(tokens)
                mask[row, : len(tokens)] = 1
            labels = ids.masked_fill(mask == 0, -100)
            ids, mask, labels = ids.to(device), mask.to(device), labels.to(device)
            logits = model(input_ids=ids, attention_mask=mask, labels=labels).logits
            log_probs = torch.log_softmax(logits.float(), dim=-1)
            target = labels.clamp(min=0).unsqueeze(-1)
            token_nll = -log_probs.gather(-1, target).squeeze(-1) * mask
            sums = token_nll.double().sum(dim=1)
            counts = mask.sum(dim=1)
            for row, text in enumerate(batch):
                n = int(counts[row].item())
                out[text] = (sums[row].item() / n, n)
    return out


def xg_seq2seq_perplexities(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    *,
    batch_size: int = 16,
    device: str | None = None,
    desc: str = "perplexity (xg-seq2seq)",
) -> list[float]:
    """XG's perplexity of each ``(prompt, continuation)``; NaN where there is nothing to score."""
    wanted = [(p, t) for p, t in pairs if t.strip()]
    texts = [p + t for p, t in wanted] + [p for p, _ in wanted]
    losses = mean_losses(model, tokenizer, texts, batch_size=batch_size, device=device, desc=desc)
    values = []
    for prompt, text in pairs:
        if not text.strip():
            values.append(math.nan)
            continue
        loss_full, n_full = losses[prompt + text]
        loss_prompt, n_prompt = losses[prompt]
        if n_prompt == 0:
            loss_prompt = 0.0  # no prompt tokens: nothing to subtract
        if n_full <= n_prompt:
            values.append(math.nan)
            continue
        loss = xg_seq2seq_loss(loss_full, n_full, loss_prompt, n_prompt)
        values.append(math.exp(loss) if loss < 700 else math.inf)  # inf: dropped later
    return values
