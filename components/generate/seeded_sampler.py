"""Temperature + nucleus sampling with one random stream per sequence.

``generate(do_sample=True)`` draws every row of a batch from the one global torch generator, so a
sample's text depends on which other rows share its batch and in what order. Here each row owns a
``torch.Generator`` seeded from (seed, prompt_id, sample_index) and draws exactly one uniform
number per decoding step, whatever the other rows do. The token is picked by inverting the
nucleus distribution's CDF at that number, and returned as a one-hot score so that greedy
``generate`` (``do_sample=False``) takes it: batching, padding and batch size then no longer
change what a sample says (up to floating-point differences in the batched forward pass itself).

Doing the warping here also keeps it exactly the protocol's: transformers' own sampling would add
``top_k=50`` unless told otherwise, which neither vLLM nor the papers apply.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor

# The nucleus rarely holds more than a few hundred tokens, but sorting the whole vocabulary at
# every step dominated CPU sampling (Gemma 3's 262k tokens: ~3 s per step for 64 rows on one
# core). The sort starts from the most likely CANDIDATES instead; a row whose nucleus might reach
# past them is sorted in full, so the tokens drawn are the same either way.
CANDIDATES = 2048


def _nucleus(sorted_probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """``sorted_probs`` (descending, float64) with the tokens outside the top-p nucleus zeroed."""
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    outside = mass_before >= top_p
    outside[:, 0] = False
    return sorted_probs.masked_fill(outside, 0.0)


def _full_sort(probs: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    # Stable sort: ties are ordered by token id, so equal probabilities (common with bf16
    # logits) cannot swap places between runs.
    sorted_probs, order = probs.sort(dim=-1, descending=True, stable=True)
    # float64 sums keep the CDF monotone over big vocabularies
    return _nucleus(sorted_probs.double(), top_p), order


def _candidate_sort(
    probs: torch.Tensor, top_p: float, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The full sort's nucleus from the top ``k`` tokens only, and per row whether it is exact.

    A row is exact when its least likely kept token is strictly more likely than the ``k``-th
    candidate: every token outside the candidates is at most that likely, so the kept tokens,
    their order (probability, then token id) and their float64 sums are the full sort's.
    """
    values, ids = probs.topk(k, dim=-1)  # topk orders ties arbitrarily: re-sort by id first
    ids, by_id = ids.sort(dim=-1)
    sorted_probs, order = values.gather(-1, by_id).sort(dim=-1, descending=True, stable=True)
    order = ids.gather(-1, order)
    kept = _nucleus(sorted_probs.double(), top_p)
    n_kept = (kept > 0).sum(dim=-1, keepdim=True).clamp(min=1)
    exact = sorted_probs.gather(-1, n_kept - 1).squeeze(-1) > sorted_probs[:, -1]
    return kept, order, exact


def _invert_cdf(kept: torch.Tensor, order: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    cdf = kept.cumsum(dim=-1)
    targets = uniforms.to(device=cdf.device, dtype=cdf.dtype) * cdf[:, -1]
    # right=True: the first position whose CDF exceeds the target, so zero-mass tokens never win.
    pos = torch.searchsorted(cdf, targets.unsqueeze(-1), right=True)
    # Rounding can put the target at the very top of the CDF: fall back to the last kept token.
    positions = torch.arange(cdf.shape[-1], device=cdf.device).expand_as(cdf)
    last_kept = torch.where(kept > 0, positions, -1).amax(dim=-1, keepdim=True)
    pos = torch.minimum(pos, last_kept)
    return order.gather(-1, pos).squeeze(-1)


def nucleus_sample(
    logits: torch.Tensor,
    uniforms: torch.Tensor,
    temperature: float,
    top_p: float,
    candidates: int = CANDIDATES,
) -> torch.Tensor:
    """Token ids ``[batch]`` drawn from ``softmax(logits / T)`` restricted to the top-p nucleus.

    ``uniforms`` holds one number in [0, 1) per row; the same number and logits always give the
    same token. The nucleus is the smallest set of most likely tokens whose mass reaches
    ``top_p`` (the token that crosses the threshold is kept; at least one token always is).
    Probabilities are normalised over the whole vocabulary; ``candidates`` only bounds the sort
    (see :data:`CANDIDATES`) and never changes the token drawn.
    """
    if temperature <= 0:
        raise ValueError("temperature must be > 0 for sampling (use greedy decoding for 0)")
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p >= 1.0:
        # No nucleus to find: invert the CDF in token-id order and skip the vocabulary sort.
        order = torch.arange(probs.shape[-1], device=probs.device).expand_as(probs)
        return _invert_cdf(probs.double(), order, uniforms)
    if probs.shape[-1] <= candidates:
        return _invert_cdf(*_full_sort(probs, top_p), uniforms)
    kept, order, exact = _candidate_sort(probs, top_p, candidates)
    tokens = _invert_cdf(kept, order, uniforms)
    if not bool(exact.all()):
        rows = (~exact).nonzero().squeeze(-1)
        tokens[rows] = _invert_cdf(*_full_sort(probs[rows], top_p), uniforms[rows])
    return tokens


class SeededSampler(LogitsProcessor):
    """A logits processor that samples each row from its own seeded generator.

    Rows keep their order through greedy ``generate`` (no beams), so row ``i`` always belongs to
    ``seeds[i]``. Rows that already finished still draw, so each stream advances once per step.
    """

    def __init__(self, seeds: list[int], temperature: float, top_p: float):
        if temperature <= 0:
            raise ValueError("SeededSampler needs temperature > 0")
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.temperature = temperature
        self.top_p = top_p

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if scores.shape[0] != len(self.generators):
            raise RuntimeError(
                f"SeededSampler got {scores.shape[0]} rows but holds {len(self.generators)} seeds"
            )
        # CPU generators: the same numbers on every device, so only the model's arithmetic
        # differs between a CPU and a GPU run.
        uniforms = torch.stack(
            [torch.rand((), generator=g, dtype=torch.float64) for g in self.generators]
        )
        tokens = nucleus_sample(scores, uniforms, self.temperature, self.top_p)
        chosen = torch.full_like(scores, float("-inf"))
        chosen.scatter_(-1, tokens.unsqueeze(-1), 0.0)
        return chosen
