"""Tiny random models and tokenizers for tests, built from configs: nothing is downloaded.

One place for what the training, scoring and interpretability tests all need, so that a change
in transformers (a renamed config field, a new required argument) is fixed once. A model is
seeded right before it is built, so the same arguments give the same weights in every test:
tests that check that a policy *learns* rely on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from tokenizers import ByteLevelBPETokenizer, Tokenizer, models, pre_tokenizers, processors
from transformers import (
    BloomConfig,
    BloomForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    OPTConfig,
    OPTForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    XLMRobertaConfig,
    XLMRobertaForSequenceClassification,
)

GPT2_EOS = "<|endoftext|>"  # GPT-2's own end-of-text token (it doubles as BOS)
CAUSAL_KINDS = ("gpt2", "llama", "bloom", "opt")


def word_tokenizer(
    words: Sequence[str],
    *,
    split_punctuation: bool = False,
    wrap: tuple[str, str] | None = None,
    **special_tokens: Any,
) -> PreTrainedTokenizerFast:
    """A word-level tokenizer whose id of each word is its position in ``words``.

    Words are split on whitespace (and on punctuation with ``split_punctuation``); ``wrap``
    (e.g. ``("<s>", "</s>")``) adds those tokens around every text, as XLM-R's tokenizer does.
    ``special_tokens``: ``unk_token`` (required), ``eos_token``, ``pad_token``, ... as
    ``PreTrainedTokenizerFast`` takes them.
    """
    vocab = {word: index for index, word in enumerate(words)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=special_tokens["unk_token"]))
    backend.pre_tokenizer = (
        pre_tokenizers.Whitespace() if split_punctuation else pre_tokenizers.WhitespaceSplit()
    )
    if wrap is not None:
        first, last = wrap
        backend.post_processor = processors.TemplateProcessing(
            single=f"{first} $A {last}", special_tokens=[(first, vocab[first]), (last, vocab[last])]
        )
    return PreTrainedTokenizerFast(tokenizer_object=backend, **special_tokens)


def gpt2_word_tokenizer(words: Sequence[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer with GPT-2's end-of-text token as id 0 (also the padding) and
    ``[UNK]`` last: the shape of tokenizer the training tests use."""
    return word_tokenizer(
        [GPT2_EOS, *words, "[UNK]"], eos_token=GPT2_EOS, pad_token=GPT2_EOS, unk_token="[UNK]"
    )


def bpe_tokenizer(
    texts: Iterable[str], *, vocab_size: int = 300, eos: str = GPT2_EOS
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (GPT-2's kind) trained on ``texts``; ``eos`` is also BOS."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(texts), vocab_size=vocab_size, min_frequency=1,
                            special_tokens=[eos])  # fmt: skip
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token=eos, bos_token=eos)


def _causal_config(kind: str, vocab_size: int, layers: int, hidden: int, **config: Any):
    if kind == "gpt2":
        defaults = {"n_layer": layers, "n_head": 2, "n_embd": hidden, "n_positions": 64}
        return GPT2LMHeadModel, GPT2Config(vocab_size=vocab_size, **{**defaults, **config})
    if kind == "llama":
        defaults = {
            "num_hidden_layers": layers,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "max_position_embeddings": 64,
        }
        return LlamaForCausalLM, LlamaConfig(vocab_size=vocab_size, **{**defaults, **config})
    if kind == "bloom":
        defaults = {"n_layer": layers, "n_head": 2, "hidden_size": hidden}
        return BloomForCausalLM, BloomConfig(vocab_size=vocab_size, **{**defaults, **config})
    if kind == "opt":
        defaults = {
            "num_hidden_layers": layers,
            "num_attention_heads": 2,
            "hidden_size": hidden,
            "ffn_dim": 2 * hidden,
            "word_embed_proj_dim": hidden,
        }
        return OPTForCausalLM, OPTConfig(vocab_size=vocab_size, **{**defaults, **config})
    raise ValueError(f"unknown kind {kind!r} (known: {', '.join(CAUSAL_KINDS)})")


def tiny_causal_lm(
    kind: str = "gpt2",
    *,
    vocab_size: int,
    layers: int = 2,
    hidden: int = 32,
    seed: int = 0,
    **config: Any,
) -> PreTrainedModel:
    """A random causal LM of ``kind`` (two heads; ``config`` overrides any config field)."""
    model_class, model_config = _causal_config(kind, vocab_size, layers, hidden, **config)
    torch.manual_seed(seed)
    return model_class(model_config)


def save_tiny_lm(
    folder: str | Path,
    tokenizer: PreTrainedTokenizerFast,
    kind: str = "gpt2",
    *,
    seed: int = 0,
    **config: Any,
) -> Path:
    """Save ``tokenizer`` and a :func:`tiny_causal_lm` over its vocabulary into ``folder``."""
    folder = Path(folder)
    tokenizer.save_pretrained(folder)
    model = tiny_causal_lm(kind, vocab_size=len(tokenizer), seed=seed, **config)
    model.save_pretrained(folder)
    return folder


def tiny_sequence_classifier(
    *, vocab_size: int, id2label: dict[int, str], seed: int = 0, **config: Any
) -> XLMRobertaForSequenceClassification:
    """A random XLM-R sequence classifier (two layers of 32) with the given labels."""
    defaults = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "id2label": id2label,
        "label2id": {label: index for index, label in id2label.items()},
    }
    torch.manual_seed(seed)
    return XLMRobertaForSequenceClassification(
        XLMRobertaConfig(vocab_size=vocab_size, **{**defaults, **config})
    )
