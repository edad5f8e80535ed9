"""Copy a model source into a folder of its own: the pipelines' ``load_model`` step.

The pipeline copies the base model into a KFP ``Model`` artifact once, so every later stage
(DPO, merge, generation, perplexity) reads the very same weights and the KFP UI's lineage shows
exactly which checkpoint a run used. ``gs://`` and Hub sources are downloaded straight into the
artifact (not through the local cache, which would hold a second copy of every weight file).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from xdetox.errors import DataError
from xdetox.files import atomic_dir
from xdetox.models.facts import describe_model_dir
from xdetox.models.fetch import MODEL_CONFIG, download_gcs_model, download_hub_model
from xdetox.models.providers import provider_for
from xdetox.models.sources import resolve_model
from xdetox.storage import is_gcs


def _fill(source: str, dest: Path) -> None:
    if provider_for(source) is None and is_gcs(source):
        download_gcs_model(source, dest)
    elif provider_for(source) is None and not Path(source).expanduser().exists():
        download_hub_model(source, dest)
    else:  # a provider's folder or a local folder
        shutil.copytree(resolve_model(source), dest, dirs_exist_ok=True)


def materialize_model(source: str, output_dir: str | Path) -> dict[str, str | int | float]:
    """Write the model named by ``source`` into ``output_dir``; return metadata about it.

    ``source`` is anything :func:`~xdetox.models.sources.resolve_model` accepts: ``toy`` (or
    another registered provider), a local folder, a ``gs://`` prefix or a Hugging Face Hub id
    (needs network or a warm HF cache). The folder appears whole or not at all.
    """
    output_dir = Path(output_dir)
    with atomic_dir(output_dir) as tmp:
        _fill(source.strip(), tmp)
        if not (tmp / MODEL_CONFIG).is_file():
            raise DataError("not a Hugging Face model folder (no config.json)", source)
    meta = describe_model_dir(output_dir)
    meta["source"] = source
    return meta
