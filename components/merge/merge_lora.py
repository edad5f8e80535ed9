"""Fold a LoRA adapter into its base model, giving a standalone Hugging Face model folder.

Generation backends load plain model folders more reliably than base + adapter (vLLM rejects
adapters on embeddings, and a merged model runs without PEFT's per-layer overhead), which is
also why the XG reference merged before generating. A full fine-tuned model needs no merge and
is copied as it is, so later stages see one kind of input either way.

The base is loaded in fp32 so the merge adds ``B @ A * scale`` without rounding; the result is
saved as safetensors (the only format transformers 5 writes). The output folder is written whole
and atomically.

QLoRA adapters (``training.mode: qlora``) merge the same way: the adapter was trained on a 4-bit
copy of the base, but its ``adapter_config.json`` and weights are those of an ordinary LoRA
adapter (TRL keeps them in bf16, upcast here), and they are added to the *full-precision* base,
never to a quantised one: merging into 4-bit weights would round the update away and give a
model vLLM cannot load as a plain folder. A base whose ``config.json`` carries a
``quantization_config`` is refused with a message saying so.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from xdetox.components.train.outputs import BASE_CONFIG
from xdetox.errors import DataError, XdetoxError
from xdetox.files import atomic_dir
from xdetox.models import load_causal_lm, load_tokenizer

ADAPTER_CONFIG = "adapter_config.json"
MODEL_CONFIG = "config.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
# Training leftovers that do not belong in a model folder.
_NOT_COPIED = ("checkpoints",)
# Config keys whose difference means the adapter's weights cannot fit the base.
_SHAPE_KEYS = ("model_type", "hidden_size", "n_embd", "num_hidden_layers", "n_layer", "vocab_size")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read ({exc})", path) from None


def _expected_base_config(adapter_dir: Path, adapter_config: dict) -> tuple[dict, str] | None:
    """The config the adapter was trained on: saved beside it, or at its recorded base path."""
    saved = adapter_dir / BASE_CONFIG
    if saved.is_file():
        return _read_json(saved), str(saved)
    recorded = adapter_config.get("base_model_name_or_path")
    if recorded and (Path(recorded) / MODEL_CONFIG).is_file():
        return _read_json(Path(recorded) / MODEL_CONFIG), recorded
    return None


def check_base_matches(base_dir: Path, adapter_dir: Path) -> None:
    """Raise :class:`XdetoxError` when the adapter was trained on another architecture."""
    base = _read_json(base_dir / MODEL_CONFIG)
    expected = _expected_base_config(adapter_dir, _read_json(adapter_dir / ADAPTER_CONFIG))
    if expected is None:
        return  # nothing recorded: the weight shapes are still checked while loading
    trained_on, where = expected
    for key in _SHAPE_KEYS:
        if key in trained_on and key in base and trained_on[key] != base[key]:
            raise XdetoxError(
                f"{adapter_dir}: adapter does not fit base {base_dir}: {key} is "
                f"{trained_on[key]!r} in the model it was trained on ({where}) but {base[key]!r} "
                "in the base"
            )


def _first_reason(exc: Exception) -> str:
    """The informative line of a loading error (torch puts "size mismatch ..." on line 2)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if line.startswith("size mismatch"):
            return line
    return lines[0] if lines else type(exc).__name__


def check_not_quantized(base_dir: Path) -> None:
    """Raise :class:`XdetoxError` when the base is a quantised checkpoint (bitsandbytes, ...)."""
    config = _read_json(base_dir / MODEL_CONFIG)
    if config.get("quantization_config"):
        method = config["quantization_config"].get("quant_method", "quantised")
        raise XdetoxError(
            f"{base_dir}: the base is a {method} checkpoint (quantization_config in config.json); "
            "LoRA and QLoRA adapters are merged into the full-precision base model"
        )


def load_merged(base_dir: str | Path, adapter_dir: str | Path):
    """The fp32 base of ``base_dir`` with the adapter of ``adapter_dir`` folded in, after
    checking that the base is not quantised and has the adapter's architecture."""
    from peft import PeftModel
    from peft.utils import get_peft_model_state_dict, load_peft_weights

    base_dir, adapter_dir = Path(base_dir), Path(adapter_dir)
    check_not_quantized(base_dir)
    check_base_matches(base_dir, adapter_dir)

    base = load_causal_lm(base_dir, "cpu", dtype=torch.float32, what="the base model")
    try:
        model = PeftModel.from_pretrained(base, str(adapter_dir))
    except (RuntimeError, ValueError, KeyError) as exc:
        # Size mismatches and target modules missing from the base end up here.
        raise XdetoxError(
            f"{adapter_dir}: adapter does not fit base {base_dir}: {_first_reason(exc)}"
        ) from None
    # PEFT loads non-strictly: adapter weights with no place in the base are dropped silently.
    saved = set(load_peft_weights(str(adapter_dir), device="cpu"))
    # Only key names matter here; save_embedding_layers="auto" would look the base up online.
    placed = set(get_peft_model_state_dict(model, save_embedding_layers=False))
    if saved - placed:
        unused = sorted(saved - placed)
        raise XdetoxError(
            f"{adapter_dir}: adapter does not fit base {base_dir}: {len(unused)} adapter weights "
            f"have no place in the base (e.g. {unused[0]})"
        )
    return model.merge_and_unload()


def _copy_model_dir(src: Path, dest: Path) -> None:
    for item in src.iterdir():
        if item.name in _NOT_COPIED or item.name.startswith("."):
            continue
        if item.is_dir():
            shutil.copytree(item, dest / item.name)
        else:
            shutil.copy2(item, dest / item.name)


def merge_adapter(
    base_dir: str | Path, adapter_dir: str | Path, output_dir: str | Path
) -> dict[str, str | int]:
    """Write ``base + adapter`` merged (or the full model of ``adapter_dir``) to ``output_dir``.

    Returns a small description for the model artifact's metadata.
    """
    base_dir, adapter_dir = Path(base_dir), Path(adapter_dir)
    if (adapter_dir / ADAPTER_CONFIG).is_file():
        if not (base_dir / MODEL_CONFIG).is_file():
            raise DataError(f"no {MODEL_CONFIG}: not a model folder", base_dir)
        merged = load_merged(base_dir, adapter_dir)
        tokenizer_dir = adapter_dir if (adapter_dir / TOKENIZER_CONFIG).is_file() else base_dir
        tokenizer = load_tokenizer(tokenizer_dir)
        with atomic_dir(output_dir) as tmp:
            merged.save_pretrained(str(tmp))
            tokenizer.save_pretrained(str(tmp))
        return {
            "source": "lora",
            "model_type": merged.config.model_type,
            "n_params": sum(p.numel() for p in merged.parameters()),
        }
    if (adapter_dir / MODEL_CONFIG).is_file():
        with atomic_dir(output_dir) as tmp:
            _copy_model_dir(adapter_dir, tmp)
            if not (tmp / TOKENIZER_CONFIG).is_file():
                load_tokenizer(base_dir).save_pretrained(str(tmp))
        config = _read_json(adapter_dir / MODEL_CONFIG)
        return {"source": "full", "model_type": str(config.get("model_type", ""))}
    raise DataError(
        f"neither a LoRA adapter ({ADAPTER_CONFIG}) nor a model ({MODEL_CONFIG})", adapter_dir
    )
