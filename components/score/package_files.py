"""Data files of the pinned PyPI packages behind the ``jigsaw`` and ``wordlist`` scorers.

The packages are installed by the ``real`` extra (``pip install 'xdetox[real]'``) but their code
is never imported: ``toxic_classifier/__init__.py`` of ``toxic-comment-classifier==0.3.0``
imports TensorFlow, which we neither need nor want. The package folder is found with
:func:`importlib.util.find_spec` on the top-level name, which locates without executing it, and
every file read is checked against a SHA-256 pinned here, so a different release (other weights,
another word list) cannot silently change what our scores mean.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from xdetox.errors import ConfigError, DataError
from xdetox.packages import install_hint


@dataclass(frozen=True)
class PinnedFile:
    """One file of a pinned package: where it lives and what its bytes must hash to."""

    distribution: str  # the PyPI name and version, for messages and score records
    module: str  # the top-level import name holding the file
    relative: str  # path inside that package folder
    sha256: str


def package_dir(module: str, distribution: str) -> Path:
    """The folder of the installed top-level package ``module`` (not imported)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise ConfigError(
            f"the package {distribution} (module {module!r}) is not installed: "
            f"{install_hint(distribution)}"
        )
    return Path(locations[0])


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, expected: str, distribution: str) -> Path:
    """``path`` if its SHA-256 is ``expected``; a one-line :class:`DataError` otherwise."""
    actual = sha256_of(path)
    if actual != expected:
        raise DataError(
            f"sha256 {actual[:16]}… does not match the pinned {expected[:16]}… of "
            f"{distribution}; refusing to use it (reinstall with {install_hint(distribution)})",
            path,
        )
    return path


def locate(pinned: PinnedFile) -> Path:
    """The verified path of ``pinned`` in its installed package."""
    path = package_dir(pinned.module, pinned.distribution) / pinned.relative
    if not path.is_file():
        raise ConfigError(
            f"{pinned.distribution} is installed without {pinned.relative}: "
            f"{install_hint(pinned.distribution)}"
        )
    return verify(path, pinned.sha256, pinned.distribution)
