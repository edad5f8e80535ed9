"""TRL pass-through: a config section reaches TRL's config dataclass without a copy per key.

TRL's trainer configs (``DPOConfig``, ``SFTConfig``, ``RLOOConfig``, ``GRPOConfig``) are
dataclasses extending transformers' ``TrainingArguments`` (https://huggingface.co/docs/trl/
dpo_trainer#trl.DPOConfig). Every field of our section whose name the dataclass also has
(``dataclasses.fields``) is passed as it is, and the section's free ``trl`` mapping passes any
other TRL option (``training.trl: {label_smoothing: 0.1}``), checked against the same field
names. A new TRL option therefore needs no code; our own keys (``method``, ``mode``, ``lora``,
``early_stopping_patience``, ...) are not TRL's and are never passed.

Kept apart from the section modules: it needs the TRL class, which only the training image
imports (``trl`` takes seconds to import, too slow for every config validation).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from xdetox.config.fields import NONE_TYPE, union_members
from xdetox.errors import ConfigError


def trl_fields(trl_class: type) -> dict[str, dataclasses.Field]:
    """The constructor fields of a TRL config dataclass, by name."""
    return {f.name: f for f in dataclasses.fields(trl_class) if f.init}


def _coerce(value: Any, field: dataclasses.Field) -> Any:
    """A whole float given for an int field becomes an int: KFP Struct parameters turn every
    number into a float on the way to the component (protobuf ``Value`` has one number type)."""
    members = [m for m in union_members(field.type) if m is not NONE_TYPE]
    whole = isinstance(value, float) and value.is_integer()
    return int(value) if whole and int in members and float not in members else value


def trl_kwargs(
    trl_class: type,
    sections: Mapping[str, BaseModel],
    *,
    options: str,
    defaults: Mapping[str, Any] | None = None,
    derived: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``trl_class``, later sources winning:

    ``defaults`` (our choices, a ``trl`` entry may change them), the fields of each section in
    ``sections`` (``{config key: section}``) that TRL also has (``None``: TRL's default), the
    ``trl`` mapping of the section at ``options``, then ``derived`` (computed from our own keys;
    a ``trl`` entry naming one is an error, as is one naming a field of a section or no TRL
    field). Errors are one line naming ``<options>.trl.<key>``.
    """
    fields = trl_fields(trl_class)
    kwargs = dict(defaults or {})
    ours: dict[str, str] = {}
    for key, section in sections.items():
        for name in type(section).model_fields:
            ours.setdefault(name, f"{key}.{name}")
            value = getattr(section, name)
            if name in fields and value is not None and not isinstance(value, BaseModel):
                kwargs[name] = value
    derived = dict(derived or {})
    for name, value in sections[options].trl.items():
        where = f"{options}.trl.{name}"
        if name not in fields:
            raise ConfigError(f"{where}: not an option of TRL's {trl_class.__name__}")
        if name in ours:
            raise ConfigError(f"{where}: set {ours[name]} instead")
        if name in derived:
            raise ConfigError(f"{where}: set by xdetox from its own keys, not settable")
        kwargs[name] = _coerce(value, fields[name])
    kwargs.update(derived)
    return kwargs


def build_trl_config(trl_class: type, kwargs: Mapping[str, Any], *, where: str) -> Any:
    """``trl_class(**kwargs)``; the ``ValueError`` TRL or transformers raise for a bad
    combination becomes one line naming ``where``."""
    try:
        return trl_class(**kwargs)
    except (ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        message = f"{where}: TRL's {trl_class.__name__} refused the options: {first}"
        raise ConfigError(message) from None
