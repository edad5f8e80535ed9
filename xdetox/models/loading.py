"""Loading tokenizers and models from a local model folder (see :mod:`.sources` for getting one).

Everything goes through transformers' ``Auto*`` classes (``AutoTokenizer``,
``AutoModelForCausalLM``, ``AutoModelForSeq2SeqLM``: "Auto Classes" in the transformers docs),
and a folder that cannot be loaded is one :class:`~xdetox.errors.DataError` line naming it.
torch and transformers are imported inside the functions: importing this module stays cheap for
commands that never load a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from xdetox.errors import DataError

if TYPE_CHECKING:
    import torch


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _existing_folder(model_dir: str | Path, what: str) -> Path:
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise DataError(f"cannot load {what}: model folder not found", model_dir)
    return model_dir


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a ``torch.device``; by default the GPU when one is visible, else the CPU."""
    import torch

    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> Any:
    """fp32 on CPU (bf16 matmuls are slow there); on a GPU the checkpoint's own dtype."""
    import torch

    return "auto" if device.type == "cuda" else torch.float32


def load_tokenizer(model_dir: str | Path) -> Any:
    """The tokenizer saved in ``model_dir``, as ``AutoTokenizer.from_pretrained`` builds it."""
    from transformers import AutoTokenizer

    model_dir = _existing_folder(model_dir, "tokenizer")
    try:
        return AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot load tokenizer ({_first_line(exc)})", model_dir) from None


def load_generation_tokenizer(model_dir: str | Path) -> Any:
    """The model's tokenizer with left padding and a pad token (eos when it has none)."""
    tokenizer = load_tokenizer(model_dir)
    # Left padding: generation appends on the right, so every row's last real token is aligned.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise DataError("tokenizer has neither a pad nor an eos token; cannot batch", model_dir)
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_auto_model(
    auto_class: str,
    model_dir: str | Path,
    device: str | torch.device | None = None,
    *,
    dtype: Any = None,
    what: str = "a model",
) -> Any:
    """``transformers.<auto_class>.from_pretrained(model_dir)`` on ``device``, in eval mode.

    ``dtype`` defaults to :func:`default_dtype`; ``what`` says in a load error what the caller
    needed the model for.
    """
    import transformers

    model_dir = _existing_folder(model_dir, what)
    target = pick_device(device)
    try:
        model = getattr(transformers, auto_class).from_pretrained(
            model_dir, dtype=default_dtype(target) if dtype is None else dtype
        )
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot load {what} ({_first_line(exc)})", model_dir) from None
    model.to(target)
    model.eval()
    return model


def load_causal_lm(
    model_dir: str | Path,
    device: str | torch.device | None = None,
    *,
    dtype: Any = None,
    what: str = "a causal LM",
) -> Any:
    """The causal LM of ``model_dir`` on ``device`` (see :func:`pick_device`), in eval mode."""
    return load_auto_model("AutoModelForCausalLM", model_dir, device, dtype=dtype, what=what)


def load_seq2seq_lm(
    model_dir: str | Path,
    device: str | torch.device | None = None,
    *,
    dtype: Any = None,
    what: str = "a seq2seq LM",
) -> Any:
    """The encoder-decoder LM (e.g. mT5) of ``model_dir`` on ``device``, in eval mode."""
    return load_auto_model("AutoModelForSeq2SeqLM", model_dir, device, dtype=dtype, what=what)


def load_model_and_tokenizer(
    model_dir: str | Path, device: str | torch.device | None = None
) -> tuple[Any, Any]:
    """Model (eval mode) and generation tokenizer (left padding, pad = eos when missing).

    The tokenizer is loaded first: it is quick, and a wrong folder fails before the weights load.
    """
    tokenizer = load_generation_tokenizer(model_dir)
    return load_causal_lm(model_dir, device), tokenizer
