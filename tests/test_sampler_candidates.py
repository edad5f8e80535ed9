"""Nucleus sampling from the top candidates gives the very tokens of the full vocabulary sort.

The full-vocabulary sort dominated CPU sampling for Gemma 3 (262k tokens); restricting it to
the most likely tokens is exact when the nucleus stays inside them (top-p: Holtzman et al. 2020,
"The Curious Case of Neural Text Degeneration", arXiv:1904.09751).
"""

from __future__ import annotations

import pytest
import torch

from xdetox.components.generate.seeded_sampler import nucleus_sample


def _full(logits: torch.Tensor, uniforms: torch.Tensor, temperature: float, top_p: float):
    # candidates ≥ the vocabulary: the plain full sort
    return nucleus_sample(logits, uniforms, temperature, top_p, candidates=logits.shape[-1])


@pytest.mark.parametrize("scale", [0.5, 2.0, 6.0])  # flat (falls back) to peaked (fast path)
@pytest.mark.parametrize("top_p", [0.5, 0.8, 0.95])
def test_same_tokens_as_the_full_sort(scale, top_p):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 3000, generator=gen) * scale
    uniforms = torch.rand(32, generator=gen, dtype=torch.float64)
    fast = nucleus_sample(logits, uniforms, 0.9, top_p, candidates=64)
    assert torch.equal(fast, _full(logits, uniforms, 0.9, top_p))


def test_ties_keep_token_id_order():
    """bf16 logits repeat values: ties at the candidates' edge must not change the draw."""
    gen = torch.Generator().manual_seed(1)
    logits = (torch.randn(64, 2000, generator=gen) * 4).bfloat16().float()
    logits[:8, :300] = 5.0  # a plateau wider than the candidates: those rows fall back
    grid = (torch.arange(64, dtype=torch.float64) + 0.5) / 64
    for k in (16, 50, 256):
        assert torch.equal(
            nucleus_sample(logits, grid, 1.0, 0.9, candidates=k), _full(logits, grid, 1.0, 0.9)
        )


def test_probabilities_are_normalised_over_the_whole_vocabulary():
    """One token of mass 0.6 and many tiny ones: at top-p 0.5 only the big one is kept."""
    logits = torch.full((1, 5000), -2.0)
    logits[0, 1234] = torch.log(torch.tensor(0.6 * 4999 * torch.e**-2 / 0.4))
    assert nucleus_sample(logits, torch.tensor([0.99]), 1.0, 0.5, candidates=8).item() == 1234
