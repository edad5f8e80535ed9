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


def nucleus_sample(
    logits: torch.Tensor, uniforms: torch.Tensor, temperature: float, top_p: float
) -> torch.Tensor:
    """Token ids ``[batch]`` drawn from ``softmax(logits / T)`` restricted to the top-p nucleus.

    ``uniforms`` holds one number in [0, 1) per row; the same number and logits always give the
    same token. The nucleus is the smallest set of most likely tokens whose mass reaches
    ``top_p`` (the token that crosses the threshold is kept; at least one token always is).
    """
    if temperature <= 0:
        raise ValueError("temperature must be > 0 for sampling (use greedy decoding for 0)")
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p >= 1.0:
        # No nucleus to find: invert the CDF in token-id order and skip the vocabulary sort,
        # which is most of the sampling cost on CPU.
        sorted_probs = probs.double()
        order = torch.arange(probs.shape[-1], device=probs.device).expand_as(probs)
    else:
        # Stable sort: ties are ordered by token id, so equal probabilities (common with bf16
        # logits) cannot swap places between runs.
        sorted_probs, order = probs.sort(dim=-1, descending=True, stable=True)
        sorted_probs = sorted_probs.double()  # float64 sums keep the CDF monotone over big vocabs
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
        outside = mass_before >= top_p
        outside[:, 0] = False
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
    cdf = sorted_probs.cumsum(dim=-1)
    targets = uniforms.to(device=cdf.device, dtype=cdf.dtype) * cdf[:, -1]
    # right=True: the first position whose CDF exceeds the target, so zero-mass tokens never win.
    pos = torch.searchsorted(cdf, targets.unsqueeze(-1), right=True)
    # Rounding can put the target at the very top of the CDF: fall back to the last kept token.
    positions = torch.arange(cdf.shape[-1], device=cdf.device).expand_as(cdf)
    last_kept = torch.where(sorted_probs > 0, positions, -1).amax(dim=-1, keepdim=True)
    pos = torch.minimum(pos, last_kept)
    return order.gather(-1, pos).squeeze(-1)


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
