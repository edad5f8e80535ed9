"""``gs://`` models downloaded once into the local cache, and again only when they change.

Each source has its own folder, ``<cache>/models/gcs-<name>-<hash of the URI>`` (``-tokenizer``
for a tokenizer-only download, which holds no weights). The folder is written whole by
:func:`xdetox.files.atomic_dir`, so a download that fails or is killed never leaves a folder
that looks complete; the temporary folder a killed process leaves is removed by the next
download of that source. A hidden stamp file in the folder records a fingerprint of the objects
it was made from (names, sizes, generations and checksums from the bucket listing); a source
whose objects changed is downloaded again, so a cache never serves an outdated checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path, PurePosixPath

from xdetox.files import atomic_dir, write_json
from xdetox.models.cache import cache_root, file_lock
from xdetox.models.fetch import download_gcs_model, model_listing
from xdetox.storage import GcsListing, split_gcs

STAMP = ".xdetox-source.json"  # hidden: shard fingerprints and from_pretrained ignore it


def gcs_cache_folder(
    uri: str, *, tokenizer_only: bool = False, cache_dir: str | Path | None = None
) -> Path:
    """Where the cached copy of ``uri`` lives (whether or not it is there yet)."""
    normalized = uri.rstrip("/")
    bucket, prefix = split_gcs(normalized)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", PurePosixPath(prefix).name or bucket)[:60]
    digest = hashlib.sha256(normalized.encode()).hexdigest()[:16]
    suffix = "-tokenizer" if tokenizer_only else ""
    return cache_root(cache_dir) / "models" / f"gcs-{name}-{digest}{suffix}"


def listing_fingerprint(listing: GcsListing) -> str:
    """A hash of what the objects are: a new upload changes a generation, an edit a checksum."""
    digest = hashlib.sha256()
    for blob in sorted(listing.blobs, key=lambda b: b.name):
        fields = [str(listing.relative_path(blob)), blob.size, blob.generation]
        fields += [blob.md5_hash or blob.crc32c or blob.etag]
        digest.update(json.dumps(fields).encode())
    return digest.hexdigest()


def _stamp(folder: Path) -> str | None:
    try:
        return json.loads((folder / STAMP).read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def _remove_leftovers(folder: Path) -> None:
    """Temporary folders of killed downloads of this source (``atomic_dir`` names them
    ``.<name>.<random>.tmp``); only called under the source's lock, so none is in use."""
    for leftover in folder.parent.glob(f".{folder.name}.*.tmp"):
        shutil.rmtree(leftover, ignore_errors=True)


def cached_gcs_model(
    uri: str, *, tokenizer_only: bool = False, cache_dir: str | Path | None = None
) -> Path:
    """A local folder with the model at ``uri`` (only its tokenizer files if ``tokenizer_only``),
    downloaded unless the cache already holds these very objects."""
    folder = gcs_cache_folder(uri, tokenizer_only=tokenizer_only, cache_dir=cache_dir)
    wanted = listing_fingerprint(model_listing(uri, tokenizer_only=tokenizer_only))
    if _stamp(folder) == wanted:
        return folder
    with file_lock(folder.parent / f".{folder.name}.lock"):
        if _stamp(folder) == wanted:  # another process downloaded it while we waited
            return folder
        _remove_leftovers(folder)
        with atomic_dir(folder) as tmp:
            download_gcs_model(uri, tmp, tokenizer_only=tokenizer_only)
            write_json(
                tmp / STAMP,
                {"source": uri, "tokenizer_only": tokenizer_only, "fingerprint": wanted},
            )
    return folder
