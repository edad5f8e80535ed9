"""The ``xdetox`` command line: run/compile pipelines and run each stage alone."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import shutil
import sys
import textwrap
import traceback
from types import ModuleType
from typing import Any

from xdetox import __version__
from xdetox.errors import XdetoxError


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        action="append",
        metavar="FILE",
        help="YAML recipe; repeat to merge several (later wins). Default: the embedded toy recipe.",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key, e.g. --set training.beta=0.2 (value parsed as YAML)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


# Pipelines and stages first; any other `xdetox/cli/*_commands.py` module (one per family of
# stages) registers itself after them.
_FIRST = ("pipeline_commands", "stage_commands", "cluster_commands")

# How `xdetox --help` groups the commands: every registered command in exactly one group
# (tests/test_cli_help.py checks both ways), in the order listed.
COMMAND_GROUPS: dict[str, tuple[str, ...]] = {
    "pipelines": ("run", "interpret-run", "compile"),
    "stages": ("toy-model", "prepare-data", "make-pairs", "merge", "generate", "report"),
    "training": ("train", "dpo", "sft", "ppo", "rloo", "grpo"),
    "scoring": ("score", "metrics", "agreement"),
    "interpretability": ("probe", "value-vectors", "intervene", "activations", "alignment"),
    "explore": ("compare",),
    "cluster": ("submit", "schedule", "runs"),
}
_OTHER = "other"  # a command missing from the table still shows, here


def command_modules() -> list[ModuleType]:
    import xdetox.cli as package

    found = sorted(
        info.name
        for info in pkgutil.iter_modules(package.__path__)
        if info.name.endswith("_commands")
    )
    names = [n for n in _FIRST if n in found] + [n for n in found if n not in _FIRST]
    return [importlib.import_module(f"xdetox.cli.{name}") for name in names]


class _Commands:
    """The subparsers action as the command modules see it: it records each command's help
    line for the grouped listing (argparse can list subcommands only in one flat block)."""

    def __init__(self, action: Any) -> None:
        self._action = action
        self.helps: dict[str, str] = {}

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        self.helps[name] = kwargs.get("help") or ""
        return self._action.add_parser(name, **kwargs)


def grouped_commands(helps: dict[str, str]) -> dict[str, list[str]]:
    """``{group: [command, ...]}`` of the registered commands, in COMMAND_GROUPS' order."""
    groups = {
        group: [name for name in names if name in helps] for group, names in COMMAND_GROUPS.items()
    }
    listed = {name for names in COMMAND_GROUPS.values() for name in names}
    groups[_OTHER] = [name for name in helps if name not in listed]
    return {group: names for group, names in groups.items() if names}


def _help_width() -> int:
    return max(min(shutil.get_terminal_size().columns, 100) - 2, 40)


def _command_listing(helps: dict[str, str]) -> str:
    width = _help_width()
    column = 2 + max(len(name) for name in helps) + 2
    lines = ["commands:"]
    for group, names in grouped_commands(helps).items():
        lines.append(f"  {group}:")
        for name in names:
            wrapped = textwrap.wrap(helps[name], max(width - column - 2, 30)) or [""]
            lines.append(f"    {name:<{column - 2}}{wrapped[0]}")
            lines.extend(" " * (column + 2) + more for more in wrapped[1:])
    lines.append("")
    lines.append("'xdetox COMMAND --help' shows a command's flags.")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xdetox",
        usage="xdetox [-h] [--version] COMMAND ...",
        description=textwrap.fill(
            "Detoxify language models with preference tuning and measure, language by "
            "language, what that did. Runs locally on KFP's local runner or compiles for a "
            "Kubeflow cluster.",
            _help_width(),
        ),
        # Keeps the epilog's layout (the grouped commands); the description is wrapped here.
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"xdetox {__version__}")
    # The flat listing is suppressed; the epilog lists the commands by group instead. (prog:
    # the commands' own usage lines would otherwise start with the usage string above.)
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, help=argparse.SUPPRESS, prog="xdetox"
    )
    commands = _Commands(sub)
    for module in command_modules():
        module.register(commands, _common)
    parser.epilog = _command_listing(commands.helps)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if not args.debug else logging.DEBUG, format="%(message)s"
    )
    try:
        args.handler(args)
    except XdetoxError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"xdetox: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xdetox: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # anything else is a bug or an environment problem
        if args.debug:
            traceback.print_exc()
        else:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            print(
                f"xdetox: error: {type(exc).__name__}: {first} (rerun with --debug for details)",
                file=sys.stderr,
            )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
