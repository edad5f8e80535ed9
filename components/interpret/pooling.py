"""Loading a frozen model, and mean-pooled hidden states of texts.

Batches are padded on the **right** here: with causal attention a real token never sees the
padding after it, and its position ids are the same as unbatched. (Left padding would shift the
positions of models that do not derive position ids from the attention mask, e.g. GPT-2's plain
forward.) A test checks that a text's vector does not depend on its batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from xdetox.components.interpret.architectures import Architecture, resolve_architecture
from xdetox.models import context_limit, load_model_and_tokenizer

# transformers marks a tokenizer without a length limit with a huge model_max_length (1e30).
_NO_TOKENIZER_LIMIT = 10**9


def load_frozen(model_dir: str | Path, device: str | None = None) -> tuple[Any, Any, Architecture]:
    """Model (eval mode, no gradients), tokenizer (pad token set) and its architecture preset."""
    model, tokenizer = load_model_and_tokenizer(model_dir, device)
    model.requires_grad_(False)
    return model, tokenizer, resolve_architecture(model)


def token_limit(model: Any, tokenizer: Any) -> int | None:
    """The most tokens a text may have for this model: the tokenizer's ``model_max_length``
    when it sets one, capped by the model's position table; None when neither bounds it (ALiBi
    models such as BLOOM with a tokenizer that sets no limit).

    XG (arXiv:2406.16235) tokenized probe texts with ``truncation=True`` and no ``max_length``
    (``xg/probe.py``), which cuts at the tokenizer's ``model_max_length``; the cap by the
    positions changes nothing where that limit is right and avoids an indexing error where a
    tokenizer claims more than the model has.
    """
    limits = [context_limit(model, 0)]
    declared = getattr(tokenizer, "model_max_length", None)
    if isinstance(declared, int) and 0 < declared < _NO_TOKENIZER_LIMIT:
        limits.append(declared)
    known = [limit for limit in limits if limit is not None]
    return min(known) if known else None


def encode_texts(tokenizer: Any, texts: Sequence[str], max_length: int | None) -> list[list[int]]:
    """Token ids per text, cut to the first ``max_length`` tokens (special tokens included);
    ``None``: not cut."""
    out: list[list[int]] = []
    for start in range(0, len(texts), 1024):  # fast tokenizers encode a list in parallel
        encoded = tokenizer(list(texts[start : start + 1024]))["input_ids"]
        out.extend(list(ids)[:max_length] for ids in encoded)
    return out


def right_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask


def _masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the positions where ``mask`` is 1: ``[batch, seq, d]`` → ``[batch, d]``."""
    weights = mask.to(states.device, torch.float32).unsqueeze(-1)
    return (states.float() * weights).sum(dim=1) / weights.sum(dim=1)


def mean_pooled_states(
    model: Any,
    arch: Architecture,
    encoded: Sequence[Sequence[int]],
    *,
    layers: str = "final",
    batch_size: int = 32,
    pad_id: int = 0,
    desc: str = "encode",
    progress: bool = True,
) -> torch.Tensor:
    """Mean-pooled hidden states (float32, CPU), rows in the order of ``encoded``.

    ``layers="final"``: the output of the final norm (what the LM head reads), ``[n, d]``.
    ``layers="all"``: every entry of ``output_hidden_states`` (embeddings, then each block; in
    transformers the last entry is after the final norm), ``[n_layers + 1, n, d]``.
    Every row must hold at least one token.
    """
    if any(len(r) == 0 for r in encoded):
        raise ValueError("a text encodes to no tokens")
    device = next(model.parameters()).device
    # Longest first: similar lengths share a batch, and memory trouble shows on batch one.
    order = sorted(range(len(encoded)), key=lambda i: (-len(encoded[i]), i))
    pooled: list[torch.Tensor | None] = [None] * len(encoded)
    captured: dict[str, torch.Tensor] = {}
    handle = None
    if layers == "final":
        handle = arch.final_norm.register_forward_hook(
            lambda _m, _i, out: captured.__setitem__(
                "out", out[0] if isinstance(out, tuple) else out
            )
        )
    elif layers != "all":
        raise ValueError(f"layers must be 'final' or 'all', got {layers!r}")
    bar = tqdm(total=len(encoded), desc=desc, unit="text", disable=None if progress else True)
    try:
        with torch.no_grad(), bar:
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                ids, mask = right_pad([encoded[i] for i in chunk], pad_id)
                out = model(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    output_hidden_states=layers == "all",
                    use_cache=False,
                )
                if layers == "final":
                    vectors = _masked_mean(captured.pop("out"), mask).cpu()
                else:
                    vectors = torch.stack(
                        [_masked_mean(h, mask).cpu() for h in out.hidden_states], dim=1
                    )
                for j, i in enumerate(chunk):
                    pooled[i] = vectors[j]
                bar.update(len(chunk))
    finally:
        if handle is not None:
            handle.remove()
    stacked = torch.stack([p for p in pooled if p is not None])
    return stacked if layers == "final" else stacked.transpose(0, 1).contiguous()
