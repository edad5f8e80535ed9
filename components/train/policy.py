"""Loading the model to train, the way ``training.mode`` says: LoRA, 4-bit QLoRA or full.

* ``lora`` / ``full``: fp32 weights (XG's script notes that fp16 *weights* gave NaN rewards;
  it trained fp32 weights with fp16 autocast, ``training.fp16``); with ``bf16`` or ``fp16`` the
  trainer autocasts, the weights stay fp32.
* ``qlora``: the frozen base is quantised to 4 bits by bitsandbytes while it loads (NF4, double
  quantisation, bf16 compute: :class:`xdetox.config.training.QLoraConfig`), on the GPU of this
  process (``device_map={"": local_process_index}``, one copy per process under ``accelerate
  launch``), then ``peft.prepare_model_for_kbit_training`` casts the few unquantised weights
  (norms, embeddings) to fp32 and enables input gradients for gradient checkpointing. LoRA
  adapters are added on top by the trainers (a ``peft_config``, as for ``lora``). bitsandbytes'
  4-bit kernels need CUDA: on a machine without one :func:`check_mode_supported` raises a
  :class:`ConfigError` before anything is loaded.

The adapter of a QLoRA run is an ordinary LoRA adapter (``adapter_config.json`` has no trace of
the quantisation): ``components/merge/merge_lora.py`` merges it into the full-precision base.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from xdetox.components.train.dpo.lora_targets import resolve_lora_targets, uses_conv1d
from xdetox.config import TrainingConfig
from xdetox.config.training import QLoraConfig
from xdetox.errors import ConfigError, DataError
from xdetox.models import load_tokenizer as load_model_tokenizer

QLORA_NEEDS_CUDA = "training.mode=qlora needs a CUDA GPU (bitsandbytes 4-bit)"


def check_mode_supported(config: TrainingConfig) -> None:
    """Raise :class:`ConfigError` when ``config.mode`` cannot run on this machine."""
    if config.mode != "qlora":
        return
    if not torch.cuda.is_available():
        raise ConfigError(QLORA_NEEDS_CUDA)
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(
            "training.mode=qlora needs the bitsandbytes package (pip install bitsandbytes; "
            "the xdetox-train image has it)"
        )


def uses_bf16(config: TrainingConfig) -> bool:
    """bf16 mixed precision: as set, else on for QLoRA (its compute dtype); never on CPU."""
    wanted = config.bf16 if config.bf16 is not None else config.mode == "qlora"
    return bool(wanted) and torch.cuda.is_available()


def quantization_config(qlora: QLoraConfig):
    """The ``BitsAndBytesConfig`` of a QLoRA run."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=qlora.quant_type,
        bnb_4bit_use_double_quant=qlora.double_quant,
        bnb_4bit_compute_dtype=getattr(torch, qlora.compute_dtype),
    )


def load_tokenizer(model_dir: str | Path):
    """The tokenizer of ``model_dir``; pad defaults to EOS (TRL pads with it and ends answers)."""
    tokenizer = load_model_tokenizer(model_dir)
    if tokenizer.eos_token is None:
        # TRL ends every answer with EOS; without one the model never learns where answers stop.
        raise DataError("the tokenizer has no eos_token", model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _load_quantized(model_dir: str | Path, config: TrainingConfig):
    from accelerate import PartialState
    from peft import prepare_model_for_kbit_training

    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir),
        quantization_config=quantization_config(config.qlora),
        dtype=getattr(torch, config.qlora.compute_dtype),
        device_map={"": PartialState().local_process_index},
    )
    return prepare_model_for_kbit_training(
        model,
        use_gradient_checkpointing=config.gradient_checkpointing,
        # Reentrant: the variant that works with PEFT under DeepSpeed (train_configs docs).
        gradient_checkpointing_kwargs={"use_reentrant": True},
    )


def load_policy(model_dir: str | Path, config: TrainingConfig | None = None):
    """Model and tokenizer of ``model_dir``, loaded for ``config.mode`` (fp32 when no config)."""
    if config is not None:
        check_mode_supported(config)
    tokenizer = load_tokenizer(model_dir)
    try:
        if config is not None and config.mode == "qlora":
            model = _load_quantized(model_dir, config)
        else:
            model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot load model ({exc})", model_dir) from None
    return model, tokenizer


def is_quantized(model) -> bool:
    """Whether ``model`` was loaded in 4 or 8 bits (it then stays where it was loaded)."""
    return bool(
        getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)
    )


def build_peft_config(model, config: TrainingConfig):
    """``peft.LoraConfig`` for ``config.lora`` (modes lora and qlora), ``None`` for full."""
    if config.mode == "full":
        return None
    from peft import LoraConfig

    targets = resolve_lora_targets(model, config.lora.target_modules)
    return LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        bias="none",
        task_type="CAUSAL_LM",
        target_modules=targets,
        # GPT-2's Conv1D stores weights transposed; saying so avoids PEFT's warning and guess.
        fan_in_fan_out=uses_conv1d(model, targets),
    )
