"""The `ferret` entry point: discovers sub-commands and turns user errors into one line.

A `FerretError` (bad file, bad value, infeasible budget) prints `ferret CMD: error: ...` on
stderr and exits 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

import analysis.commands
from planner.errors import FerretError

EXIT_USER_ERROR = 2


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show a default only when it says something: not None/False/empty, not already in the help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        silent = action.default is None or action.default is False or action.default in ([], "", argparse.SUPPRESS)
        if silent or "default" in text.lower():
            return text
        return super()._get_help_string(action) or text


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (`ferret plan: error: ...`), not usage + error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def discover_commands() -> dict[str, ModuleType]:
    commands: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules(analysis.commands.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"analysis.commands.{info.name}")
        commands[module.NAME] = module
    return dict(sorted(commands.items()))


def build_parser(commands: dict[str, ModuleType]) -> OneLineParser:
    parser = OneLineParser(
        prog="ferret",
        description="Plan, predict and run online continual learning under memory and compute budgets.",
        epilog="Sizes accept B/KiB/MiB/GiB (and KB/MB/GB), times ns/us/ms/s. Run 'ferret CMD --help' for details.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name, module in commands.items():
        cmd = sub.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=HelpFormatter,
        )
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(discover_commands())
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return int(args._run(args) or 0)
    except FerretError as exc:
        print(f"ferret {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"ferret {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
