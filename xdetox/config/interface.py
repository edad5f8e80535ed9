"""One typed interface per stage: the pydantic config section is the single source of a stage's
keys, from which the KFP component's parameter docs and the command's flags are derived.

* Validation: :func:`xdetox.config.validate_section` (the component and the command read the
  same section class).
* Component docs: :func:`documented`, applied under ``@dsl.component``, writes a Google-style
  ``Args:``/``Returns:`` block into the function's docstring. KFP 2.17 parses that block with
  ``docstring_parser`` and stores each entry as ``inputDefinitions.parameters.<name>.description``
  (artifacts: ``inputDefinitions.artifacts``, outputs: ``outputDefinitions``) in the compiled
  component spec, which the KFP UI shows (https://www.kubeflow.org/docs/components/pipelines/
  user-guides/components/lightweight-python-components/). A ``dict`` parameter is documented
  from its section's fields (dotted key, type, default, description); the decorator line itself
  never reaches the container, because KFP ships the function's source from its ``def`` line.
* Flags: :func:`add_section_flags` adds one argparse flag per scalar field of a section
  (bool → ``--x/--no-x``, Literal → choices; help from the field's description);
  :func:`flag_overrides` gives the ``{dotted key: value}`` of the flags that were given, which
  the commands apply after the config files and ``--set`` (so a flag wins).
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

from xdetox.config.fields import scalar_parser, section_fields, section_path

F = TypeVar("F", bound=Callable[..., Any])
INDENT = "    "
# argparse ``dest`` prefix of derived flags: what flag_overrides collects, and no clash with the
# commands' own attributes (``args.model``, ``args.output``).
FLAG_DEST = "config_flag:"


# -- component docs -----------------------------------------------------------------------------


def section_description(name: str, model: type[BaseModel], note: str = "") -> str:
    """The description of a ``dict`` parameter that carries the section ``model``; ``note``
    is a sentence about how this component uses it."""
    path = section_path(model) or name
    own_doc = model.__dict__.get("__doc__") or ""  # not inherited from pydantic's BaseModel
    lead = " ".join(inspect.cleandoc(own_doc).split("\n\n")[0].split())
    lines = [
        f"The ``{path}`` config section ({model.__name__}) as a dict; missing keys take their "
        f"defaults, unknown keys are an error.{' ' + lead if lead else ''}"
        f"{' ' + note if note else ''} Keys:"
    ]
    for field in section_fields(model):
        text = f": {field.description}" if field.description else ""
        lines.append(f"- {field.key} ({field.type}, default {field.default}){text}")
    return "\n".join(lines)


def _item(name: str, text: str) -> list[str]:
    first, *rest = text.split("\n")
    return [f"{INDENT}{name}: {first}", *(f"{INDENT * 2}{line}" for line in rest)]


def _is_output(annotation: Any) -> bool:
    from kfp.dsl.types.type_annotations import is_artifact_wrapped_in_Output

    if isinstance(annotation, str):  # postponed annotations
        return annotation.startswith("Output[")
    return is_artifact_wrapped_in_Output(annotation)


Described = str | type[BaseModel] | tuple[type[BaseModel], str]


def _describe(name: str, value: Described) -> str:
    if isinstance(value, str):
        return value
    model, note = value if isinstance(value, tuple) else (value, "")
    return section_description(name, model, note)


def documented(returns: str | None = None, **parameters: Described) -> Callable[[F], F]:
    """Write every parameter's description into the component function's docstring.

    ``parameters``: for each function parameter, a short description (artifacts, strings), the
    config section class its ``dict`` carries, or (section class, a sentence on how this
    component uses it). ``returns``: the returned value's description.
    Used under ``@dsl.component``; a parameter left undocumented (or a name that is not one) is
    a ``TypeError`` when the module is imported, so the compiled spec documents every input.
    """

    def apply(func: F) -> F:
        signature = inspect.signature(func)
        names = list(signature.parameters)
        missing = [n for n in names if n not in parameters]
        unknown = [n for n in parameters if n not in names]
        returns_value = signature.return_annotation not in (inspect.Signature.empty, None)
        if missing or unknown or returns_value != (returns is not None):
            raise TypeError(
                f"@documented on {func.__name__}: undocumented {missing}, unknown {unknown}, "
                f"returns {'documented' if returns else 'undocumented'} "
                f"(the function {'returns' if returns_value else 'returns nothing'})"
            )
        doc = inspect.cleandoc(func.__doc__ or "")
        if "Args:" in doc or "Returns:" in doc:
            raise TypeError(f"@documented on {func.__name__}: the docstring has its own Args")
        inputs, outputs = [doc, "", "Args:"], []
        for name in names:
            text = _describe(name, parameters[name])
            target = outputs if _is_output(signature.parameters[name].annotation) else inputs
            target.extend(_item(name, text))
        if returns is not None:
            outputs.extend(_item("Output", returns))  # KFP names a single return "Output"
        # KFP reads outputs' descriptions from the Returns section only.
        func.__doc__ = "\n".join(inputs + (["", "Returns:", *outputs] if outputs else [])) + "\n"
        return func

    return apply


# -- command-line flags -------------------------------------------------------------------------


def add_section_flags(
    parser: argparse.ArgumentParser,
    model: type[BaseModel],
    key: str | None = None,
    *,
    rename: Mapping[str, str] | None = None,
    exclude: Iterable[str] = (),
    only: Iterable[str] | None = None,
    flag_prefix: str = "",
) -> list[str]:
    """Add ``--<field>`` for every scalar field of ``model`` (at ``key`` in the config, by
    default where the root config holds it); returns the flags added.

    ``rename``: field → flag for names kept from before (``max_new_tokens`` → ``--max-tokens``);
    ``exclude``/``only``: fields left out / the only ones added; ``flag_prefix``: e.g.
    ``classifier-`` for a nested section. Lists, mappings and nested sections stay ``--set``.
    """
    key = key or section_path(model)
    if key is None:
        raise ValueError(f"{model.__name__} is not a section of the config; pass its key")
    rename = dict(rename or {})
    exclude = set(exclude)
    chosen = set(only) if only is not None else None
    wrong = (exclude | (chosen or set()) | set(rename)) - set(model.model_fields)
    if wrong:
        raise ValueError(f"{model.__name__} has no field {sorted(wrong)}")
    added = []
    for name, info in model.model_fields.items():
        parsed = scalar_parser(info.annotation)
        if name in exclude or (chosen is not None and name not in chosen) or parsed is None:
            continue
        flag = rename.get(name) or "--" + (flag_prefix + name).replace("_", "-")
        kind, choices = parsed
        description = (info.description or "").replace("%", "%%")
        options: dict[str, Any] = {
            "dest": f"{FLAG_DEST}{key}.{name}",
            "default": None,
            "help": f"{description} [{key}.{name}]".strip(),
        }
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options.update(type=kind, metavar=name.upper())
            if choices:
                options.update(choices=choices, metavar=None)
        parser.add_argument(flag, **options)
        added.append(flag)
    return added


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``{dotted config key: value}`` of the derived flags that were given on the command line."""
    return {
        dest.removeprefix(FLAG_DEST): value
        for dest, value in vars(args).items()
        if dest.startswith(FLAG_DEST) and value is not None
    }
