"""What a config section says about its own keys: dotted name, type, default and description.

Everything is read from pydantic's ``model_fields`` (https://docs.pydantic.dev/latest/concepts/
fields/), so the section class is the one place a key is declared and described; the component
docs and the command-line flags (``xdetox.config.interface``) are derived from it.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

NONE_TYPE = type(None)
SCALARS = (bool, int, float, str)


@dataclass(frozen=True)
class FieldDoc:
    """One leaf key of a section; ``key`` is dotted below the section (``vllm.dtype``)."""

    key: str
    type: str
    default: str
    description: str


def submodel(annotation: Any) -> type[BaseModel] | None:
    """The section class when ``annotation`` is a nested section (not Optional, not a dict)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def union_members(annotation: Any) -> tuple[Any, ...]:
    """``int | None`` → (int, NoneType); anything that is not a union → (annotation,)."""
    if get_origin(annotation) in (Union, types.UnionType):
        return get_args(annotation)
    return (annotation,)


def type_name(annotation: Any) -> str:
    """A short readable type: ``int | None``, ``xg | rtp``, ``list[str]``."""
    if annotation is NONE_TYPE:
        return "None"
    origin = get_origin(annotation)
    if origin is Literal:
        return " | ".join(str(value) for value in get_args(annotation))
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(member) for member in get_args(annotation))
    if origin is not None:
        inner = ", ".join(type_name(arg) for arg in get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def default_text(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "None"  # as the types and descriptions write it
    try:  # as a recipe would write it: auto, true, [en, fr]
        text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**6)
    except yaml.YAMLError:
        return repr(value)
    return text.removesuffix("...\n").strip()  # a bare scalar ends its YAML document


def section_fields(model: type[BaseModel], prefix: str = "") -> list[FieldDoc]:
    """Every leaf key of ``model``; nested sections are flattened into dotted keys."""
    docs: list[FieldDoc] = []
    for name, info in model.model_fields.items():
        nested = submodel(info.annotation)
        if nested is not None:
            docs.extend(section_fields(nested, f"{prefix}{name}."))
            continue
        docs.append(
            FieldDoc(
                key=prefix + name,
                type=type_name(info.annotation),
                default=default_text(info),
                description=" ".join((info.description or "").split()),
            )
        )
    return docs


def section_path(model: type[BaseModel]) -> str | None:
    """Where ``model`` sits in the whole config (``interpret.probe``), or None."""
    from xdetox.config.root import Config  # late: root imports every section module

    todo: list[tuple[type[BaseModel], str]] = [(Config, "")]
    while todo:
        current, prefix = todo.pop(0)
        for name, info in current.model_fields.items():
            nested = submodel(info.annotation)
            if nested is model:
                return prefix + name
            if nested is not None:
                todo.append((nested, f"{prefix}{name}."))
    return None


def yaml_scalar(text: str) -> Any:
    """A flag value for a key of several scalar types (``3`` or ``mean``), read as YAML."""
    return yaml.safe_load(text)


def scalar_parser(annotation: Any) -> tuple[Any, tuple[Any, ...] | None] | None:
    """How argparse reads a scalar key: (type, choices), or None when the key is not a scalar
    (lists, mappings, nested sections are set with ``--set``)."""
    members = [m for m in union_members(annotation) if m is not NONE_TYPE]
    choices: list[Any] = []
    kinds: set[Any] = set()
    for member in members:
        if get_origin(member) is Literal:
            values = [v for v in get_args(member) if v is not None]
            choices.extend(values)
            kinds.update(type(v) for v in values)
        elif member in SCALARS:
            kinds.add(member)
        else:
            return None
    if len(kinds) != 1:
        return (yaml_scalar, None) if kinds else None
    kind = kinds.pop()
    only_literals = all(get_origin(m) is Literal for m in members)
    return kind, tuple(choices) if only_literals and choices else None
