"""GGUF files as model sources: checked against a SHA-256, converted once to a safetensors folder.

A GGUF (llama.cpp's single-file format) holds the weights, the config and the tokenizer as
metadata. transformers reads one with ``from_pretrained(folder, gguf_file=NAME)`` ("GGUF and
interaction with Transformers", https://huggingface.co/docs/transformers/gguf): it rebuilds the
config and tokenizer and dequantises every tensor to a dense float tensor. Doing that on each
load costs a minute or two (Gemma 3 270M: about 100 s on two cores), so each file is converted
once into an ordinary model folder in the cache, ``<cache>/models/gguf-<name>-<digest>``, that
every stage then loads like any other.

Two fixes over what ``from_pretrained`` returns:

* the tokenizer adds BOS when the file says llama.cpp does (``tokenizer.ggml.add_bos_token``):
  transformers' GGUF tokenizer never adds it, and Gemma without ``<bos>`` generates garbage
  (the Gemma 3 model card's examples all start with ``<bos>``);
* the loaded model carries a GGUF "quantizer" label although its weights are dense, and
  ``save_pretrained`` refuses a quantized model, so the label is dropped before saving.

The folder is written by :func:`xdetox.files.atomic_dir` under a lock, so a failed conversion
leaves nothing that looks complete and parallel tasks convert once.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xdetox.errors import DataError, XdetoxError
from xdetox.files import atomic_dir, write_json, write_text
from xdetox.models.cache import cache_root, file_lock
from xdetox.packages import REAL_EXTRA_HINT

GGUF_SUFFIX = ".gguf"
STAMP = ".xdetox-source.json"  # hidden: records the digest the folder was converted from
LICENSE_FILE = "LICENSE.md"

# Given a scratch folder (removed afterwards), return the path of the GGUF to convert.
GgufFetcher = Callable[[Path], Path]


def sha256_file(path: str | Path) -> str:
    """The hex SHA-256 of a file, read in 1 MiB blocks (GGUFs are hundreds of MB)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def check_digest(path: Path, expected: str, source: str) -> None:
    """Refuse ``path`` unless its SHA-256 is ``expected``: the weights come from third-party
    packages, and a changed file must not silently change what a recipe evaluates."""
    actual = sha256_file(path)
    if actual != expected.lower():
        raise DataError(
            f"GGUF SHA-256 is {actual}, expected {expected}: refusing a file that is not the "
            "pinned one",
            source,
        )


def gguf_cache_folder(name: str, digest: str, cache_dir: str | Path | None = None) -> Path:
    """Where the converted folder of the GGUF with this digest lives (whether or not it exists)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:60]
    return cache_root(cache_dir) / "models" / f"gguf-{safe}-{digest[:16]}"


def _stamped_digest(folder: Path) -> str | None:
    try:
        return json.loads((folder / STAMP).read_text(encoding="utf-8")).get("sha256")
    except (OSError, ValueError, AttributeError):
        return None


def gguf_metadata(path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """The scalar and string metadata ``keys`` a GGUF holds (absent keys are left out)."""
    try:
        from gguf import GGUFReader
    except ImportError:
        raise XdetoxError(f"reading a GGUF needs the gguf package: {REAL_EXTRA_HINT}") from None
    try:
        reader = GGUFReader(path)
    except (OSError, ValueError) as exc:  # gguf raises ValueError for a file that is not GGUF
        raise DataError(f"not a readable GGUF file ({_first_line(exc)})", path) from None
    return {key: reader.fields[key].contents() for key in keys if key in reader.fields}


def _adds_bos(metadata: dict[str, Any]) -> bool:
    # A file without the flag gets llama.cpp's default for its vocabulary: SentencePiece
    # ("llama", Gemma's too) adds BOS, byte-level BPE does not (llama.cpp src/llama-vocab.cpp).
    flag = metadata.get("tokenizer.ggml.add_bos_token")
    if flag is not None:
        return bool(flag)
    return metadata.get("tokenizer.ggml.model") == "llama"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def convert_gguf(path: Path, dest: Path) -> None:
    """Write the model and tokenizer of the GGUF ``path`` into ``dest`` as safetensors."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    meta = gguf_metadata(path, ("tokenizer.ggml.add_bos_token", "tokenizer.ggml.model"))
    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, dtype=torch.float32
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"cannot convert this GGUF ({_first_line(exc)})", path) from None
    # Both ways: the setter rebuilds the post-processor, with or without <bos>. It is saved in
    # tokenizer.json, which transformers 5 reads instead of an add_bos_token flag.
    tokenizer.add_bos_token = _adds_bos(meta)
    if any(not p.is_floating_point() for p in model.parameters()):
        raise DataError("GGUF weights were not dequantised to floats; cannot save them", path)
    # transformers' GGUF loader dequantised every tensor, so the quantizer is only a label now.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)


