"""Shared fixtures. Nothing here downloads anything: models are built from configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "pipelines" / "configs"

# Tests never reach the Hub; fail fast instead of waiting on the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One OpenMP thread for torch here and in the subprocesses tests start (they inherit the
# environment; torch reads it when it loads). The models are tiny: on a small machine shared
# with other work, spinning OpenMP threads contend, and two threads ran the generation tests
# seven times slower than one (78 s against 11 s on 2 cores).
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def recipe_paths() -> list[Path]:
    return sorted(p for p in CONFIGS.rglob("*.yaml"))
