"""The `ferret` entry point: discovers sub-commands and turns user errors into one line.

A `FerretError` (bad file, bad value, infeasible budget) prints `ferret CMD: error: ...` on
stderr and exits 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, NoReturn

import analysis.commands
from analysis.config_args import help_text
from planner.errors import FerretError

EXIT_USER_ERROR = 2


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show a default only when it says something: not None/False/empty, not already in the help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = help_text(action)
        silent = action.default is None or action.default is False or action.default in ([], "", argparse.SUPPRESS)
        if silent or "default" in text.lower() or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (`ferret plan: error: ...`), not usage + error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see --help)\n")


class CommandParser(OneLineParser):
    """A command's parser that adds the command's arguments when first used (to parse or to show
    help). `run`'s flags come from executor dataclasses, whose modules import torch: building
    them only for the command given keeps `ferret plan` from paying seconds for it."""

    def __init__(self, *args: Any, populate: Callable[[argparse.ArgumentParser], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._populate: Callable[[argparse.ArgumentParser], None] | None = populate

    def populated(self) -> CommandParser:
        if self._populate is not None:
            populate, self._populate = self._populate, None
            populate(self)
        return self

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        return super(CommandParser, self.populated()).parse_known_args(args, namespace)

    def format_help(self) -> str:
        return super(CommandParser, self.populated()).format_help()

    def format_usage(self) -> str:
        return super(CommandParser, self.populated()).format_usage()


def discover_commands() -> dict[str, ModuleType]:
    commands: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules(analysis.commands.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"analysis.commands.{info.name}")
        commands[module.NAME] = module
    return dict(sorted(commands.items()))


def build_parser(commands: dict[str, ModuleType]) -> OneLineParser:
    """The `ferret` parser; each command's arguments are added when that command is used."""
    parser = OneLineParser(
        prog="ferret",
        description="Plan, predict and run online continual learning under memory and compute budgets.",
        epilog="Sizes accept B/KiB/MiB/GiB (and KB/MB/GB), times ns/us/ms/s. Run 'ferret CMD --help' for details.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    for name, module in commands.items():
        cmd = sub.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=HelpFormatter,
            populate=module.add_arguments,
        )
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(discover_commands())
    args = parser.parse_args(argv)
    args._argv = list(sys.argv[1:] if argv is None else argv)  # a launcher re-runs this very command
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
