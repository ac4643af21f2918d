"""The `ferret` entry point: discovers sub-commands and turns user errors into one line.

A `FerretError` (bad file, bad value, infeasible budget) or an error of the file system
prints `ferret CMD: error: ...` on stderr and exits 2; SIGINT and SIGTERM print one line
(exit 130, 143) after the command's staging is cleaned up; any other exception is a bug and
keeps its traceback. What every command gets here, so a new command gets it too:

- the work limits (`--max-workers`, `--max-events`, ... from `planner.limits.WorkLimits`),
  set for the process before the command runs;
- its `--out` checked before any work (planner/output_safety.py): not an input, and for a
  folder output (`OUTPUT = "folder"`, the default) one that may be replaced as a whole.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, NoReturn

import analysis.commands
from analysis.config_args import add_config_arguments, config_values, help_text
from analysis.output import ferret_version
from executor.distributed.faults import tell_launcher
from planner.errors import FerretError
from planner.limits import WorkLimits, set_limits
from planner.output_safety import check_file_output, check_not_input, check_replaceable

EXIT_USER_ERROR = 2
LIMITS_TITLE = "work limits (a refusal names the one to raise)"


class Terminated(BaseException):
    """SIGTERM, raised like Ctrl-C (not caught by `except Exception`) so that every `finally`
    (staging clean-up) runs."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show a default only when it says something: not None/False/empty, not already in the help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = help_text(action)
        silent = action.default is None or action.default is False or action.default in ([], "", argparse.SUPPRESS)
        if silent or "default" in text.lower() or not action.option_strings:
            return text
        return text + f" (default: {as_typed(action.default)})".replace("%", "%%")


def as_typed(value: Any) -> str:
    """A default as a user would type it (`0.9,0.999`, not `(0.9, 0.999)`)."""
    if isinstance(value, tuple | list):
        return ",".join(as_typed(v) for v in value)
    return str(value)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (`ferret plan: error: ...`), not usage + error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, one_line(f"{self.prog}: error: {message} (see --help)") + "\n")


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
        epilog="Sizes accept B, KiB, MiB, GiB, TiB (binary), KB, MB, GB, TB (decimal); times ns, us, ms, s, min, h; "
        "rates N/s. Run 'ferret CMD --help' for details.",
    )
    parser.add_argument("--version", action="version", version=f"ferret {ferret_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    for name, module in commands.items():
        cmd = sub.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=HelpFormatter,
            populate=_with_limits(module.add_arguments),
        )
        cmd.set_defaults(_run=module.run, _output=getattr(module, "OUTPUT", "folder"))
    return parser


def _with_limits(add_arguments: Callable[[argparse.ArgumentParser], None]) -> Callable[[argparse.ArgumentParser], None]:
    def populate(parser: argparse.ArgumentParser) -> None:
        add_arguments(parser)
        add_config_arguments(parser, WorkLimits, title=LIMITS_TITLE)

    return populate


def _inputs(args: argparse.Namespace) -> Iterator[Path]:
    """Every argument that names an existing path: what the command may read, so that its
    output cannot be one of them. A path flag's value counts; so does a text value that looks
    like a path (a separator or a suffix, or after `trace:` and the like), but not a name such
    as `--model mlp` that happens to match a file."""
    for key, value in vars(args).items():
        if key.startswith("_") or key in ("out", "command"):
            continue
        for item in value if isinstance(value, list | tuple) else (value,):
            if isinstance(item, Path):
                candidates = [str(item)]
            elif isinstance(item, str):
                candidates = [text for text in (item, item.partition(":")[2]) if os.sep in text or "." in text]
            else:
                continue
            yield from (Path(c) for c in dict.fromkeys(candidates) if c and os.path.exists(c))


def check_out(args: argparse.Namespace) -> None:
    """The command's `--out`, checked before any work (see the module docstring)."""
    out = getattr(args, "out", None)
    if not isinstance(out, Path):
        return
    check_not_input(out, args._output, _inputs(args))
    if args._output == "folder":
        check_replaceable(out)
    else:
        check_file_output(out)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(discover_commands())
    args = parser.parse_args(argv)
    args._argv = list(sys.argv[1:] if argv is None else argv)  # a launcher re-runs this very command
    if args.command is None:
        parser.print_help()
        return EXIT_USER_ERROR
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        set_limits(WorkLimits(**config_values(args, WorkLimits)))
        check_out(args)
        return int(args._run(args) or 0)
    except FerretError as exc:
        return _fail(args.command, f"error: {exc}", EXIT_USER_ERROR)
    except OSError as exc:  # the file system's answer to a user's path: one line, not a bug
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(args.command, f"error: {where}{exc.strerror or exc}", EXIT_USER_ERROR)
    except MemoryError:
        return _fail(
            args.command,
            "error: out of memory: this work needs more than the machine has; ask for less",
            EXIT_USER_ERROR,
        )
    except Terminated:
        return _fail(args.command, "terminated", 128 + signal.SIGTERM)
    except KeyboardInterrupt:
        return _fail(args.command, "interrupted", 130)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
        set_limits(WorkLimits())


def _fail(command: str, message: str, code: int) -> int:
    if tell_launcher(one_line(message.removeprefix("error: "))):
        return code  # a rank of `launch_local`: the launcher says it, once, as its own line
    print(one_line(f"ferret {command}: {message}"), file=sys.stderr)
    return code


def one_line(text: str) -> str:
    """`text` with every character that could break or hide a line (a newline or other control
    character, from a file name or a JSON key the user gave) written as an escape."""
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii") for ch in text)


if __name__ == "__main__":
    raise SystemExit(main())
