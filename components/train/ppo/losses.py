"""PPO's clipped objectives (Schulman et al., 2017), averaged over response tokens.

Both are *pessimistic*: each takes the worse (larger) of the unclipped and the clipped loss, so
a step gains nothing from moving the policy ratio beyond ``1 ± cliprange``, or the value beyond
``old ± cliprange_value``.
"""

from __future__ import annotations

import torch

from xdetox.components.train.ppo.gae import masked_mean


def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    cliprange: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, clip_fraction, approx_kl)``.

    ``loss = mean(max(-A * r, -A * clip(r, 1 - c, 1 + c)))`` with ``r = exp(logp - old_logp)``;
    the clip fraction is the share of tokens where the clipped term was the larger;
    ``approx_kl = mean((logp - old_logp)^2) / 2`` (how far this update has moved the policy).
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clip_fraction = masked_mean((clipped > unclipped).float(), mask)
    approx_kl = 0.5 * masked_mean(log_ratio.detach() ** 2, mask)
    return loss, clip_fraction.detach(), approx_kl


def clipped_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    cliprange_value: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, clip_fraction)`` with
    ``loss = 0.5 * mean(max((V - R)^2, (clip(V, V_old - c, V_old + c) - R)^2))``."""
    clipped_values = torch.clamp(values, old_values - cliprange_value, old_values + cliprange_value)
    unclipped_loss = (values - returns) ** 2
    clipped_loss = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped_loss, clipped_loss), mask)
    clip_fraction = masked_mean((clipped_loss > unclipped_loss).float(), mask)
    return loss, clip_fraction.detach()
