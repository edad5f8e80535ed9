"""Rollouts: sample completions for a batch of queries, then score them token by token.

Layout of a batch (``[batch, Q + R]``): each query left-padded to the widest query ``Q``, its
response right-padded to the longest response ``R``. The response tokens of every row then sit
in the same columns ``Q .. Q+R-1``, and the logits predicting them in ``Q-1 .. Q+R-2``, so the
per-token log-probabilities, values and masks are plain ``[batch, R]`` slices. Position ids are
counted from each row's first real token, as ``generate`` does with left padding, so a forward
pass sees exactly the positions the sample was drawn at.

Each row's number of new tokens is drawn from [min, max] (TRL-detox: 20–29). One ``generate``
call samples up to the largest draw and every row is cut to its own: sampling is autoregressive,
so the first k tokens of a longer sample are distributed as a k-token sample. A response also
ends at its first EOS (kept: it is the model's decision to stop).
"""

from __future__ import annotations

import inspect
import random
from dataclasses import dataclass

import torch
from transformers import GenerationConfig
from trl.trainer.utils import entropy_from_logits, selective_log_softmax

from xdetox.components.train.ppo.value_head import ValueHead


@dataclass
class Rollout:
    """A sampled batch. Tensors live on the policy's device."""

    input_ids: torch.Tensor  # [B, Q+R] left-padded queries + right-padded responses
    attention_mask: torch.Tensor  # [B, Q+R]
    query_width: int  # Q
    response_mask: torch.Tensor  # [B, R] 1.0 for real response tokens
    responses: list[list[int]]  # each row's response tokens (EOS included when sampled)


def sample_lengths(rng: random.Random, n: int, low: int, high: int) -> list[int]:
    """``n`` new-token counts, uniform in [low, high]."""
    return [rng.randint(low, high) for _ in range(n)]


def _accepts_position_ids(model) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "position_ids" in inspect.signature(base.forward).parameters


def _position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


@torch.no_grad()
def generate_rollout(
    model,
    query_ids: list[list[int]],
    new_tokens: list[int],
    *,
    pad_token_id: int,
    eos_token_id: int | None,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
) -> Rollout:
    """Sample one response per query, ``new_tokens[i]`` tokens at most for row ``i``."""
    device = next(model.parameters()).device
    width = max(len(q) for q in query_ids)
    queries = torch.full((len(query_ids), width), pad_token_id, dtype=torch.long)
    query_mask = torch.zeros_like(queries)
    for row, ids in enumerate(query_ids):
        queries[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        query_mask[row, width - len(ids) :] = 1
    queries, query_mask = queries.to(device), query_mask.to(device)
    generation = GenerationConfig(
        do_sample=True,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        max_new_tokens=max(new_tokens),
        pad_token_id=pad_token_id,
        eos_token_id=eos_token_id,
    )
    was_training = model.training
    model.eval()
    output = model.generate(
        input_ids=queries, attention_mask=query_mask, generation_config=generation
    )
    model.train(was_training)
    sampled = output[:, width:].tolist()

    responses: list[list[int]] = []
    for row, limit in enumerate(new_tokens):
        tokens = sampled[row][:limit]
        if eos_token_id is not None and eos_token_id in tokens:
            tokens = tokens[: tokens.index(eos_token_id) + 1]
        responses.append(tokens)
    length = max(len(r) for r in responses)
    response_ids = torch.full((len(responses), length), pad_token_id, dtype=torch.long)
    response_mask = torch.zeros((len(responses), length))
    for row, tokens in enumerate(responses):
        response_ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        response_mask[row, : len(tokens)] = 1.0
    response_mask = response_mask.to(device)
    return Rollout(
        input_ids=torch.cat([queries, response_ids.to(device)], dim=1),
        attention_mask=torch.cat([query_mask, response_mask.long()], dim=1),
        query_width=width,
        response_mask=response_mask,
        responses=responses,
    )


def forward_response(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    query_width: int,
    *,
    value_head: ValueHead | None = None,
    temperature: float = 1.0,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Log-probabilities of the response tokens ``[B, R]`` under ``model`` (at the sampling
    temperature), the values before each of them (when ``value_head``) and the per-token entropy
    of the sampling distribution (when ``with_entropy``; no gradient)."""
    kwargs = {}
    if _accepts_position_ids(model):
        kwargs["position_ids"] = _position_ids(attention_mask)
    output = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        output_hidden_states=value_head is not None,
        use_cache=False,
        **kwargs,
    )
    logits = output.logits[:, query_width - 1 : -1].float()
    if temperature != 1.0:
        logits = logits / temperature
    logprobs = selective_log_softmax(logits, input_ids[:, query_width:])
    values = None
    if value_head is not None:
        values = value_head(output.hidden_states[-1][:, query_width - 1 : -1])
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = entropy_from_logits(logits.detach())
    return logprobs, values, entropy
