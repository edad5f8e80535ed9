"""Loading the language model a fluency metric measures with, one way for every kind of model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xdetox.models import load_auto_model, load_tokenizer, pick_device, resolve_model


def load_lm(
    auto_class: str, source: str | Path, device: str | None, *, what: str
) -> tuple[Any, Any, str]:
    """``(model, tokenizer, device)`` of ``transformers.<auto_class>`` from ``source`` (any model
    source :func:`xdetox.models.resolve_model` accepts: a folder, ``gs://``, a Hub id, ``toy``),
    in eval mode; a load failure is one :class:`~xdetox.errors.DataError` line naming ``what``.

    fp32 on CPU; on a GPU the dtype the checkpoint was saved in (callers take log-softmax in
    fp32, so half-precision weights do not cost precision where it matters).
    """
    target = pick_device(device)
    local = resolve_model(source)
    model = load_auto_model(auto_class, local, target, what=what)
    return model, load_tokenizer(local), str(target)
