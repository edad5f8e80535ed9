"""``--param NAME=VALUE``: runtime parameters of one run, checked against the compiled spec.

``--set`` changes the recipe, hence the uploaded version and its defaults; ``--param`` changes
one run only and shows in the KFP UI as that run's parameters. Values are parsed as YAML.

A dict parameter (``training``, ``generation`` …) is sent whole by KFP, so a partial value would
silently drop the recipe's other keys in favour of code defaults. Dotted names and mappings are
therefore merged over the version's default: ``--param training.beta=0.2`` changes only beta.
Where the registry knows the config section behind a dict parameter, the merged value is
validated with it, so a typo fails here rather than hours later on the cluster. A value that
would need another graph (a pipeline's shape keys, :mod:`xdetox.pipelines.shape_keys`) is
refused: those settings are compiled in.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import yaml
from pydantic import BaseModel

from xdetox.config import validate_section
from xdetox.errors import ConfigError
from xdetox.pipelines.shape_keys import ShapeKey, check_shape

_TYPES: dict[str, tuple[type, ...]] = {
    "STRING": (str,),
    "NUMBER_INTEGER": (int,),
    "NUMBER_DOUBLE": (int, float),
    "BOOLEAN": (bool,),
    "LIST": (list,),
    "STRUCT": (dict,),
}


def spec_parameters(spec: dict) -> dict[str, dict]:
    """The pipeline's input parameters: name → {parameterType, defaultValue?, …}."""
    return spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})


def _deep_merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _parse_value(item: str, raw: str) -> Any:
    try:
        return yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        raise ConfigError(f"--param {item!r}: value is not valid YAML") from None


def _coerce_number(value: Any, kind: str) -> Any:
    # YAML 1.1 reads "1e-5" as a string; a number was meant where the parameter is numeric.
    if isinstance(value, str) and kind in ("NUMBER_DOUBLE", "NUMBER_INTEGER"):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if kind == "NUMBER_INTEGER" and number.is_integer() else number
    return value


def _check_type(item: str, value: Any, kind: str) -> None:
    allowed = _TYPES.get(kind)
    # bool is an int in Python; KFP keeps them apart.
    wrong_bool = isinstance(value, bool) and bool not in (allowed or ())
    if allowed and (wrong_bool or not isinstance(value, allowed)):
        raise ConfigError(
            f"--param {item!r}: expected {kind.lower().replace('_', ' ')}, "
            f"got {type(value).__name__}"
        )


def parse_params(
    items: list[str],
    spec: dict,
    sections: dict[str, type[BaseModel]] | None = None,
    shape_keys: Sequence[ShapeKey] = (),
) -> dict[str, Any]:
    """Runtime parameters from ``--param`` items; only the parameters named are returned."""
    declared = spec_parameters(spec)
    params: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--param {item!r}: expected NAME=VALUE")
        key, raw = item.split("=", 1)
        name, *path = [p for p in key.strip().split(".") if p] or [""]
        if name not in declared:
            known = ", ".join(sorted(declared))
            raise ConfigError(f"--param {item!r}: unknown parameter {name!r} (known: {known})")
        kind = declared[name].get("parameterType", "")
        value = _parse_value(item, raw)
        if path or (kind == "STRUCT" and isinstance(value, dict)):
            if kind != "STRUCT":
                raise ConfigError(f"--param {item!r}: {name} is not a dict parameter")
            current = params.get(name, declared[name].get("defaultValue") or {})
            for part in reversed(path):
                value = {part: value}
            value = _deep_merge(current, value)
        value = _coerce_number(value, kind)
        _check_type(item, value, kind)
        if sections and name in sections:
            # Send the validated form: "1e-5" (a string to YAML 1.1) becomes a number.
            model = validate_section(sections[name], value, f"--param {name}")
            value = model.model_dump(mode="json", exclude_none=True)
        check_shape(item, name, value, declared[name].get("defaultValue"), shape_keys)
        params[name] = value
    return params
