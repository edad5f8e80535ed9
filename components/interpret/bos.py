"""A BOS token in front of each prompt, exactly once, as TransformerLens' ``to_tokens`` puts it.

XG (Li, Yong & Bach 2024, arXiv:2406.16235; github.com/BatsResearch/cross-lingual-detox) ran
its activation measurements (``scripts/run_collect_neuron_activations.py``) and its released
intervention (``notebooks/Causal Intervention.ipynb``) through TransformerLens, whose
``HookedTransformer.to_tokens`` prepends BOS when the model's ``default_prepend_bos`` says so
(true for GPT-2-style models such as mGPT; TransformerLens sets it false for a few
architectures, BLOOM and Qwen among them): by hand when the tokenizer does not add one (GPT-2's
does not), not at all when it does (Llama, Gemma), and with the EOS token standing in when a
tokenizer has no BOS token (its ``set_tokenizer``).

Here the check is per prompt: a sequence that already starts with the BOS id keeps it as it is,
any other gets one in front. A tokenizer that adds BOS therefore never gets a second one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xdetox.errors import ConfigError


def bos_token_id(tokenizer: Any, key: str) -> int:
    """The id put in front: the tokenizer's BOS, else its EOS (TransformerLens' fallback).

    ``key`` names the setting that asked for it, for the error when there is neither.
    """
    for candidate in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    raise ConfigError(f"{key}: the tokenizer has neither a BOS nor an EOS token to prepend")


def with_bos(ids: Sequence[int], bos: int) -> list[int]:
    """``ids`` starting with exactly one ``bos``: unchanged when it already starts with it."""
    ids = list(ids)
    return ids if ids and ids[0] == bos else [bos, *ids]


class BosTokenizer:
    """A tokenizer whose encodings start with one BOS (see the module doc); everything else is
    the wrapped tokenizer's.

    It lets code that encodes prompts itself (the generation backend's ``encode_prompts``) see
    BOS-led prompts without a flag of its own. ``bos_token_id`` is the id put in front, so code
    that keeps a leading BOS when it cuts a long prompt from the left keeps this one.
    """

    def __init__(self, tokenizer: Any, key: str):
        self._tokenizer = tokenizer
        self._bos = bos_token_id(tokenizer, key)

    @property
    def bos_token_id(self) -> int:
        return self._bos

    @property
    def wrapped(self) -> Any:
        return self._tokenizer

    def __call__(self, text: Any, *args: Any, **kwargs: Any) -> Any:
        # Unpadded lists only: a padded row's first id may be padding, not the text's start.
        if kwargs.get("return_tensors") is not None or kwargs.get("padding"):
            raise TypeError("BosTokenizer encodes unpadded lists: no return_tensors, no padding")
        encoding = self._tokenizer(text, *args, **kwargs)
        single = isinstance(text, str)
        rows = [encoding["input_ids"]] if single else list(encoding["input_ids"])
        masks = encoding.get("attention_mask")
        masks = None if masks is None else ([masks] if single else list(masks))
        for i, row in enumerate(rows):
            if row and row[0] == self._bos:
                continue
            rows[i] = [self._bos, *row]
            if masks is not None:
                masks[i] = [1, *masks[i]]
        encoding["input_ids"] = rows[0] if single else rows
        if masks is not None:
            encoding["attention_mask"] = masks[0] if single else masks
        return encoding

    def __getattr__(self, name: str) -> Any:
        # Only reached for names this class does not define: decode, pad_token_id, ...
        return getattr(self._tokenizer, name)
