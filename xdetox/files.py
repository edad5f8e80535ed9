"""Reading and writing the files that pass between stages.

Every writer is atomic (temporary file in the same folder, then ``os.replace``) so that a
failed or killed stage never leaves a partial output behind for the next stage to trust.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from xdetox.errors import DataError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp/mkdtemp create 0600/0700; artifacts must stay readable by other container users.
_FILE_MODE = 0o666 & ~_umask()
_DIR_MODE = 0o777 & ~_umask()


def iter_jsonl(path: str | Path, *, skip_blank: bool = True) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, record)`` for each JSON object in a JSON-lines file.

    A line that is not a JSON object raises :class:`DataError` naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path)
    with path.open(encoding="utf-8") as fh:
        for number, raw in enumerate(fh, start=1):
            text = raw.strip()
            if not text:
                if skip_blank:
                    continue
                raise DataError("empty line", path, number)
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(f"not valid JSON ({exc.msg})", path, number) from None
            if not isinstance(record, dict):
                raise DataError(
                    f"expected a JSON object, got {type(record).__name__}", path, number
                )
            yield number, record


def read_jsonl(path: str | Path) -> list[dict]:
    """All records of a JSON-lines file (see :func:`iter_jsonl`)."""
    return [record for _, record in iter_jsonl(path)]


def require_fields(
    record: Mapping[str, Any], fields: Iterable[str], path: str | Path, line: int
) -> None:
    """Raise a :class:`DataError` naming file, line and field when a field is missing."""
    missing = [name for name in fields if name not in record]
    if missing:
        raise DataError(f"missing field(s) {', '.join(repr(m) for m in missing)}", path, line)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _FILE_MODE)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, _DIR_MODE)
        if path.exists():
            # KFP pre-creates some output paths; an empty or stale target is replaced whole.
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_jsonl(path: str | Path, records: Iterable[Mapping[str, Any]]) -> int:
    """Write records as JSON lines atomically; return how many were written."""
    count = 0
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any) -> None:
    """Write a JSON file atomically (indented, UTF-8)."""
    write_text(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")
