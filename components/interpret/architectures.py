"""Where each architecture keeps its MLP value vectors, neuron activations and final norm.

An MLP block writes ``W_out @ a`` into the residual stream, where ``a`` (d_mlp numbers) is the
activation of its "neurons" and ``W_out`` maps d_mlp → d. Column ``i`` of that map is neuron
``i``'s **value vector** (Geva et al.; DT; XG): what the neuron adds when it fires.

How the map is stored differs:

- GPT-2 / mGPT use transformers' ``Conv1D`` (``y = x @ W + b``), weight ``[d_mlp, d]``: the value
  vectors are its **rows**.
- ``nn.Linear`` (``y = x @ W.T + b``: Llama, Mistral, Qwen, Cohere/Aya, Gemma, BLOOM, GPT-NeoX,
  GPT-Neo) stores ``[d, d_mlp]``: the value vectors are its **columns**.

The neuron activation ``a`` is the projection's *input* in every case (``gelu(c_fc(x))`` for
GPT-2, ``act(gate_proj(x)) * up_proj(x)`` for Llama-likes), so one forward pre-hook on the
projection reads or shifts it whatever the MLP looks like inside.

The probe reads the output of the final norm (what the LM head sees); the preset names that
module too, rather than trusting ``hidden_states[-1]`` to be post-norm in every version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from xdetox.errors import ConfigError

Layout = Literal["rows", "columns"]


@dataclass(frozen=True)
class ArchitecturePreset:
    """Module paths (dotted, from the CausalLM) of one architecture family."""

    layers: str  # the ModuleList of decoder blocks
    projection: str  # the MLP output projection, relative to a block
    layout: Layout  # value vectors are the weight's rows (Conv1D) or columns (Linear)
    final_norm: str  # the norm applied before the LM head
    activation: str  # what the projection's input (the neuron activation) is, for reports


_LLAMA_LIKE = ArchitecturePreset(
    "model.layers", "mlp.down_proj", "columns", "model.norm", "act(gate_proj(x)) * up_proj(x)"
)

PRESETS: dict[str, ArchitecturePreset] = {
    # mGPT is a GPT-2 architecture (model_type "gpt2").
    "gpt2": ArchitecturePreset(
        "transformer.h", "mlp.c_proj", "rows", "transformer.ln_f", "gelu(c_fc(x))"
    ),
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "cohere": _LLAMA_LIKE,  # Aya-23
    "gemma": _LLAMA_LIKE,
    "gemma2": _LLAMA_LIKE,
    # Gemma 3 text-only checkpoints (270M, 1B): gated MLP, act(gate_proj(x)) * up_proj(x).
    "gemma3_text": _LLAMA_LIKE,
    "bloom": ArchitecturePreset(
        "transformer.h",
        "mlp.dense_4h_to_h",
        "columns",
        "transformer.ln_f",
        "gelu(dense_h_to_4h(x))",
    ),
    "gpt_neox": ArchitecturePreset(
        "gpt_neox.layers",
        "mlp.dense_4h_to_h",
        "columns",
        "gpt_neox.final_layer_norm",
        "act(dense_h_to_4h(x))",
    ),
    # GPT-Neo names its projection c_proj like GPT-2 but stores it as nn.Linear.
    "gpt_neo": ArchitecturePreset(
        "transformer.h", "mlp.c_proj", "columns", "transformer.ln_f", "act(c_fc(x))"
    ),
}

_EXPECTED_TYPE: dict[Layout, type[nn.Module]] = {"rows": Conv1D, "columns": nn.Linear}


def _get(root: nn.Module, path: str) -> nn.Module | None:
    module: Any = root
    for part in path.split("."):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module if isinstance(module, nn.Module) else None


def candidate_modules(model: nn.Module) -> list[str]:
    """Distinct module paths (block numbers shown as ``*``): the Linear/Conv1D layers inside
    decoder blocks and every norm.

    Shown when an architecture has no preset or does not match it, so the user sees what the
    model calls things (the MLP output projection and the final norm are among them).
    """
    names: set[str] = set()
    for name, module in model.named_modules():
        if not name:
            continue
        parts = name.split(".")
        in_block = any(p.isdigit() for p in parts)
        is_proj = in_block and isinstance(module, nn.Linear | Conv1D)
        is_norm = "norm" in type(module).__name__.lower() or parts[-1].startswith("ln")
        if is_proj or is_norm:
            names.add(".".join("*" if p.isdigit() else p for p in parts))
    return sorted(names)


class Architecture:
    """A model together with its preset: layers, projections and value vectors by index."""

    def __init__(self, model: nn.Module, model_type: str, preset: ArchitecturePreset):
        self.model = model
        self.model_type = model_type
        self.preset = preset
        blocks = _get(model, preset.layers)
        if not isinstance(blocks, nn.ModuleList) or len(blocks) == 0:
            raise self._mismatch(f"no decoder blocks at {preset.layers!r}")
        self.blocks = blocks
        projections = []
        for i, block in enumerate(blocks):
            proj = _get(block, preset.projection)
            expected = _EXPECTED_TYPE[preset.layout]
            if not isinstance(proj, expected):
                found = "nothing" if proj is None else type(proj).__name__
                raise self._mismatch(
                    f"{preset.layers}.{i}.{preset.projection} is {found}, expected "
                    f"{expected.__name__} (value vectors as {preset.layout})"
                )
            projections.append(proj)
        self.projections: list[nn.Module] = projections
        norm = _get(model, preset.final_norm)
        if norm is None:
            raise self._mismatch(f"no final norm at {preset.final_norm!r}")
        self.final_norm = norm
        weight = self.value_vectors(0)
        self.d_mlp, self.d_model = int(weight.shape[0]), int(weight.shape[1])

    def _mismatch(self, what: str) -> ConfigError:
        return ConfigError(
            f"model type {self.model_type!r}: {what}; this checkpoint does not match the preset. "
            f"Candidate modules: {', '.join(candidate_modules(self.model))}"
        )

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    def projection(self, layer: int) -> nn.Module:
        """The MLP output projection of block ``layer``; its input is the neuron activation."""
        return self.projections[layer]

    def value_vectors(self, layer: int) -> torch.Tensor:
        """Block ``layer``'s value vectors as rows: ``[d_mlp, d_model]``, float32, detached."""
        weight = self.projections[layer].weight.detach()
        vectors = weight if self.preset.layout == "rows" else weight.T
        return vectors.float()

    def check_neuron(self, layer: int, index: int, where: str) -> None:
        """Raise a ConfigError (``where`` names the source) for a neuron the model lacks."""
        if not 0 <= layer < self.n_layers or not 0 <= index < self.d_mlp:
            raise ConfigError(
                f"{where}: neuron (layer {layer}, index {index}) does not exist in this "
                f"{self.model_type} model ({self.n_layers} layers × {self.d_mlp} neurons)"
            )


def resolve_architecture(model: nn.Module) -> Architecture:
    """The :class:`Architecture` for ``model.config.model_type``.

    Raises :class:`ConfigError` for a model type without a preset (listing the model's candidate
    module names) and for a BLOOM configured with ``slow_but_exact`` tensor-parallel emulation,
    whose MLP multiplies slices of the weight directly so the projection's hooks never fire.
    """
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    preset = PRESETS.get(str(model_type))
    if preset is None:
        raise ConfigError(
            f"model type {model_type!r} has no interpretability preset (known: "
            f"{', '.join(sorted(PRESETS))}); add one to components/interpret/architectures.py. "
            f"Candidate modules: {', '.join(candidate_modules(model))}"
        )
    if (
        model_type == "bloom"
        and getattr(config, "slow_but_exact", False)
        and getattr(config, "pretraining_tp", 1) > 1
    ):
        raise ConfigError(
            "model config slow_but_exact: BLOOM with slow_but_exact=True and pretraining_tp > 1 "
            "bypasses dense_4h_to_h's forward, so neuron hooks cannot see it; set it to false"
        )
    return Architecture(model, str(model_type), preset)
