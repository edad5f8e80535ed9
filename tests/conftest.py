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


@pytest.fixture
def recipe_paths() -> list[Path]:
    return sorted(p for p in CONFIGS.rglob("*.yaml"))
