"""Where models and data come from: local paths and ``gs://`` prefixes.

GCS access uses ``google-cloud-storage``, which honours ``STORAGE_EMULATOR_HOST``, so the tests run
against the real fake-gcs-server binary. Model folders are downloaded with a thread pool because a
7B checkpoint is a handful of multi-GB shards and one stream per shard is much faster.

A ``gs://bucket/a/b`` URI names a *folder* (every object under ``a/b/``) when such objects exist,
otherwise the single *object* ``a/b``. Folder placeholder objects (names ending in ``/``, made by
the Cloud Console's "create folder") are skipped.

Errors a user can fix (missing bucket or object, permission denied, no credentials, malformed URI)
are raised as one-line :class:`~xdetox.errors.DataError` / :class:`~xdetox.errors.XdetoxError`
naming the URI; transient server errors are retried by the client library and otherwise propagate.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from tqdm import tqdm

from xdetox.errors import DataError, XdetoxError
from xdetox.files import atomic_dir, atomic_path

if TYPE_CHECKING:  # the GCS client is imported lazily: only cluster runs and GCS tests need it
    from google.cloud.storage import Blob, Client

GCS_SCHEME = "gs://"
EMULATOR_PROJECT = "xdetox-test"  # any name works against the emulator; a real project is not used
DEFAULT_WORKERS = 8  # below requests' default connection pool (10), so no "pool is full" warnings

_T = TypeVar("_T")
_REQUEST_PREFIX = re.compile(r"^(GET|HEAD|POST|PUT|PATCH|DELETE) \S+: ")


def is_gcs(uri: str | Path) -> bool:
    """True for ``gs://`` URIs. A ``Path`` never is: ``Path`` collapses ``gs://`` to ``gs:/``."""
    return isinstance(uri, str) and uri.startswith(GCS_SCHEME)


def split_gcs(uri: str) -> tuple[str, str]:
    """``gs://bucket/a/b/`` → (``bucket``, ``a/b``); a :class:`DataError` for anything else."""
    if not is_gcs(uri):
        raise DataError("not a gs://bucket/path URI", uri)
    bucket, _, prefix = uri[len(GCS_SCHEME) :].partition("/")
    if not bucket or any(ch.isspace() for ch in bucket):
        raise DataError("not a gs://bucket/path URI (no valid bucket name)", uri)
    return bucket, prefix.strip("/")


# ---------------------------------------------------------------------------------------------
# Client and error translation


def _client(uri: str) -> Client:
    """A storage client: anonymous against the emulator, default credentials otherwise."""
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        project = os.environ.get("GOOGLE_CLOUD_PROJECT", EMULATOR_PROJECT)
        return storage.Client(project=project, credentials=AnonymousCredentials())
    try:
        return storage.Client()
    except DefaultCredentialsError as exc:
        raise XdetoxError(
            f"{uri}: no usable Google Cloud credentials ({_one_line(exc)}); on a cluster use "
            "Workload Identity or a service-account key in GOOGLE_APPLICATION_CREDENTIALS, "
            "locally run `gcloud auth application-default login`"
        ) from None


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message squeezed onto one line, without the request line the API client
    puts in front ("GET https://…: "), which repeats what the URI already says."""
    text = getattr(exc, "message", None) or str(exc)
    text = _REQUEST_PREFIX.sub("", " ".join(str(text).split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


@contextlib.contextmanager
def _gcs_errors(uri: str, missing: str) -> Iterator[None]:
    """Turn the client's errors a user can act on into one-line errors that name ``uri``.

    ``missing`` says what a 404 means at this call site (a missing bucket when listing, a missing
    object when fetching one), since the API's own message is a bare "Not Found".
    """
    from google.api_core import exceptions as api
    from google.auth.exceptions import RefreshError
    from google.cloud.storage.exceptions import DataCorruption

    try:
        yield
    except api.NotFound:
        raise DataError(missing, uri) from None
    except (api.Forbidden, api.Unauthorized, RefreshError) as exc:
        code = getattr(exc, "code", None)
        status = f"HTTP {int(code)}" if code is not None else type(exc).__name__
        raise DataError(
            f"permission denied ({status}: {_one_line(exc)}); the account in use needs "
            "storage.objects.list/get (e.g. roles/storage.objectViewer) or, to write, "
            "roles/storage.objectCreator",
            uri,
        ) from None
    except api.BadRequest as exc:  # e.g. an invalid bucket or object name
        raise DataError(f"rejected by GCS (HTTP 400: {_one_line(exc)})", uri) from None
    except DataCorruption as exc:
        raise DataError(f"download checksum mismatch ({_one_line(exc)})", uri) from None


# ---------------------------------------------------------------------------------------------
# Listing


@dataclass(frozen=True)
class GcsListing:
    """The objects a URI stands for and the prefix to strip to get their relative paths."""

    uri: str
    blobs: tuple[Blob, ...]
    base: str  # "" for the bucket root
    single: bool  # the URI named one object, not a folder

    @property
    def total_bytes(self) -> int:
        return sum(blob.size or 0 for blob in self.blobs)

    def relative_path(self, blob: Blob) -> PurePosixPath:
        """The object's path below ``base``; refuses names that would escape the target folder."""
        rel = blob.name[len(self.base) :].lstrip("/") if self.base else blob.name
        parts = PurePosixPath(rel).parts
        if not parts or any(part in ("..", ".") for part in parts) or rel.startswith("/"):
            raise DataError(f"object name {blob.name!r} cannot be used as a local path", self.uri)
        return PurePosixPath(*parts)


