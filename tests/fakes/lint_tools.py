"""The static checkers of the tools venv (hadolint, checkov, kubectl, …), shared by the
Docker and Kubernetes tests."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def tool(name: str) -> str:
    """Path of a tool from the tools venv; fail (not skip) with the fix when it is missing."""
    bin_dir = Path(os.environ.get("XDETOX_TOOLS_BIN", REPO / ".venv-tools" / "bin"))
    path = bin_dir / name
    if not path.is_file():
        pytest.fail(
            f"{name} not found in {bin_dir}: run `make tools` (creates .venv-tools from "
            "tools/lint-requirements.txt) or point XDETOX_TOOLS_BIN at its bin folder"
        )
    return str(path)


def tools_env(*needed: str) -> dict[str, str]:
    """Environment whose PATH starts with the tools venv (checkov calls kubectl itself)."""
    for name in needed:
        tool(name)
    env = dict(os.environ)
    env["PATH"] = str(Path(tool("checkov")).parent) + os.pathsep + env.get("PATH", "")
    return env


def reasons_precede_entries(config: Path, key: str) -> list[str]:
    """Entries of the YAML list ``key`` that have no comment line right above them."""
    lines = config.read_text().splitlines()
    missing = []
    inside = False
    for index, line in enumerate(lines):
        if re.match(rf"^{re.escape(key)}:", line):
            inside = True
            continue
        if inside and re.match(r"^\S", line):
            inside = False
        if inside and re.match(r"^\s*-\s*\S", line):
            above = lines[index - 1].strip()
            if not above.startswith("#") or len(above.lstrip("# ")) < 10:
                missing.append(line.strip())
    return missing
