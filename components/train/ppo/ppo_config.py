"""Typed parameters of online RL training (PPO, RLOO, GRPO): the root config's ``rl`` section
(``xdetox.config.rl``), plus the cross-field checks. The algorithm, the adaptation mode (LoRA,
QLoRA, full), the LoRA shape and the seed come from the ``training`` section.

Defaults are the PPO recipe of TRL's detoxification example ("Detoxifying a Language Model using
PPO", TRL docs, huggingface.co/docs/trl/detoxifying_a_lm): classifier reward on the completion,
queries of 10–15 tokens, 20–29 sampled new tokens (top-k 0, top-p 1), lr 2.94e-5, batch 16,
mini-batch 4, adaptive KL (0.2 → target 6, horizon 10000), clip 0.2, value clip 0.2, vf_coef 0.1,
gamma 1, lambda 0.95.

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
from xdetox.config.training import ONLINE_METHODS
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

# Keys (dotted, as in the recipe) that may change between a run and its resumption without
# invalidating the checkpoint: run length and bookkeeping, and where the reward classifier is
# mounted (a retried pod may see its input at another path) or how many texts it scores at once.
RESUMABLE_CHANGES = frozenset(
    {
        "rl.max_steps",
        "rl.save_steps",
        "rl.save_total_limit",
        "rl.reward.classifier",
        "rl.reward.batch_size",
        # Where the prompts are read from may differ on a retry; their content may not (the
        # prompts' digest is compared instead).
        "rl.prompts",
    }
)


def check_rl_config(config: RLConfig, method: str = "ppo", prefix: str = "rl") -> None:
    """Raise :class:`ConfigError` naming the key for combinations the trainers cannot run.

    ``method`` is ``training.method`` (ppo, rloo or grpo)."""
    if method not in ONLINE_METHODS:
        raise ConfigError(
            f"training.method: online RL runs one of {', '.join(ONLINE_METHODS)}, not {method!r}"
        )
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
    if method == "ppo" and config.ppo.batch_size % config.ppo.mini_batch_size:
        raise ConfigError(
            f"{prefix}.ppo.batch_size ({config.ppo.batch_size}) must be a multiple of "
            f"{prefix}.ppo.mini_batch_size ({config.ppo.mini_batch_size})"
        )
    online = config.online
    if method in ("rloo", "grpo"):
        per_step = online.per_device_train_batch_size * online.gradient_accumulation_steps
        if per_step % online.num_generations:
            # TRL forms groups of num_generations completions of one prompt inside a batch.
            raise ConfigError(
                f"{prefix}.online.per_device_train_batch_size × gradient_accumulation_steps "
                f"({per_step}) must be a multiple of {prefix}.online.num_generations "
                f"({online.num_generations})"
            )
        if online.loss_type is not None and method == "rloo":
            raise ConfigError(f"{prefix}.online.loss_type: only GRPO has loss types")
