"""Training hyperparameters: the method (DPO, SFT→DPO, PPO, RLOO, GRPO), how the weights are
adapted (LoRA, 4-bit QLoRA, full), and DPO's and SFT's own knobs. Kept apart from infrastructure.

``method``, ``mode``, ``lora``, ``qlora`` and ``seed`` live here only: the online-RL section
(``xdetox.config.rl``) holds what is particular to PPO/RLOO/GRPO and reads these from here.

The DPO and SFT sections mirror TRL's ``DPOConfig`` and ``SFTConfig``: a field with the name of
a TRL field is passed to it as it is, and ``trl`` passes any other TRL option
(``xdetox.config.trl_options``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from xdetox.config.base import _Strict

METHODS = ("dpo", "sft_dpo", "sft", "ppo", "rloo", "grpo")
ONLINE_METHODS = ("ppo", "rloo", "grpo")
Method = Literal["dpo", "sft_dpo", "sft", "ppo", "rloo", "grpo"]
# A control arm trains on the same pairs with the preference reversed (see TrainingConfig.control)
CONTROLS = ("none", "swapped", "shuffled")


def _trl_field(trl_class: str, example: str) -> Any:
    """The free ``trl`` mapping of a section that mirrors a TRL config class."""
    return Field(
        default_factory=dict,
        description=f"any other option of TRL's {trl_class}, e.g. {example}; checked against "
        "its fields when the trainer is built",
    )


class LoraConfig(_Strict):
    """LoRA adapters (Hu et al., 2021) through PEFT."""

    r: int = Field(64, gt=0, description="adapter rank")
    alpha: int = Field(16, gt=0, description="scaling numerator (lora_alpha)")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="dropout on the adapter input")
    target_modules: list[str] | Literal["auto"] = Field(
        "auto",
        description="module names adapted; auto: the preset for the model's architecture "
        "(components/train/dpo/lora_targets.py)",
    )


class QLoraConfig(_Strict):
    """bitsandbytes 4-bit quantisation of the frozen base (``mode: qlora``; CUDA only).

    Defaults are QLoRA's (Dettmers et al., 2023): NF4 weights, double quantisation of the
    quantisation constants, bf16 compute.
    """

    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type")
    double_quant: bool = Field(True, description="also quantise the quantisation constants")
    compute_dtype: Literal["bfloat16", "float16", "float32"] = Field(
        "bfloat16", description="dtype of the matrix products"
    )


class SFTConfig(_Strict):
    """The supervised stage of ``method: sft_dpo`` (TRL ``SFTTrainer``).

    The model card gives hyperparameters for its DPO stage only; these defaults are ours:
    QLoRA's usual learning rate (2e-4), one epoch, loss on the completion only.
    """

    data: str | None = Field(
        None,
        description="JSON lines with prompt/completion, text, or messages; None: the chosen "
        "side of the preference pairs (SFT on the non-toxic answers)",
    )
    learning_rate: float = Field(2e-4, gt=0.0, description="peak learning rate")
    lr_scheduler_type: str = Field("linear", description="transformers scheduler name")
    warmup_steps: int = Field(0, ge=0, description="linear warm-up steps")
    optim: str = Field("adamw_torch", description="transformers optimizer name")
    max_grad_norm: float = Field(1.0, gt=0.0, description="gradient clipping norm")
    per_device_train_batch_size: int = Field(
        4, gt=0, description="examples per device per step (also the eval batch size)"
    )
    gradient_accumulation_steps: int = Field(1, gt=0, description="steps per optimizer update")
    num_train_epochs: float = Field(1.0, gt=0.0, description="passes over the data")
    max_steps: int = Field(-1, description="optimizer steps; -1: num_train_epochs decides")
    max_length: int = Field(1024, gt=0, description="tokens; longer examples are cut at the end")
    completion_only_loss: bool = Field(
        True, description="prompt/completion data: loss on the completion tokens only"
    )
    eval_steps: int = Field(50, gt=0, description="evaluate every N steps (with eval data)")
    save_steps: int = Field(50, gt=0, description="checkpoint every N steps")
    logging_steps: int = Field(5, gt=0, description="log every N steps")
    trl: dict[str, Any] = _trl_field("SFTConfig", "{dataset_num_proc: 4}")


class TrainingConfig(_Strict):
    """Preference tuning. Defaults are XG's DPO recipe (Li, Yong & Bach 2024, "Preference Tuning
    For Toxicity Mitigation Generalizes Across Languages")."""

    method: Method = Field(
        "dpo",
        description="dpo: DPO on the preference pairs; sft_dpo: SFT first, then DPO from the "
        "SFT model (the model card's recipe); sft: SFT alone on the chosen answers (or "
        "sft.data); ppo | rloo | grpo: online RL on prompts (hyperparameters: rl)",
    )
    # Several methods in one run answer "does DPO beat PPO on the same data and budget?" without
    # a spreadsheet: every model generates on the same prompts with the same seeds.
    methods: list[Method] | None = Field(
        None,
        description="train each of these methods from the same base and data in one run and "
        "evaluate them side by side, e.g. [dpo, ppo]; None: just method",
    )
    # Why a control: DPO can cut toxicity by moving the model anywhere away from its prompts
    # (drift). The same training with the preference reversed moves the model as far; when it
    # also cuts toxicity, the tuned model's drop is not evidence of detoxification.
    control: Literal["none", "swapped", "shuffled"] = Field(
        "none",
        description="a control arm, labelled control: the first pair-trained method trained "
        "again exactly alike on the same pairs with chosen and rejected swapped (swapped) or "
        "swapped at random per pair with probability 1/2, seeded by seed (shuffled); none: no "
        "control",
    )
    # Dose-response: a cross-lingual drop that follows English at low drift along training is
    # evidence of transfer; one that appears only at the end, with large drift, is not.
    dose_response: list[float] = Field(
        default_factory=list,
        description="fractions of training (0 < f < 1) after which the first method's model is "
        "saved and evaluated on every language beside the final one, labelled <method>_at<pct>, "
        "e.g. [0.25, 0.5, 0.75]; DPO and SFT stages only (a run that stops early before a "
        "fraction fails at that snapshot's task, naming it); []: none",
    )
    beta: float = Field(0.1, gt=0.0, description="DPO's KL coefficient")
    learning_rate: float = Field(1e-5, gt=0.0, description="peak learning rate")
    lr_scheduler_type: str = Field(
        "constant_with_warmup", description="transformers scheduler name"
    )
    warmup_steps: int = Field(150, ge=0, description="linear warm-up steps")
    optim: str = Field("rmsprop", description="transformers optimizer name")
    max_grad_norm: float = Field(10.0, gt=0.0, description="gradient clipping norm")
    per_device_train_batch_size: int = Field(
        4, gt=0, description="pairs per device per step (also the eval batch size)"
    )
    gradient_accumulation_steps: int = Field(1, gt=0, description="steps per optimizer update")
    num_train_epochs: float = Field(5.0, gt=0.0, description="passes over the pairs")
    max_steps: int = Field(-1, description="optimizer steps; -1: num_train_epochs decides")
    max_prompt_length: int = Field(
        64,
        gt=0,
        description="prompt tokens kept, cut from the left (tokenization trl-0.8.6: only when "
        "prompt + longer answer exceed max_length)",
    )
    max_length: int = Field(256, gt=0, description="prompt + completion tokens")
    # xdetox's own tokenization is the default: with TRL 1.16 it needs no code of ours past the
    # prompt cut, and it adds no BOS the model would not see at generation time. trl-0.8.6 is
    # there to train on exactly the token sequences XG's pinned TRL built.
    tokenization: Literal["xdetox", "trl-0.8.6"] = Field(
        "xdetox",
        description="how pairs become token ids: xdetox (every prompt cut to max_prompt_length "
        "tokens keeping its end, then TRL 1.16 tokenizes: the tokenizer's own special tokens, "
        "EOS after each answer) or trl-0.8.6 (as TRL 0.8.6's DPOTrainer.tokenize_row, the XG "
        "reference's pin: BOS before the prompt, EOS after each answer, the prompt cut to its "
        "last max_prompt_length tokens only when prompt + longer answer exceed max_length, "
        "answers then cut to max_length - max_prompt_length)",
    )
    eval_steps: int = Field(25, gt=0, description="evaluate every N steps (with eval pairs)")
    save_steps: int = Field(
        25, gt=0, description="checkpoint every N steps (a multiple of eval_steps)"
    )
    logging_steps: int = Field(5, gt=0, description="log every N steps")
    early_stopping_patience: int = Field(
        10, ge=0, description="evaluations without improvement before stopping; 0: off"
    )
    gradient_checkpointing: bool = Field(
        True, description="recompute activations in the backward pass (less memory)"
    )
    # One forward pass fewer per step; see benchmarks/README.md.
    precompute_ref_log_probs: bool = Field(
        False,
        description="reference log-probabilities computed once before training instead of at "
        "every step",
    )
    # Weights are loaded in fp32 in every mode but qlora. XG did the same (its script notes that
    # fp16 *weights* gave NaN rewards) and trained with fp16 autocast (TrainingArguments
    # fp16=True; bf16=False because its V100s had none): training.fp16 reproduces that.
    bf16: bool | None = Field(
        None,
        description="bf16 mixed precision on fp32 weights (GPU only); None: on for qlora (its "
        "compute dtype; in DPO not when fp16 is set), off otherwise",
    )
    # A GPU setting like bf16: on a machine without CUDA it is switched off with a warning, so a
    # recipe that sets it (the XG ones) still runs a CPU smoke test; such a run is no
    # reproduction anyway.
    fp16: bool = Field(
        False,
        description="fp16 mixed precision on fp32 weights in DPO training, as XG trained (GPU "
        "only: off with a warning on a CPU); not together with bf16",
    )
    seed: int = Field(0, description="seed of training and data order")
    mode: Literal["lora", "qlora", "full"] = Field(
        "lora",
        description="lora: adapters on a frozen base; qlora: adapters on a 4-bit base "
        "(bitsandbytes, CUDA); full: every weight (XG's mGPT and BLOOM-1.7B runs)",
    )
    lora: LoraConfig = Field(default_factory=LoraConfig)
    qlora: QLoraConfig = Field(default_factory=QLoraConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    trl: dict[str, Any] = _trl_field("DPOConfig", "{label_smoothing: 0.1}")

    @model_validator(mode="after")
    def _check_methods(self) -> TrainingConfig:
        methods = self.planned_methods()
        repeated = sorted({m for m in methods if methods.count(m) > 1})
        if repeated:
            raise ValueError(f"methods: {', '.join(repeated)} listed twice")
        fractions = self.dose_response
        if any(not 0.0 < f < 1.0 for f in fractions) or len(set(fractions)) != len(fractions):
            raise ValueError("dose_response: distinct fractions of training between 0 and 1")
        if len({round(100 * f) for f in fractions}) != len(fractions):
            raise ValueError("dose_response: fractions must differ by at least 1%")
        if fractions and methods[0] in ONLINE_METHODS:
            raise ValueError(
                f"dose_response: {methods[0]} is trained by an online RL loop that saves no "
                "snapshots; list a DPO or SFT method first"
            )
        if self.control != "none" and all(m in ONLINE_METHODS for m in methods):
            raise ValueError(
                f"control: {self.control} reverses preference pairs, but "
                f"{', '.join(methods)} train on a reward, not pairs"
            )
        return self

    def planned_methods(self) -> list[str]:
        """The methods this run trains, in order: ``methods``, or ``[method]``."""
        return list(self.methods) if self.methods else [self.method]
