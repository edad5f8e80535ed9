"""Compile-time shape versus runtime values.

A pipeline's graph (which tasks exist, how they connect, which are cached) is fixed when it is
compiled; its parameters only change the values that flow through that graph. KFP evaluates
no Python at run time, so a runtime parameter cannot add or remove a task ("Control flow",
https://www.kubeflow.org/docs/components/pipelines/user-guides/core-functions/control-flow/).
Each pipeline therefore declares the recipe settings its graph depends on as a list of
:class:`ShapeKey`; ``--param`` refuses to change one of them (say ``training.method``, which
decides whether preference pairs are prepared) and points to ``--config``/``--set``, which
compile a new version with the other graph.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from xdetox.errors import ConfigError


def same(value: Any) -> Any:
    """The whole value shapes the graph."""
    return value


def is_gcs(value: Any) -> bool:
    """A ``gs://`` model is imported (``dsl.importer``); any other source is loaded (copied)."""
    return isinstance(value, str) and value.startswith("gs://")


@dataclass(frozen=True)
class ShapeKey:
    """A recipe setting that decides the graph, and where a run's parameters carry it."""

    key: str  # the config key, as --set names it (e.g. training.method)
    parameter: str | None = None  # the pipeline parameter holding it; None: compiled in only
    path: tuple[str, ...] = ()  # the key's place inside a dict parameter
    shape: Callable[[Any], Any] = same  # the part of the value the graph depends on


def _lookup(value: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def check_shape(
    item: str, name: str, value: Any, compiled: Any, keys: Sequence[ShapeKey]
) -> None:
    """Refuse a runtime value of parameter ``name`` that would need another graph.

    ``compiled`` is the parameter's default in the compiled spec (the recipe's value).
    """
    for key in keys:
        if key.parameter != name:
            continue
        if key.shape(_lookup(value, key.path)) != key.shape(_lookup(compiled, key.path)):
            raise ConfigError(
                f"--param {item!r}: {key.key} shapes the pipeline's graph, which is fixed at "
                f"compile time; set it with --config or --set {key.key}=... instead"
            )
