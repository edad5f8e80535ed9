"""Where models and data come from: local paths, ``gs://`` prefixes, Hugging Face ids.

GCS reads use ``google-cloud-storage``; it honours ``STORAGE_EMULATOR_HOST`` so tests run
against fake-gcs-server. Model folders are downloaded with a thread pool because a 7B
checkpoint is a handful of multi-GB shards and one stream per shard is much faster.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from xdetox.errors import DataError


def is_gcs(uri: str | Path) -> bool:
    return str(uri).startswith("gs://")


def split_gcs(uri: str) -> tuple[str, str]:
    """``gs://bucket/a/b`` → (``bucket``, ``a/b``)."""
    rest = uri[len("gs://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise DataError(f"{uri}: not a gs://bucket/path URI")
    return bucket, prefix.strip("/")


def _client():  # imported lazily: only cluster runs and GCS tests need it
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project="xdetox-test", credentials=AnonymousCredentials())
    return storage.Client()


def download_gcs_prefix(uri: str, dest: str | Path, *, max_workers: int = 8) -> Path:
    """Download every object under ``uri`` into ``dest``, keeping relative paths."""
    bucket_name, prefix = split_gcs(uri)
    client = _client()
    blobs = [
        b
        for b in client.list_blobs(bucket_name, prefix=prefix + "/" if prefix else None)
        if not b.name.endswith("/")
    ]
    if not blobs and prefix:  # a single object rather than a folder
        blob = client.bucket(bucket_name).blob(prefix)
        if blob.exists():
            blobs = [blob]
            prefix = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
    if not blobs:
        raise DataError(f"{uri}: no objects found")
    dest = Path(dest)

    def fetch(blob) -> None:
        rel = blob.name[len(prefix) :].lstrip("/") if prefix else blob.name
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        blob.download_to_filename(str(target))

    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        list(pool.map(fetch, blobs))
    return dest


def upload_gcs_prefix(src: str | Path, uri: str, *, max_workers: int = 8) -> int:
    """Upload a local file or folder under ``uri``; return the number of files uploaded."""
    bucket_name, prefix = split_gcs(uri)
    bucket = _client().bucket(bucket_name)
    src = Path(src)
    files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())

    def put(path: Path) -> None:
        rel = path.name if src.is_file() else path.relative_to(src).as_posix()
        bucket.blob(f"{prefix}/{rel}" if prefix else rel).upload_from_filename(str(path))

    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        list(pool.map(put, files))
    return len(files)
