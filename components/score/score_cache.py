"""A persistent cache of API scores (sqlite), so no text is ever paid for twice.

Why: at the Perspective API's one query per second, scoring is the slowest stage of a run, and
the same text comes back often: a rerun after a failure, a retried KFP task, a tuned model that
repeats the base model's continuation, an empty or stock phrase. Each answer is stored under
``sha256(text, language, sorted attributes)`` as soon as its batch returns.

Durability: the database is in WAL mode and every batch is one committed transaction, so a
process killed at any moment loses at most the batch in flight and never leaves a half-written
entry; the rerun finds every committed answer and asks only for the rest. ``synchronous=NORMAL``
makes a commit survive the death of the process (not a power cut, which costs a few answers).

What is stored: the API's answers only: scores, and attributes the API declared unsupported for
the language (with the reason). Transient failures (timeouts, 5xx, 429 after all retries) are
never cached: the next run tries again.

Several processes may share one cache file on a local disk (sqlite locks it); network file
systems with unreliable locks (NFS, GCS FUSE) are not safe for sqlite.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from xdetox.errors import ConfigError

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    key TEXT PRIMARY KEY,
    language TEXT NOT NULL,
    attributes TEXT NOT NULL,
    scores TEXT NOT NULL,
    errors TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def cache_key(text: str, language: str, attributes: Iterable[str]) -> str:
    """sha256 of the text, the (API) language and the sorted requested attributes."""
    payload = json.dumps([text, language, sorted(set(attributes))], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ScoreCache:
    """Key → (scores, errors) in ``<directory>/<name>-v1.sqlite3``."""

    def __init__(self, directory: str | Path, name: str = "perspective") -> None:
        directory = Path(directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"scoring.cache_dir: cannot create {directory} ({exc.strerror or exc})"
            ) from None
        self.path = directory / f"{name}-v{SCHEMA_VERSION}.sqlite3"
        try:
            # isolation_level=None: transactions are opened and committed explicitly below.
            self._conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigError(f"scoring.cache_dir: cannot open {self.path} ({exc})") from None

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[dict, dict]]:
        """The cached entries among ``keys``: ``{key: (scores, errors)}``."""
        found: dict[str, tuple[dict, dict]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):  # stay under sqlite's variable limit
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                f"SELECT key, scores, errors FROM scores WHERE key IN ({marks})", chunk
            )
            for key, scores, errors in rows:
                found[key] = (json.loads(scores), json.loads(errors))
        return found

    def put_many(self, entries: Iterable[tuple[str, str, Sequence[str], Mapping, Mapping]]) -> int:
        """Store ``(key, language, attributes, scores, errors)`` entries in one transaction."""
        rows = [
            (
                key,
                language,
                json.dumps(sorted(set(attributes))),
                json.dumps(dict(scores), sort_keys=True),
                json.dumps(dict(errors), sort_keys=True),
                time.time(),
            )
            for key, language, attributes, scores, errors in entries
        ]
        if not rows:
            return 0
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany(
                "INSERT OR REPLACE INTO scores (key, language, attributes, scores, errors, "
                "created) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return len(rows)

    def __len__(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0]

    def close(self) -> None:
        self._conn.close()
