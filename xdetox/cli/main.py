"""The ``xdetox`` command line: run/compile pipelines and run each stage alone."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
import traceback
from types import ModuleType

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


# Pipelines and stages first, in the order `xdetox --help` lists them; any other
# `xdetox/cli/*_commands.py` module (one per family of stages) registers itself after them.
_FIRST = ("pipeline_commands", "stage_commands", "cluster_commands")


def command_modules() -> list[ModuleType]:
    import xdetox.cli as package

    found = sorted(
        info.name
        for info in pkgutil.iter_modules(package.__path__)
        if info.name.endswith("_commands")
    )
    names = [n for n in _FIRST if n in found] + [n for n in found if n not in _FIRST]
    return [importlib.import_module(f"xdetox.cli.{name}") for name in names]


def build_parser() -> argparse.ArgumentParser:

    parser = argparse.ArgumentParser(
        prog="xdetox",
        description=(
            "Detoxify language models with preference tuning and measure, language by "
            "language, what that did. Runs locally on KFP's local runner or compiles for a "
            "Kubeflow cluster."
        ),
    )
    parser.add_argument("--version", action="version", version=f"xdetox {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in command_modules():
        module.register(sub, _common)
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
