"""Online RL hyperparameters (PPO, RLOO, GRPO), the root config's ``rl`` section. Defaults: the
TRL detoxification example's PPO recipe (REFERENCE.md §3). Cross-field rules live in
``components/train/ppo/ppo_config.py``.

Which algorithm runs (``training.method``), how the weights are adapted (``training.mode``,
``training.lora``, ``training.qlora``) and the seed (``training.seed``) are read from the
``training`` section, so that one recipe key means one thing whatever the method.
"""

from __future__ import annotations

from typing import Literal

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

    kind: Literal["classifier", "scorer"] = "classifier"
    classifier: str = DEFAULT_CLASSIFIER  # local folder or Hugging Face id
    label_index: int = Field(0, ge=0)  # 0 = "nothate" for the default classifier
    batch_size: int = Field(16, gt=0)
    max_length: int = Field(512, gt=0)  # classifier tokens; longer completions are cut
    attribute: str = TOXICITY
    transform: Literal["one_minus", "negate"] = "one_minus"
    # Language given to the scorer when the prompt file has no ``language`` field.
    default_language: str = "en"


class PPOConfig(_Strict):
    """The PPO algorithm's own knobs (the compact trainer in ``ppo_trainer.py``)."""

    learning_rate: float = Field(2.94e-5, gt=0.0)
    batch_size: int = Field(16, gt=0)  # rollouts per PPO step
    mini_batch_size: int = Field(4, gt=0)  # rollouts per optimizer step
    ppo_epochs: int = Field(4, gt=0)  # passes over each batch
    gamma: float = Field(1.0, ge=0.0, le=1.0)
    lam: float = Field(0.95, ge=0.0, le=1.0)
    cliprange: float = Field(0.2, gt=0.0)
    cliprange_value: float = Field(0.2, gt=0.0)
    vf_coef: float = Field(0.1, ge=0.0)
    init_kl_coef: float = Field(0.2, ge=0.0)
    adaptive_kl: bool = True
    target_kl: float = Field(6.0, gt=0.0)  # nats per sequence (sum over response tokens)
    kl_horizon: int = Field(10000, gt=0)
    whiten_advantages: bool = True
    max_grad_norm: float | None = Field(None, gt=0.0)  # the TRL recipe did not clip


class OnlineRLConfig(_Strict):
    """TRL ``RLOOTrainer`` / ``GRPOTrainer`` knobs (``trl_online.py``)."""

    learning_rate: float = Field(1e-6, gt=0.0)  # TRL's default for both trainers
    per_device_train_batch_size: int = Field(8, gt=0)  # completions per device per step
    gradient_accumulation_steps: int = Field(1, gt=0)
    num_generations: int = Field(4, ge=2)  # completions per prompt (the group)
    beta: float = Field(0.05, ge=0.0)  # KL coefficient; 0 loads no reference model
    epsilon: float = Field(0.2, gt=0.0)  # clip range
    num_iterations: int = Field(1, gt=0)
    max_grad_norm: float = Field(1.0, gt=0.0)
    loss_type: str | None = None  # GRPO only; None keeps TRL's default
    # Gradient checkpointing and bf16: training.gradient_checkpointing and training.bf16.
    logging_steps: int = Field(1, gt=0)


class RLConfig(_Strict):
    """One online RL run (``training.method`` ppo, rloo or grpo picks the algorithm); sampling,
    queries, reward and checkpointing are shared by all three."""

    max_steps: int = Field(200, gt=0)  # PPO: rollout batches; RLOO/GRPO: optimizer steps
    save_steps: int = Field(25, gt=0)  # checkpoint every N steps (for resume after preemption)
    save_total_limit: int = Field(2, gt=0)  # checkpoints kept (newest)
    # Training prompts of ppo/rloo/grpo: JSON lines with a "prompt" (prepared prompts, or raw
    # RealToxicityPrompts lines), a local file or gs:// URI, or "toy". Not the evaluation prompts.
    prompts: str = "toy"
    # Prompts whose toxicity (RealToxicityPrompts ``prompt.toxicity``, or a prepared file's
    # ``prompt_toxicity`` on the Perspective 0-1 scale) is not above this are dropped; None keeps
    # every prompt. The TRL recipe used 0.3 (pipelines/configs/trl-detox-ppo.yaml).
    prompt_toxicity_above: float | None = Field(None, ge=0.0, le=1.0)
    # Each prompt is cut to its first k tokens, k drawn once per prompt from [min, max].
    query_min_tokens: int = Field(10, gt=0)
    query_max_tokens: int = Field(15, gt=0)
    # PPO draws each completion's length from [min, max]; RLOO/GRPO sample up to max.
    min_new_tokens: int = Field(20, gt=0)
    max_new_tokens: int = Field(29, gt=0)
    temperature: float = Field(1.0, gt=0.0)
    top_k: int = Field(0, ge=0)  # 0: no top-k filtering
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    ppo: PPOConfig = Field(default_factory=PPOConfig)
    online: OnlineRLConfig = Field(default_factory=OnlineRLConfig)
