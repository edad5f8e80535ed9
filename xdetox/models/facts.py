"""What a model says about itself: context size, end-of-sequence ids, a summary for metadata.

No torch here (transformers' config classes only, imported when needed), so the vLLM backend
and the pipeline's ``load_model`` step can use it without loading model code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xdetox.errors import ConfigError, DataError

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def describe_model_dir(path: str | Path) -> dict[str, str | int | float]:
    """Facts about a Hugging Face model folder, for artifact metadata (no weights loaded)."""
    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise DataError("not a Hugging Face model folder (no config.json)", path)
    config = json.loads(config_file.read_text(encoding="utf-8"))
    weights = [p for p in path.iterdir() if p.suffix in _WEIGHT_SUFFIXES]
    return {
        "model_type": str(config.get("model_type", "unknown")),
        "architectures": ",".join(config.get("architectures") or []),
        "weights_bytes": sum(p.stat().st_size for p in weights),
    }


def context_limit_from_config(model_config: Any, max_new_tokens: int) -> int | None:
    """Longest prompt (tokens) that leaves room for ``max_new_tokens``; None if unbounded."""
    positions = getattr(model_config, "n_positions", None) or getattr(
        model_config, "max_position_embeddings", None
    )
    if positions is None:
        return None  # e.g. ALiBi models (BLOOM) have no fixed position table
    limit = int(positions) - max_new_tokens
    if limit <= 0:
        raise ConfigError(
            f"generation.max_new_tokens: {max_new_tokens} leaves no room for a prompt in a "
            f"context of {positions} positions"
        )
    return limit


def context_limit(model: Any, max_new_tokens: int) -> int | None:
    """Longest prompt (tokens) that still leaves room for ``max_new_tokens``; None if unbounded."""
    return context_limit_from_config(model.config, max_new_tokens)


def as_id_list(eos: Any) -> list[int]:
    """An ``eos_token_id`` setting (None, an int or a list) as a list of ints."""
    if eos is None:
        return []
    return [int(e) for e in eos] if isinstance(eos, (list, tuple)) else [int(eos)]


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The ids a loaded model stops on: its generation config's, else the tokenizer's."""
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    return as_id_list(eos)


def model_eos_ids(model_dir: str | Path, tokenizer: Any) -> list[int]:
    """The end-of-sequence ids transformers' ``from_pretrained`` would give the model.

    ``generation_config.json`` when the folder has one (Llama 3 lists several ids there), else the
    model config's, else the tokenizer's: the same order as :func:`eos_token_ids` on a loaded
    model, so the vLLM and transformers backends stop on the same tokens.
    """
    from transformers import AutoConfig
    from transformers import GenerationConfig as HFGenerationConfig

    model_dir = Path(model_dir)
    if (model_dir / "generation_config.json").is_file():
        eos = HFGenerationConfig.from_pretrained(model_dir).eos_token_id
    else:
        model_config = AutoConfig.from_pretrained(model_dir)
        eos = HFGenerationConfig.from_model_config(model_config).eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    return as_id_list(eos)
