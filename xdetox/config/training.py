"""Training hyperparameters: the method (DPO, SFT→DPO, PPO, RLOO, GRPO), how the weights are
adapted (LoRA, 4-bit QLoRA, full), and DPO's and SFT's own knobs. Kept apart from infrastructure.

``method``, ``mode``, ``lora``, ``qlora`` and ``seed`` live here only: the online-RL section
(``xdetox.config.rl``) holds what is particular to PPO/RLOO/GRPO and reads these from here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from xdetox.config.base import _Strict

METHODS = ("dpo", "sft_dpo", "ppo", "rloo", "grpo")
ONLINE_METHODS = ("ppo", "rloo", "grpo")


class LoraConfig(_Strict):
    r: int = Field(64, gt=0)
    alpha: int = Field(16, gt=0)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    # "auto" picks the preset for the model's architecture (components/train/dpo/lora_targets.py).
    target_modules: list[str] | Literal["auto"] = "auto"


class QLoraConfig(_Strict):
    """bitsandbytes 4-bit quantisation of the frozen base (``mode: qlora``; CUDA only).

    Defaults are QLoRA's (Dettmers et al., 2023): NF4 weights, double quantisation of the
    quantisation constants, bf16 compute.
    """

    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True
    compute_dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"


class SFTConfig(_Strict):
    """The supervised stage of ``method: sft_dpo`` (TRL ``SFTTrainer``).

    The model card gives hyperparameters for its DPO stage only; these defaults are ours:
    QLoRA's usual learning rate (2e-4), one epoch, loss on the completion only.
    """

    # JSON lines with prompt/completion, text, or messages; None (default): the chosen side of
    # the preference pairs (prompt + chosen continuation), i.e. SFT on the non-toxic answers.
    data: str | None = None
    learning_rate: float = Field(2e-4, gt=0.0)
    lr_scheduler_type: str = "linear"
    warmup_steps: int = Field(0, ge=0)
    optim: str = "adamw_torch"
    max_grad_norm: float = Field(1.0, gt=0.0)
    per_device_train_batch_size: int = Field(4, gt=0)
    gradient_accumulation_steps: int = Field(1, gt=0)
    num_train_epochs: float = Field(1.0, gt=0.0)
    max_steps: int = -1
    max_length: int = Field(1024, gt=0)  # tokens; longer examples are cut at the end
    # Prompt/completion data: loss on completion tokens only (TRL's default for that format).
    completion_only_loss: bool = True
    eval_steps: int = Field(50, gt=0)
    save_steps: int = Field(50, gt=0)
    logging_steps: int = Field(5, gt=0)


class TrainingConfig(_Strict):
    """Preference tuning. Defaults are the XG paper's DPO recipe (REFERENCE.md §3)."""

    # dpo: DPO on the preference pairs; sft_dpo: SFT first, then DPO from the SFT model (the
    # model card's recipe); ppo | rloo | grpo: online RL on prompts (hyperparameters: ``rl``).
    method: Literal["dpo", "sft_dpo", "ppo", "rloo", "grpo"] = "dpo"
    beta: float = Field(0.1, gt=0.0)
    learning_rate: float = Field(1e-5, gt=0.0)
    lr_scheduler_type: str = "constant_with_warmup"
    warmup_steps: int = Field(150, ge=0)
    optim: str = "rmsprop"
    max_grad_norm: float = Field(10.0, gt=0.0)
    per_device_train_batch_size: int = Field(4, gt=0)
    gradient_accumulation_steps: int = Field(1, gt=0)
    num_train_epochs: float = Field(5.0, gt=0.0)
    max_steps: int = -1
    max_prompt_length: int = Field(64, gt=0)
    max_length: int = Field(256, gt=0)
    eval_steps: int = Field(25, gt=0)
    save_steps: int = Field(25, gt=0)
    logging_steps: int = Field(5, gt=0)
    early_stopping_patience: int = Field(10, ge=0)  # 0 turns early stopping off
    gradient_checkpointing: bool = True
    # Reference log-probabilities computed once before training instead of at every step
    # (one forward pass fewer per step; see benchmarks/README.md).
    precompute_ref_log_probs: bool = False
    # bf16 mixed precision (GPU only). None: on for qlora (its compute dtype), off otherwise:
    # fp32 as in the XG recipe (fp16 gave NaN rewards).
    bf16: bool | None = None
    seed: int = 0
    # lora: adapters on a frozen base; qlora: adapters on a 4-bit base (bitsandbytes, CUDA);
    # full: every weight (XG's mGPT and BLOOM-1.7B runs).
    mode: Literal["lora", "qlora", "full"] = "lora"
    lora: LoraConfig = Field(default_factory=LoraConfig)
    qlora: QLoraConfig = Field(default_factory=QLoraConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
