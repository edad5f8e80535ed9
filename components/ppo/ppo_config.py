"""Typed parameters of online RL training (PPO, RLOO, GRPO), in the ``_Strict`` style of
``xdetox.config`` so the lead can merge :class:`RLConfig` into ``TrainingConfig``.

Defaults are the TRL detoxification example's PPO recipe (REFERENCE.md §3): classifier reward on
the completion, queries of 10–15 tokens, 20–29 sampled new tokens (top-k 0, top-p 1), lr 2.94e-5,
batch 16, mini-batch 4, adaptive KL (0.2 → target 6, horizon 10000), clip 0.2, value clip 0.2,
vf_coef 0.1, gamma 1, lambda 0.95.

Cross-field rules (min ≤ max, batch divisible by mini-batch, ...) live in :func:`check_rl_config`
rather than in a pydantic model validator, so that the error names the key at fault instead of
the section's root.
"""

from __future__ import annotations

from xdetox.config.rl import (  # the sections live with the rest of the config
    DEFAULT_CLASSIFIER,
    OnlineRLConfig,
    PPOConfig,
    RewardConfig,
    RLConfig,
)
from xdetox.errors import ConfigError

__all__ = [
    "DEFAULT_CLASSIFIER",
    "RESUMABLE_CHANGES",
    "OnlineRLConfig",
    "PPOConfig",
    "RLConfig",
    "RewardConfig",
    "check_rl_config",
]

RESUMABLE_CHANGES = frozenset(
    {"max_steps", "save_steps", "save_total_limit", "reward.classifier", "reward.batch_size"}
)


def check_rl_config(config: RLConfig, prefix: str = "training") -> None:
    """Raise :class:`ConfigError` naming the key for combinations the trainers cannot run."""
    if config.query_min_tokens > config.query_max_tokens:
        raise ConfigError(
            f"{prefix}.query_min_tokens ({config.query_min_tokens}) must not exceed "
            f"{prefix}.query_max_tokens ({config.query_max_tokens})"
        )
    if config.min_new_tokens > config.max_new_tokens:
        raise ConfigError(
            f"{prefix}.min_new_tokens ({config.min_new_tokens}) must not exceed "
            f"{prefix}.max_new_tokens ({config.max_new_tokens})"
        )
    if config.method == "ppo" and config.ppo.batch_size % config.ppo.mini_batch_size:
        raise ConfigError(
            f"{prefix}.ppo.batch_size ({config.ppo.batch_size}) must be a multiple of "
            f"{prefix}.ppo.mini_batch_size ({config.ppo.mini_batch_size})"
        )
    online = config.online
    if config.method in ("rloo", "grpo"):
        per_step = online.per_device_train_batch_size * online.gradient_accumulation_steps
        if per_step % online.num_generations:
            # TRL forms groups of num_generations completions of one prompt inside a batch.
            raise ConfigError(
                f"{prefix}.online.per_device_train_batch_size × gradient_accumulation_steps "
                f"({per_step}) must be a multiple of {prefix}.online.num_generations "
                f"({online.num_generations})"
            )
        if online.loss_type is not None and config.method == "rloo":
            raise ConfigError(f"{prefix}.online.loss_type: only GRPO has loss types")
