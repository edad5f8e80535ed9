"""Typed configuration: YAML recipes, merged in order, with ``--set key=value`` overrides.

Hyperparameters (``data``, ``training``, ``generation``, ``scoring``, ``metrics``) are kept apart
from infrastructure (``cluster``), as in torchtune and the alignment-handbook, so a recipe can be
combined with any cluster file: ``--config recipe.yaml --config cluster.yaml``.

Every error names the file and the dotted key at fault, in one line.
"""

from __future__ import annotations

import copy
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from xdetox.config.root import Config
from xdetox.errors import ConfigError

# The shipped recipes are package data of ``xdetox.pipelines`` (``pipelines/configs/`` in the
# repository), read through importlib.resources so an installed wheel finds them too.
RECIPES_PACKAGE = "xdetox.pipelines"
DEFAULT_RECIPE = "toy.yaml"


def shipped_recipe(name: str) -> Traversable:
    """A recipe that ships with the package, by name: ``xg-mgpt.yaml``, ``cluster/gke-a100``."""
    name = name.removeprefix("pipelines/configs/")
    if not name.endswith((".yaml", ".yml")):
        name += ".yaml"
    return resources.files(RECIPES_PACKAGE).joinpath("configs", *name.split("/"))


def resolve_config_path(path: str | Path) -> Path | Traversable:
    """A file on disk when it exists, else the shipped recipe of that name, else the path
    (whose absence :func:`load_config` reports)."""
    local = Path(path)
    if local.is_file():
        return local
    shipped = shipped_recipe(str(path))
    return shipped if shipped.is_file() else local


def _format_validation_error(exc: ValidationError, source: str) -> str:
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "<root>"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{source}: {key}: {msg}{more}"


def to_params(section: BaseModel) -> dict:
    """A config section as a KFP pipeline parameter (a Struct, which cannot hold nulls).

    Dropping ``None`` is lossless because every optional field defaults to ``None``;
    a test checks the round trip for every shipped recipe.
    """
    return section.model_dump(exclude_none=True)


def validate_section(model: type[BaseModel], data: Any, source: str) -> Any:
    """Validate one config section (e.g. the ``training`` dict a component receives)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source)) from None


def _deep_merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path | Traversable) -> dict:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def parse_override(item: str) -> tuple[list[str], Any]:
    """``training.beta=0.2`` → (["training", "beta"], 0.2); the value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    out = copy.deepcopy(data)
    for item in overrides:
        parts, value = parse_override(item)
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def load_config(
    paths: list[str | Path] | None = None, overrides: list[str] | None = None
) -> Config:
    """Merge YAML files in order (the embedded toy recipe when none), apply overrides, validate.

    A path that is not a file names a shipped recipe (``xg-mgpt.yaml``, ``cluster/gke-a100``).
    """
    files = [resolve_config_path(p) for p in (paths or [DEFAULT_RECIPE])]
    merged: dict = {}
    for path in files:
        merged = _deep_merge(merged, _read_yaml(path))
    merged = apply_overrides(merged, overrides or [])
    source = ", ".join(str(p) for p in files) + (" + --set" if overrides else "")
    return validate_section(Config, merged, source)