def _licence_text(provenance: dict[str, str]) -> str:
    lines = ["# Provenance and licence", ""]
    lines += [f"- {key}: {value}" for key, value in provenance.items()]
    lines += [
        "",
        "These weights were converted from the GGUF named above with transformers' GGUF loader "
        "(dequantised, saved as safetensors). The licence above governs their use and any "
        "redistribution of this folder.",
    ]
    return "\n".join(lines) + "\n"


def _remove_leftovers(folder: Path) -> None:
    """Temporary folders that killed conversions left (``atomic_dir`` names them
    ``.<name>.<random>.tmp``); called under the folder's lock, so none is in use."""
    for leftover in folder.parent.glob(f".{folder.name}.*.tmp"):
        shutil.rmtree(leftover, ignore_errors=True)


def converted_folder(name: str, sha256: str, cache_dir: str | Path | None = None) -> Path | None:
    """The converted folder of this GGUF when the cache holds a complete one, else ``None``."""
    folder = gguf_cache_folder(name, sha256, cache_dir)
    return folder if _stamped_digest(folder) == sha256 else None


def cached_gguf_model(
    name: str,
    sha256: str,
    fetch: GgufFetcher,
    provenance: dict[str, str],
    *,
    licence_files: dict[str, Path] | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """The converted folder of the GGUF with digest ``sha256``, converting it on first use.

    ``fetch`` is called only when the folder is missing; the file it returns must have the
    digest ``sha256``. ``provenance`` (licence, package, version, ...) is written, with the
    digest, to ``LICENSE.md``; ``licence_files`` (``{name in folder: file}``) are copied beside.
    """
    folder = gguf_cache_folder(name, sha256, cache_dir)
    if converted_folder(name, sha256, cache_dir):
        return folder
    with file_lock(folder.parent / f".{folder.name}.lock"):
        if _stamped_digest(folder) == sha256:  # another process converted it while we waited
            return folder
        _remove_leftovers(folder)
        with (
            # the suffix lets _remove_leftovers clear a killed run's scratch (a whole GGUF) too
            tempfile.TemporaryDirectory(
                prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent
            ) as scratch,
            atomic_dir(folder) as tmp,
        ):
            path = fetch(Path(scratch))
            check_digest(path, sha256, name)
            convert_gguf(path, tmp)
            for target, source in (licence_files or {}).items():
                shutil.copyfile(source, tmp / target)
            details = {**provenance, "gguf_file": path.name, "gguf_sha256": sha256}
            write_text(tmp / LICENSE_FILE, _licence_text(details))
            write_json(tmp / STAMP, {"sha256": sha256, **details})
    return folder


def is_gguf_file(path: Path) -> bool:
    """Whether ``path`` is an existing file named ``*.gguf``."""
    return path.suffix.lower() == GGUF_SUFFIX and path.is_file()


def local_gguf_model(path: str | Path, *, cache_dir: str | Path | None = None) -> Path:
    """The converted folder of a local ``.gguf`` file, keyed by its SHA-256 (hashed each call,
    about a second per 250 MB, so an edited file is converted again)."""
    path = Path(path).expanduser().resolve()
    digest = sha256_file(path)
    licence = gguf_metadata(path, ("general.license",)).get("general.license")
    provenance = {
        "source": str(path),
        "licence": str(licence) if licence else "unknown (the GGUF names none)",
    }
    return cached_gguf_model(
        path.stem, digest, lambda _scratch: path, provenance, cache_dir=cache_dir
    )
