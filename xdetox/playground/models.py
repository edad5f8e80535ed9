"""The models of a comparison: ``LABEL=SOURCE`` specs, loaded once, k continuations each.

Any model source the other commands take works here (:func:`xdetox.models.resolve_model`:
``toy``, a folder such as a run's ``RUN/models/dpo``, ``gs://``, a Hub id, a packaged model such
as ``gemma3-270m``). Every model is loaded when the command starts, not on the first request: a
model that cannot load is then one error line naming its label and source before anything is
served, rather than a broken column later.

Generation is the pipeline's own (:func:`generate_samples` of the transformers backend, with
the recipe's sampling settings): each sample is seeded from (seed, prompt_id, sample_index)
and not from the model, so every model draws the same random numbers for the same prompt, and
the same request gives the same texts again. vLLM is not used: a page asks for a handful of
samples at a time, which is not worth an engine start per model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xdetox.components.generate.hf_backend import generate_samples
from xdetox.components.generate.prompt_file import Prompt
from xdetox.config import GenerationConfig
from xdetox.errors import ConfigError, XdetoxError
from xdetox.models import load_model_and_tokenizer, pick_device, resolve_model

# A label is a column header and a JSON key: short, no spaces, nothing a path would hold.
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Where the prompt of a request "comes from", for the messages of encode_prompts.
PAGE_SOURCE = Path("<prompt from the page>")


class ModelLoadError(XdetoxError):
    """A model of the comparison cannot be resolved or loaded; names its label and source."""

    def __init__(self, label: str, source: str, reason: str):
        super().__init__(f"model {label!r} ({source}): {reason}")
        self.label = label
        self.source = source


@dataclass(frozen=True)
class ModelSpec:
    """One ``--model``: the column's label and the source it is loaded from."""

    label: str
    source: str


def _basename_label(source: str) -> str:
    name = source.rstrip("/").rsplit("/", 1)[-1]
    return name.removesuffix(".gguf") or source


def parse_model_spec(text: str) -> ModelSpec:
    """``LABEL=SOURCE``, or ``SOURCE`` alone, labelled with its last path part (``toy`` →
    ``toy``, ``runs/x/models/dpo`` → ``dpo``). Text before an ``=`` counts as a label only when
    it looks like one, so a source that holds ``=`` itself (``gs://b/run=3``) still works."""
    text = text.strip()
    head, sep, tail = text.partition("=")
    if sep and _LABEL.match(head):
        label, source = head, tail.strip()
    else:
        label, source = _basename_label(text), text
    if not source:
        raise ConfigError(f"--model {text!r}: no model source after '='")
    if not _LABEL.match(label):
        raise ConfigError(
            f"--model {text!r}: label {label!r} must be letters, digits, '.', '_' or '-' "
            "(up to 64); give one as LABEL=SOURCE"
        )
    return ModelSpec(label, source)


def parse_model_specs(texts: Sequence[str] | None) -> list[ModelSpec]:
    """Every ``--model``, in order; at least one, and no label twice (a label is a column)."""
    if not texts:
        raise ConfigError("--model: give at least one model, e.g. --model base=toy")
    specs = [parse_model_spec(text) for text in texts]
    seen: dict[str, ModelSpec] = {}
    for spec in specs:
        if spec.label in seen:
            raise ConfigError(
                f"--model: label {spec.label!r} given twice ({seen[spec.label].source} and "
                f"{spec.source}); name them apart with LABEL=SOURCE"
            )
        seen[spec.label] = spec
    return specs


@dataclass
class LoadedModel:
    """A model ready to generate: its spec, its local folder, the model and its tokenizer."""

    spec: ModelSpec
    folder: Path
    model: Any
    tokenizer: Any

    @property
    def label(self) -> str:
        return self.spec.label


def _reason(exc: BaseException, source: str) -> str:
    """The first line of ``exc`` without a leading ``SOURCE: `` (the error line names it)."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    first = first.removeprefix(f"{source}: ")
    if not isinstance(exc, XdetoxError):
        first = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return first or type(exc).__name__


def load_model(spec: ModelSpec, device: str | None = None) -> LoadedModel:
    """Resolve and load one model; any failure is a :class:`ModelLoadError`.

    Not only our own errors are caught: a folder of a model class transformers does not know,
    or weights that do not fit their config, raise whatever transformers raises, and the
    person at the terminal still needs to know which ``--model`` it was.
    """
    try:
        folder = resolve_model(spec.source)
        model, tokenizer = load_model_and_tokenizer(folder, pick_device(device))
    except Exception as exc:
        raise ModelLoadError(spec.label, spec.source, _reason(exc, spec.source)) from exc
    return LoadedModel(spec, folder, model, tokenizer)


def load_models(specs: Sequence[ModelSpec], device: str | None = None) -> list[LoadedModel]:
    """Every model, in the order given; stops at the first that cannot load."""
    return [load_model(spec, device) for spec in specs]


def continuations(
    model: LoadedModel, prompt: Prompt, config: GenerationConfig
) -> list[dict[str, Any]]:
    """``config.n`` generation records (``xdetox.records``' schema) of ``prompt`` by ``model``.

    Not thread-safe on its own: the caller holds the comparison's lock (see ``session``).
    """
    records, _ = generate_samples(
        model.model,
        model.tokenizer,
        [prompt],
        model_label=model.label,
        config=config,
        source=PAGE_SOURCE,
        progress=False,
    )
    return records
