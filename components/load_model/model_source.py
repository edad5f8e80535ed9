"""Materialise a model into a folder: the toy model, a local folder, ``gs://`` or a Hub id.

The pipeline copies the base model into a KFP ``Model`` artifact once, so every later stage
(DPO, merge, generation, perplexity) reads the very same weights and the KFP UI's lineage shows
exactly which checkpoint a run used.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from xdetox.errors import DataError
from xdetox.files import atomic_dir
from xdetox.storage import download_gcs_prefix, is_gcs

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


def _check_model_dir(path: Path, source: str) -> None:
    if not (path / "config.json").is_file():
        raise DataError("not a Hugging Face model folder (no config.json)", source)


def materialize_model(source: str, output_dir: str | Path) -> dict[str, str | int | float]:
    """Write the model named by ``source`` into ``output_dir``; return metadata about it.

    ``source`` is ``toy`` (the embedded toy model, built on first use), a local folder,
    a ``gs://`` prefix, or a Hugging Face Hub id (needs network or a warm HF cache).
    """
    output_dir = Path(output_dir)
    with atomic_dir(output_dir) as tmp:
        if source == "toy":
            from xdetox.toy import ensure_toy_model

            shutil.copytree(ensure_toy_model(), tmp, dirs_exist_ok=True)
        elif is_gcs(source):
            download_gcs_prefix(source, tmp)
            _check_model_dir(tmp, source)
        elif Path(source).exists():
            if not Path(source).is_dir():
                raise DataError("expected a model folder, got a file", source)
            _check_model_dir(Path(source), source)
            shutil.copytree(source, tmp, dirs_exist_ok=True)
        else:
            _download_from_hub(source, tmp)
    meta = describe_model_dir(output_dir)
    meta["source"] = source
    return meta


def _download_from_hub(repo_id: str, dest: Path) -> None:
    if repo_id.count("/") > 1 or repo_id.startswith((".", "/")):
        raise DataError("no such local folder, and not a Hugging Face model id", repo_id)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        snapshot_download(
            repo_id,
            local_dir=str(dest),
            allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.py", "*.tiktoken"],
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise DataError(
            f"could not fetch from the Hugging Face Hub ({type(exc).__name__}); "
            "check the id, network and HF_TOKEN",
            repo_id,
        ) from None
    _check_model_dir(dest, repo_id)
