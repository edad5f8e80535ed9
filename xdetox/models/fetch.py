"""Downloading a model folder, or only its tokenizer, from ``gs://`` or the Hugging Face Hub.

Which files make a tokenizer: those ``AutoTokenizer.from_pretrained`` reads (transformers'
``tokenization_utils_base`` names ``tokenizer_config.json``, ``special_tokens_map.json``,
``added_tokens.json``, ``tokenizer.json`` and the chat template files; slow tokenizers add their
vocabulary: ``vocab.json``/``merges.txt`` for BPE, ``vocab.txt`` for WordPiece, a SentencePiece
``*.model`` or a tiktoken file), plus ``config.json``, which ``AutoTokenizer`` consults to pick
the tokenizer class when ``tokenizer_config.json`` does not name one.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from xdetox.errors import DataError
from xdetox.storage import GcsListing, download_gcs_prefix, list_gcs, split_gcs

MODEL_CONFIG = "config.json"
ADAPTER_CONFIG = "adapter_config.json"  # a PEFT adapter folder (xdetox dpo's output)

TOKENIZER_PATTERNS: tuple[str, ...] = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
    "*.model",
    "*.tiktoken",
    MODEL_CONFIG,
)
# What a model needs from the Hub besides its weights: configs, tokenizer files and the code of
# trust_remote_code models (not the TF/Flax/ONNX copies many repos also hold).
HUB_MODEL_PATTERNS: tuple[str, ...] = (
    "*.json",
    "*.model",
    "*.txt",
    "*.py",
    "*.tiktoken",
    "*.jinja",
)


def is_tokenizer_file(relative_path: str) -> bool:
    """Whether a file of a model folder (path relative to it) belongs to the tokenizer."""
    path = PurePosixPath(relative_path)
    if len(path.parts) != 1:
        return False  # tokenizer files sit at the top of the folder
    return any(fnmatch.fnmatchcase(path.name, pattern) for pattern in TOKENIZER_PATTERNS)


def check_model_dir(path: Path, source: str, *, tokenizer_only: bool = False) -> None:
    """Raise a :class:`DataError` naming ``source`` when ``path`` is not what was asked for."""
    if tokenizer_only:
        if not any(p.is_file() and is_tokenizer_file(p.name) for p in path.iterdir()):
            raise DataError(
                "no tokenizer files (tokenizer.json, tokenizer_config.json, ...) in this folder",
                source,
            )
        return
    if not (path / MODEL_CONFIG).is_file() and not (path / ADAPTER_CONFIG).is_file():
        raise DataError("not a Hugging Face model folder (no config.json)", source)


def tokenizer_listing(uri: str) -> GcsListing:
    """The objects under ``uri`` that belong to the tokenizer (see :func:`is_tokenizer_file`)."""
    listing = list_gcs(uri)
    if listing.single:
        raise DataError("expected a model folder, got a single object", uri)
    blobs = tuple(b for b in listing.blobs if is_tokenizer_file(str(listing.relative_path(b))))
    if not blobs:
        raise DataError(
            "no tokenizer files (tokenizer.json, tokenizer_config.json, ...) under this prefix", uri
        )
    return GcsListing(listing.uri, blobs, listing.base, single=False)


def model_listing(uri: str, *, tokenizer_only: bool = False) -> GcsListing:
    """What downloading the model (or only its tokenizer) at ``uri`` would fetch."""
    if tokenizer_only:
        return tokenizer_listing(uri)
    listing = list_gcs(uri)
    if listing.single:
        raise DataError("expected a model folder, got a single object", uri)
    return listing


def download_gcs_model(uri: str, dest: Path, *, tokenizer_only: bool = False) -> GcsListing:
    """Download the model folder at ``uri`` (or only its tokenizer files) into ``dest``.

    Files appear one by one: download into :func:`xdetox.files.atomic_dir` for an
    all-or-nothing folder. Returns the listing that was fetched.
    """
    if not tokenizer_only:
        listing = model_listing(uri)
        download_gcs_prefix(uri, dest)
    else:
        listing = tokenizer_listing(uri)
        bucket, _ = split_gcs(uri)
        # One object at a time: a gs:// URI naming one object puts it at dest/<its name>.
        for blob in listing.blobs:
            download_gcs_prefix(f"gs://{bucket}/{blob.name}", dest)
    check_model_dir(dest, uri, tokenizer_only=tokenizer_only)
    return listing


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _weights(repo_id: str) -> Sequence[str]:
    """Safetensors weights when the repo has them, else PyTorch ``.bin`` ones (older repos have
    only those), never both: they are the same weights twice."""
    from huggingface_hub import constants, list_repo_files
    from huggingface_hub.errors import HfHubHTTPError

    if constants.HF_HUB_OFFLINE:
        return ("*.safetensors", "*.bin")  # offline, the cached snapshot is used as it is
    try:
        files = list_repo_files(repo_id)
    except (HfHubHTTPError, OSError):
        return ("*.safetensors",)  # snapshot_download then reports what is wrong
    has_safetensors = any(name.endswith(".safetensors") for name in files)
    return ("*.safetensors",) if has_safetensors else ("*.bin",)


def download_hub_model(
    repo_id: str, dest: Path | None = None, *, tokenizer_only: bool = False
) -> Path:
    """Fetch a Hugging Face Hub model (or only its tokenizer); return its local folder.

    Without ``dest`` the files go to the Hugging Face cache (``HF_HUB_CACHE``) and its snapshot
    folder is returned, so a model is downloaded once per machine and ``HF_HUB_OFFLINE=1`` works
    from a warm cache (``huggingface_hub.snapshot_download``). With ``dest`` they are written
    there (a KFP artifact).
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise DataError(
            "model folder not found, and not a Hugging Face model id", repo_id
        ) from None
    patterns = TOKENIZER_PATTERNS if tokenizer_only else (*HUB_MODEL_PATTERNS, *_weights(repo_id))
    try:
        folder = snapshot_download(
            repo_id,
            local_dir=None if dest is None else str(dest),
            allow_patterns=list(patterns),
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise DataError(
            "not a local model folder, and the Hugging Face Hub could not provide it "
            f"({type(exc).__name__}: {_first_line(exc)}); check the path or id, the network "
            "and HF_TOKEN",
            repo_id,
        ) from None
    path = Path(folder)
    check_model_dir(path, repo_id, tokenizer_only=tokenizer_only)
    return path
