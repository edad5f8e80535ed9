"""Shared fixtures. Nothing here downloads anything: models are built from configs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.gcs_server import HOST, FakeGcsServer, start_fake_gcs_server

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


@pytest.fixture(scope="module")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGcsServer]:
    """One fake-gcs-server for the module; STORAGE_EMULATOR_HOST points at it meanwhile."""
    try:
        server = start_fake_gcs_server(tmp_path_factory.mktemp("fake-gcs"), backend="memory")
    except RuntimeError as exc:
        pytest.fail(f"fake-gcs-server could not start: {exc}", pytrace=False)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("STORAGE_EMULATOR_HOST", server.url)
            mp.setenv("NO_PROXY", HOST)  # requests must talk to the server directly
            mp.setenv("no_proxy", HOST)
            yield server
    finally:
        server.stop()
