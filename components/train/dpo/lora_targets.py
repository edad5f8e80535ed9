"""Which modules LoRA adapts, per architecture (``training.lora.target_modules: auto``).

Presets follow the LoRA targets of XG's DPO recipe (Li, Yong & Bach 2024, "Preference Tuning For
Toxicity Mitigation Generalizes Across Languages", arXiv:2406.16235, and its public code) minus
``embed_tokens``/``lm_head``: TRL 1.16's
DPOTrainer computes log-probabilities from ``lm_head.weight`` directly and refuses an adapter
there, and vLLM rejects adapters on embeddings. mGPT is a GPT-2 architecture (``model_type``
``gpt2``); Aya-23 is ``cohere``.
"""

from __future__ import annotations

from torch import nn
from transformers.pytorch_utils import Conv1D

from xdetox.errors import ConfigError

_GPT2 = ["c_attn", "c_proj", "c_fc"]
_LLAMA_LIKE = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
_BLOOM = ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"]

LORA_PRESETS: dict[str, list[str]] = {
    "gpt2": _GPT2,
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "cohere": _LLAMA_LIKE,
    # Gemma's attention and gated MLP use the Llama names (Gemma 3 270M: gemma3_text).
    "gemma": _LLAMA_LIKE,
    "gemma2": _LLAMA_LIKE,
    "gemma3_text": _LLAMA_LIKE,
    "bloom": _BLOOM,
}

# Module types LoRA can adapt here; GPT-2 uses transformers' Conv1D instead of nn.Linear.
_ADAPTABLE = (nn.Linear, Conv1D)


def adaptable_module_names(model: nn.Module) -> list[str]:
    """Sorted distinct short names (last path component) of the Linear/Conv1D modules."""
    names = {
        name.rsplit(".", 1)[-1]
        for name, mod in model.named_modules()
        if name and isinstance(mod, _ADAPTABLE)
    }
    return sorted(names)


def _matches(model: nn.Module, target: str) -> list[nn.Module]:
    return [
        mod
        for name, mod in model.named_modules()
        if isinstance(mod, _ADAPTABLE) and (name == target or name.endswith("." + target))
    ]


def resolve_lora_targets(model: nn.Module, target_modules: list[str] | str) -> list[str]:
    """The module names to adapt: the preset for ``model.config.model_type`` when ``"auto"``.

    Raises :class:`ConfigError` for an architecture without a preset, or for a listed name that
    matches no Linear/Conv1D module, listing the names the model has so the user can pick.
    """
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    found = ", ".join(adaptable_module_names(model))
    if target_modules == "auto":
        if model_type not in LORA_PRESETS:
            raise ConfigError(
                f"training.lora.target_modules: no 'auto' preset for model type {model_type!r}; "
                f"set the list yourself. Linear/Conv1D modules in this model: {found}"
            )
        targets = list(LORA_PRESETS[model_type])
    else:
        targets = list(target_modules)
    missing = [t for t in targets if not _matches(model, t)]
    if missing:
        raise ConfigError(
            f"training.lora.target_modules: {', '.join(missing)} not found in model type "
            f"{model_type!r}. Linear/Conv1D modules in this model: {found}"
        )
    return targets


def uses_conv1d(model: nn.Module, targets: list[str]) -> bool:
    """Whether any target is a Conv1D (its weight is stored transposed: LoRA's fan_in_fan_out)."""
    return any(isinstance(mod, Conv1D) for t in targets for mod in _matches(model, t))
