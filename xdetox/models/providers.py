"""Named model providers: a source name that a function turns into a local model folder.

``toy`` is the built-in one (the embedded toy model, trained on first use); ``gemma3-270m`` and
``smollm2-135m`` are real models shipped in PyPI packages (:mod:`xdetox.models.packaged`, the
``real`` extra). Packages that ship a model of their own register a provider under its name,
and every stage that takes a model source (``--model NAME``, the pipelines' ``base_model``) can
then use it like any other source.

A provider takes no arguments and returns a local Hugging Face model folder (``config.json``,
weights, tokenizer files); it should build or unpack the folder once and return the same path
afterwards, since it is called each time the source is resolved.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from xdetox.models.packaged import PACKAGED_MODELS, packaged_model
from xdetox.storage import GCS_SCHEME

ModelProvider = Callable[[], "str | Path"]

TOY_MODEL = "toy"


def _toy_model() -> Path:
    # Imported here: building the toy model needs torch, which resolving other sources does not.
    from xdetox.toy import ensure_toy_model

    return ensure_toy_model()


_PROVIDERS: dict[str, ModelProvider] = {
    TOY_MODEL: _toy_model,
    **{name: partial(packaged_model, name) for name in PACKAGED_MODELS},
}


def _check_name(name: str) -> None:
    # A provider name must never shadow a folder path, a gs:// URI or a Hub id ("org/name").
    if not name or name != name.strip() or "/" in name or "\\" in name or ":" in name:
        raise ValueError(
            f"model provider name {name!r}: expected a plain word (no '/', '\\', ':' or spaces "
            f"around it), so that it cannot be mistaken for a path, {GCS_SCHEME} URI or Hub id"
        )


def register_provider(name: str, provider: ModelProvider, *, replace: bool = False) -> None:
    """Make ``name`` a model source that ``provider()`` resolves to a local folder.

    Registering a taken name is an error unless ``replace`` is true (a second package silently
    taking over a name would change which weights a recipe evaluates).
    """
    _check_name(name)
    if name in _PROVIDERS and not replace:
        raise ValueError(f"model provider {name!r} is already registered")
    _PROVIDERS[name] = provider


def unregister_provider(name: str) -> None:
    """Forget the provider registered as ``name`` (``toy`` included); unknown names are ignored."""
    _PROVIDERS.pop(name, None)


def provider_for(source: str) -> ModelProvider | None:
    """The provider registered under ``source``, if any."""
    return _PROVIDERS.get(source)


def provider_names() -> list[str]:
    """The registered provider names, sorted."""
    return sorted(_PROVIDERS)
