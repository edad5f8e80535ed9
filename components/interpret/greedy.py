"""Neuron activations at the last position over greedily generated steps (as in XG).

The model generates ``steps`` tokens greedily from each prompt while a recorder keeps, at each
forward pass, the activations at the last position: the prompt's last token for the first new
token, then each new token in turn.

Two settings decide which tokens those are:

- ``prepend_bos``: a BOS token in front of each prompt, exactly once (see :mod:`.bos`). XG's
  prompts came from TransformerLens' ``to_tokens``, which prepends it.
- ``stop_at_eos``: with true, a row that produces end-of-sequence contributes only the steps up
  to and including that one (later steps see padding and are not counted). With false every
  row runs all ``steps``, its end token fed back like any other and attended to, as in XG's
  ``collect_neuron_activation_gpt2`` (``xg/collect_neuron_activations.py``): a fixed loop of
  ``n_new_tokens`` argmax steps that never looks for end-of-sequence.

Generation reuses the transformers backend's helpers (left padding, prompt cutting, settings
that switch off a checkpoint's repetition penalties and the like).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from xdetox.components.generate.decoding import encode_prompts, split_finished
from xdetox.components.generate.hf_backend import hf_generation_config, left_pad
from xdetox.components.generate.prompt_file import Prompt
from xdetox.components.interpret.architectures import Architecture
from xdetox.components.interpret.bos import BosTokenizer
from xdetox.components.interpret.hooks import ActivationRecorder
from xdetox.components.interpret.neurons import Neuron
from xdetox.config import GenerationConfig
from xdetox.errors import XdetoxError
from xdetox.models import context_limit, eos_token_ids


@dataclass
class StepActivations:
    """``values[p, s, n]``: neuron ``n`` at step ``s`` of prompt ``p``; ``valid[p, s]`` marks
    steps that ran on a real token."""

    values: torch.Tensor  # [prompts, steps, neurons], float32
    valid: torch.Tensor  # [prompts, steps], bool

    @property
    def n_positions(self) -> int:
        return int(self.valid.sum())

    def mean_per_neuron(self, prompts: Sequence[int] | None = None) -> torch.Tensor:
        """Mean over valid positions (of ``prompts``, or all) for each neuron: ``[neurons]``."""
        values, valid = self.values, self.valid
        if prompts is not None:
            values, valid = values[list(prompts)], valid[list(prompts)]
        count = valid.sum()
        if count == 0:
            return torch.full((values.shape[-1],), float("nan"))
        # where, not multiply: steps that did not run hold NaN, and NaN * 0 is NaN.
        kept = torch.where(valid.unsqueeze(-1), values, torch.zeros(()))
        return kept.sum(dim=(0, 1)) / count


def greedy_step_activations(
    model: Any,
    tokenizer: Any,
    arch: Architecture,
    prompts: Sequence[Prompt],
    neurons: Sequence[Neuron],
    *,
    steps: int,
    batch_size: int,
    source: Path,
    prepend_bos: bool = False,
    stop_at_eos: bool = True,
    settings_key: str = "interpret.activations",
    desc: str = "activations",
    progress: bool = True,
) -> StepActivations:
    """Record ``neurons`` over ``steps`` greedy steps for every prompt (see module doc).

    ``settings_key``: the config section the settings come from, named in errors.
    """
    config = GenerationConfig(
        n=1, temperature=0.0, top_p=1.0, max_new_tokens=steps, batch_size=batch_size
    )
    device = next(model.parameters()).device
    encoder = BosTokenizer(tokenizer, f"{settings_key}.prepend_bos") if prepend_bos else tokenizer
    # Cut from the left to leave room for the steps; a prepended BOS stays in front of the cut.
    encoded, _ = encode_prompts(encoder, prompts, context_limit(model, steps), source)
    eos_ids = eos_token_ids(model, tokenizer)
    # Padding is masked out, so any id will do; load_frozen sets pad = eos, callers may not.
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos_ids or [0])[0]
    hf_config = hf_generation_config(config, pad_id, eos_ids)
    if not stop_at_eos:
        # An empty list, not None: transformers fills a None eos_token_id from the model's own
        # generation config and would stop there after all; no id is in an empty list.
        hf_config.eos_token_id = []
    values = torch.full((len(prompts), steps, len(neurons)), float("nan"))
    valid = torch.zeros((len(prompts), steps), dtype=torch.bool)
    order = sorted(range(len(prompts)), key=lambda i: (-len(encoded[i]), i))
    bar = tqdm(total=len(prompts), desc=desc, unit="prompt", disable=None if progress else True)
    with torch.no_grad(), bar:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            input_ids, attention_mask = left_pad([encoded[i] for i in chunk], pad_id)
            with ActivationRecorder(arch, neurons, position="last") as recorder:
                out = model.generate(
                    input_ids=input_ids.to(device),
                    attention_mask=attention_mask.to(device),
                    generation_config=hf_config,
                )
            new_tokens = out[:, input_ids.shape[1] :].tolist()
            if recorder.n_calls != len(new_tokens[0]):
                raise XdetoxError(
                    f"{arch.model_type}: {recorder.n_calls} forward passes for "
                    f"{len(new_tokens[0])} generated tokens; the neuron hooks cannot be matched "
                    "to generation steps for this model"
                )
            acts = recorder.stacked()  # [batch, calls, neurons]
            for j, i in enumerate(chunk):
                n_tokens = (
                    split_finished(new_tokens[j], set(eos_ids))[1]
                    if stop_at_eos
                    else len(new_tokens[j])
                )
                values[i, :n_tokens] = acts[j, :n_tokens]
                valid[i, :n_tokens] = True
            bar.update(len(chunk))
    return StepActivations(values, valid)
