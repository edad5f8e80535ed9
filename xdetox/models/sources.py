"""Model sources: what ``--model``, ``base_model`` and the like may name, resolved to a folder.

A source is, in the order they are tried:

1. a registered provider name (:mod:`xdetox.models.providers`), ``toy`` among them;
2. a ``gs://bucket/prefix`` folder, downloaded into the local cache (:mod:`.gcs_cache`);
3. a local folder, used where it is, or a local ``.gguf`` file, converted once into the cache
   (:mod:`.gguf`);
4. a Hugging Face Hub id (``org/name``), fetched into the Hugging Face cache.

``tokenizer_only`` asks for the tokenizer alone: ``gs://`` and Hub sources then download no
weights (preparing preference data only counts tokens). Anything else is a one-line
:class:`~xdetox.errors.DataError` naming the source.
"""

from __future__ import annotations

from pathlib import Path

from xdetox.errors import DataError, XdetoxError
from xdetox.models.fetch import check_model_dir, download_hub_model
from xdetox.models.gcs_cache import cached_gcs_model
from xdetox.models.gguf import is_gguf_file, local_gguf_model
from xdetox.models.providers import provider_for
from xdetox.storage import is_gcs

SOURCE_HELP = (
    "'toy' (or another provider), a model folder, a .gguf file, a gs:// folder or a Hugging Face "
    "model id"
)


def _from_provider(name: str, tokenizer_only: bool) -> Path | None:
    provider = provider_for(name)
    if provider is None:
        return None
    folder = Path(provider())
    if not folder.is_dir():
        raise DataError(f"model provider returned {folder}, which is not a folder", name)
    check_model_dir(folder, name, tokenizer_only=tokenizer_only)
    return folder


def resolve_model(
    source: str | Path, *, tokenizer_only: bool = False, cache_dir: str | Path | None = None
) -> Path:
    """A local folder holding the model named by ``source`` (see the module docstring).

    A local folder is returned as it is, unchecked: the loader that reads it names what is
    missing. ``cache_dir`` overrides ``$XDETOX_CACHE_DIR`` for ``gs://`` downloads and
    converted ``.gguf`` files.
    """
    if isinstance(source, Path):
        text = str(source)  # a Path is always local: Path("gs://b") would read "gs:/b"
    else:
        text = source.strip()
        if not text:
            raise XdetoxError(f"empty model source: expected {SOURCE_HELP}")
        from_provider = _from_provider(text, tokenizer_only)
        if from_provider is not None:
            return from_provider
        if is_gcs(text):
            return cached_gcs_model(text, tokenizer_only=tokenizer_only, cache_dir=cache_dir)
    path = Path(text).expanduser()
    if path.exists():
        if is_gguf_file(path):
            return local_gguf_model(path, cache_dir=cache_dir)
        if not path.is_dir():
            raise DataError("expected a model folder, got a file", text)
        return path
    if isinstance(source, Path):
        raise DataError("model folder not found", text)
    return download_hub_model(text, tokenizer_only=tokenizer_only)


def optional_model(source: str | Path | None, *, tokenizer_only: bool = False) -> Path | None:
    """:func:`resolve_model`, or ``None`` for no source (``None`` or ``""``, as KFP passes an
    unset string parameter)."""
    if source is None or str(source).strip() == "":
        return None
    return resolve_model(source, tokenizer_only=tokenizer_only)