def list_gcs(uri: str, client: Client | None = None) -> GcsListing:
    """The objects under ``uri`` (a folder), or the one object it names.

    Raises :class:`DataError` naming ``uri`` when the bucket does not exist, access is denied,
    or neither a folder nor an object has that name.
    """
    bucket_name, prefix = split_gcs(uri)
    client = client or _client(uri)
    with _gcs_errors(uri, f"bucket {bucket_name!r} not found"):
        listed = client.list_blobs(bucket_name, prefix=f"{prefix}/" if prefix else None)
        blobs = tuple(blob for blob in listed if not blob.name.endswith("/"))
        if blobs:
            return GcsListing(uri, blobs, prefix, single=False)
        if prefix:
            blob = client.bucket(bucket_name).get_blob(prefix)
            if blob is not None:
                parent = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
                return GcsListing(uri, (blob,), parent, single=True)
    what = "no object or folder with this name" if prefix else "bucket is empty"
    raise DataError(what, uri)


# ---------------------------------------------------------------------------------------------
# Transfers


class _CountingWriter:
    """A file wrapper that reports bytes as the client writes them (byte-level progress).

    The client seeks back to 0 when the server transcodes gzip objects and re-sends the whole
    object; progress is rewound then, so the bar never over-counts.
    """

    def __init__(self, fh: BinaryIO, report: Callable[[int], None]):
        self._fh = fh
        self._report = report
        self._written = 0

    def write(self, data: bytes) -> int:
        count = self._fh.write(data)
        self._written += len(data)
        self._report(len(data))
        return count

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._fh.seek(offset, whence)
        if position == 0 and self._written:
            self._report(-self._written)
            self._written = 0
        return position

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)


def _progress(total: int, desc: str) -> tuple[tqdm, Callable[[int], None]]:
    """A byte progress bar and a thread-safe way to advance it."""
    bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, disable=None)
    lock = threading.Lock()

    def advance(n: int) -> None:
        with lock:
            bar.update(n)

    return bar, advance


def _run_parallel(func: Callable[[_T], None], items: Sequence[_T], max_workers: int) -> None:
    """Run ``func`` over ``items`` on a thread pool; the first failure cancels what has not begun
    and is re-raised here (so the caller's error translation sees it)."""
    if max_workers < 1:
        raise ValueError(f"max_workers must be >= 1, got {max_workers}")
    with ThreadPoolExecutor(max_workers=min(max_workers, max(len(items), 1))) as pool:
        futures = [pool.submit(func, item) for item in items]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            future.cancel()
        for future in done:
            if future.exception() is not None:
                raise future.exception()  # type: ignore[misc]


def _download(
    listing: GcsListing, dest: Path, max_workers: int, client: Client
) -> list[tuple[Blob, Path]]:
    """Download every object of ``listing`` below ``dest``; each file appears only when complete."""
    pairs = [(blob, dest / listing.relative_path(blob)) for blob in listing.blobs]
    bar, advance = _progress(listing.total_bytes, f"download {listing.uri} ({len(pairs)} files)")

    def fetch(pair: tuple[Blob, Path]) -> None:
        blob, target = pair
        with atomic_path(target) as tmp, tmp.open("wb") as fh:
            blob.download_to_file(_CountingWriter(fh, advance), client=client)

    try:
        # An object deleted between listing and download is a 404 on that object.
        with _gcs_errors(listing.uri, "an object disappeared during download"):
            _run_parallel(fetch, pairs, max_workers)
    finally:
        bar.close()
    return pairs


