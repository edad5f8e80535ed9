"""Online RL hyperparameters (PPO, RLOO, GRPO), the root config's ``rl`` section. Defaults: TRL's
toxicity example's PPO recipe (https://huggingface.co/docs/trl/detoxifying_a_lm). Cross-field
rules live in ``components/train/ppo/ppo_config.py``.

Which algorithm runs (``training.method``), how the weights are adapted (``training.mode``,
``training.lora``, ``training.qlora``) and the seed (``training.seed``) are read from the
``training`` section, so that one recipe key means one thing whatever the method.

``rl`` and ``rl.online`` fields named like fields of TRL's ``RLOOConfig``/``GRPOConfig`` are
passed to them as they are; ``rl.online.trl`` passes any other TRL option
(``xdetox.config.trl_options``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from xdetox.config.base import _Strict
from xdetox.records import TOXICITY

# The TRL example's reward model: RoBERTa on Dynabench hate speech; labels 0 nothate, 1 hate.
DEFAULT_CLASSIFIER = "facebook/roberta-hate-speech-dynabench-r4-target"


class RewardConfig(_Strict):
    """What scores a completion. ``classifier``: raw logit of one label of a HF sequence
    classifier (its own tokenizer, completion text only). ``scorer``: the project's scorer
    (``components/score``), reward ``1 - TOXICITY`` (``one_minus``) or ``-TOXICITY``
    (``negate``)."""

    kind: Literal["classifier", "scorer"] = Field(
        "classifier",
        description="classifier: raw logit of one label of a sequence classifier; scorer: the "
        "configured toxicity scorer (scoring section)",
    )
    classifier: str = Field(DEFAULT_CLASSIFIER, description="local folder or Hugging Face id")
    label_index: int = Field(
        0, ge=0, description="the rewarded label (0 = nothate for the default classifier)"
    )
    batch_size: int = Field(16, gt=0, description="completions per classifier forward pass")
    max_length: int = Field(
        512, gt=0, description="classifier tokens; longer completions are cut"
    )
    attribute: str = Field(TOXICITY, description="scorer: the attribute rewarded against")
    transform: Literal["one_minus", "negate"] = Field(
        "one_minus", description="scorer: reward 1 - score (one_minus) or -score (negate)"
    )
    default_language: str = Field(
        "en", description="scorer: language of prompts whose file has no language field"
    )


class PPOConfig(_Strict):
    """The PPO algorithm's own knobs (the compact trainer in ``ppo_trainer.py``; Schulman et al.
    2017, with Ziegler et al. 2019's adaptive KL)."""

    learning_rate: float = Field(2.94e-5, gt=0.0, description="Adam learning rate")
    batch_size: int = Field(16, gt=0, description="rollouts per PPO step")
    mini_batch_size: int = Field(4, gt=0, description="rollouts per optimizer step")
    ppo_epochs: int = Field(4, gt=0, description="passes over each batch")
    gamma: float = Field(1.0, ge=0.0, le=1.0, description="discount")
    lam: float = Field(0.95, ge=0.0, le=1.0, description="GAE lambda")
    cliprange: float = Field(0.2, gt=0.0, description="policy ratio clip range")
    cliprange_value: float = Field(0.2, gt=0.0, description="value clip range")
    vf_coef: float = Field(0.1, ge=0.0, description="value loss coefficient")
    init_kl_coef: float = Field(0.2, ge=0.0, description="initial KL penalty coefficient")
    adaptive_kl: bool = Field(True, description="adapt the KL coefficient towards target_kl")
    target_kl: float = Field(
        6.0, gt=0.0, description="nats per sequence (sum over response tokens)"
    )
    kl_horizon: int = Field(10000, gt=0, description="horizon of the adaptive KL controller")
    whiten_advantages: bool = Field(True, description="normalise advantages per batch")
    max_grad_norm: float | None = Field(
        None, gt=0.0, description="gradient clipping norm; None: none (as the TRL recipe)"
    )


class OnlineRLConfig(_Strict):
    """TRL ``RLOOTrainer`` / ``GRPOTrainer`` knobs (``trl_online.py``)."""

    learning_rate: float = Field(
        1e-6, gt=0.0, description="learning rate (TRL's default for both trainers)"
    )
    per_device_train_batch_size: int = Field(
        8, gt=0, description="completions per device per step"
    )
    gradient_accumulation_steps: int = Field(1, gt=0, description="steps per optimizer update")
    num_generations: int = Field(4, ge=2, description="completions per prompt (the group)")
    beta: float = Field(0.05, ge=0.0, description="KL coefficient; 0 loads no reference model")
    epsilon: float = Field(0.2, gt=0.0, description="clip range")
    num_iterations: int = Field(1, gt=0, description="updates per generated batch")
    max_grad_norm: float = Field(1.0, gt=0.0, description="gradient clipping norm")
    loss_type: str | None = Field(None, description="GRPO only; None keeps TRL's default")
    # Gradient checkpointing and bf16: training.gradient_checkpointing and training.bf16.
    logging_steps: int = Field(1, gt=0, description="log every N steps")
    trl: dict[str, Any] = Field(
        default_factory=dict,
        description="any other option of TRL's RLOOConfig/GRPOConfig, e.g. {scale_rewards: "
        "batch}; checked against its fields when the trainer is built",
    )


class RLConfig(_Strict):
    """One online RL run (``training.method`` ppo, rloo or grpo picks the algorithm); sampling,
    queries, reward and checkpointing are shared by all three."""

    max_steps: int = Field(
        200, gt=0, description="PPO: rollout batches; RLOO/GRPO: optimizer steps"
    )
    save_steps: int = Field(
        25, gt=0, description="checkpoint every N steps (for resume after preemption)"
    )
    save_total_limit: int = Field(2, gt=0, description="checkpoints kept (newest)")
    prompts: str = Field(
        "toy",
        description="training prompts: JSON lines with a prompt (prepared prompts, or raw "
        "RealToxicityPrompts lines), a local file or gs:// URI, or toy; not the evaluation "
        "prompts",
    )
    # The TRL recipe used 0.3 (pipelines/configs/trl-detox-ppo.yaml).
    prompt_toxicity_above: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="prompts whose toxicity (RealToxicityPrompts prompt.toxicity, or a prepared "
        "file's prompt_toxicity) is not above this are dropped; None keeps every prompt",
    )
    query_min_tokens: int = Field(
        10, gt=0, description="each prompt is cut to its first k tokens, k drawn in [min, max]"
    )
    query_max_tokens: int = Field(15, gt=0, description="see query_min_tokens")
    min_new_tokens: int = Field(
        20, gt=0, description="PPO draws each completion's length in [min, max]"
    )
    max_new_tokens: int = Field(
        29, gt=0, description="longest completion (RLOO/GRPO: max_completion_length)"
    )
    temperature: float = Field(1.0, gt=0.0, description="sampling temperature")
    top_k: int = Field(0, ge=0, description="top-k filtering; 0: none")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling mass")
    reward: RewardConfig = Field(default_factory=RewardConfig)
    ppo: PPOConfig = Field(default_factory=PPOConfig)
    online: OnlineRLConfig = Field(default_factory=OnlineRLConfig)
