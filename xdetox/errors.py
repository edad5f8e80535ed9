"""User-facing errors: one line that names the file, line or config key at fault."""

from __future__ import annotations

from pathlib import Path


class XdetoxError(Exception):
    """An error caused by the user's input. The CLI prints it as one line, without traceback."""


class ConfigError(XdetoxError):
    """A missing, unknown or malformed configuration key."""


class DataError(XdetoxError):
    """A missing or malformed data file, line or field."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")
        self.path = None if path is None else str(path)
        self.line = line