def download_gcs_prefix(uri: str, dest: str | Path, *, max_workers: int = DEFAULT_WORKERS) -> Path:
    """Download every object under ``uri`` into ``dest``, keeping relative paths; return ``dest``.

    A URI naming one object puts that object at ``dest/<its basename>``. Each file is written
    atomically, but a failure can leave the files already finished: download into
    :func:`xdetox.files.atomic_dir` when the folder must be all-or-nothing.
    """
    dest = Path(dest)
    client = _client(uri)
    listing = list_gcs(uri, client)
    _download(listing, dest, max_workers, client)
    return dest


def fetch_to_local(
    uri_or_path: str | Path, tmpdir: str | Path, *, max_workers: int = DEFAULT_WORKERS
) -> Path:
    """A local path for a file or folder named by a local path or a ``gs://`` URI.

    Local paths are returned unchanged (no copy) after checking they exist. A ``gs://`` object is
    downloaded to ``<tmpdir>/<unique>/<basename>`` and a ``gs://`` folder to
    ``<tmpdir>/<unique>/<last path component>/…``: the name is kept because readers use it (an
    ``RTP_LX_EN.json`` file carries its language in its name), the unique folder keeps two
    sources with one basename apart. The returned path appears only once the download is complete.
    """
    if not is_gcs(uri_or_path):
        path = Path(uri_or_path)
        if not path.exists():
            raise DataError("no such file or folder", path)
        return path
    uri = str(uri_or_path)
    bucket_name, prefix = split_gcs(uri)
    client = _client(uri)
    listing = list_gcs(uri, client)
    Path(tmpdir).mkdir(parents=True, exist_ok=True)
    holder = Path(tempfile.mkdtemp(prefix="gcs-", dir=tmpdir))
    if listing.single:
        blob = listing.blobs[0]
        _download(listing, holder, max_workers, client)
        return holder / listing.relative_path(blob)
    target = holder / (PurePosixPath(prefix).name if prefix else bucket_name)
    with atomic_dir(target) as tmp:
        _download(listing, tmp, max_workers, client)
    return target


@contextlib.contextmanager
def local_copy(uri_or_path: str | Path, *, max_workers: int = DEFAULT_WORKERS) -> Iterator[Path]:
    """``with local_copy(source) as path:`` gives a local path (see :func:`fetch_to_local`).

    A downloaded copy is deleted when the block ends; a local path is left alone.
    """
    if not is_gcs(uri_or_path):
        yield fetch_to_local(uri_or_path, tempfile.gettempdir())
        return
    with tempfile.TemporaryDirectory(prefix="xdetox-gcs-") as tmp:
        yield fetch_to_local(uri_or_path, tmp, max_workers=max_workers)


def _local_files(src: Path) -> list[tuple[Path, str]]:
    """(local file, name relative to the upload prefix): a file keeps its basename."""
    if src.is_file():
        return [(src, src.name)]
    return [(p, p.relative_to(src).as_posix()) for p in sorted(src.rglob("*")) if p.is_file()]


def upload_gcs_prefix(src: str | Path, uri: str, *, max_workers: int = DEFAULT_WORKERS) -> int:
    """Upload a local file or folder under ``uri``; return the number of files uploaded.

    ``uri`` is always a folder: folder ``src/a/b.txt`` becomes ``<uri>/a/b.txt`` and file
    ``src`` becomes ``<uri>/<src name>``. Existing objects with the same names are replaced;
    others under ``uri`` are left alone. Nothing to upload (missing path, empty folder) is a
    :class:`DataError`, since a later download would fail far from the cause.
    """
    src = Path(src)
    if not src.exists():
        raise DataError("nothing to upload: no such file or folder", src)
    files = _local_files(src)
    if not files:
        raise DataError("nothing to upload: folder has no files", src)
    bucket_name, prefix = split_gcs(uri)
    client = _client(uri)
    bucket = client.bucket(bucket_name)
    total = sum(path.stat().st_size for path, _ in files)
    bar, advance = _progress(total, f"upload {uri} ({len(files)} files)")

    def put(item: tuple[Path, str]) -> None:
        path, rel = item
        name = f"{prefix}/{rel}" if prefix else rel
        bucket.blob(name).upload_from_filename(str(path), client=client)
        advance(path.stat().st_size)

    try:
        with _gcs_errors(uri, f"bucket {bucket_name!r} not found"):
            _run_parallel(put, files, max_workers)
    finally:
        bar.close()
    return len(files)
