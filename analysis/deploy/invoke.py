"""Run a `ferret` command from inside another one, its console output going to a log file.

Deploy chains profile → simulate → run → calibrate → validate; each step is exactly the
command a user would type (the same parser, defaults and outputs), not a second copy of it.
"""

from __future__ import annotations

import contextlib
import shlex
from pathlib import Path

from planner.errors import FerretError


def invoke(command: str, argv: list[str], log: Path) -> None:
    from analysis.cli import build_parser, discover_commands

    parser = build_parser(discover_commands())
    args = parser.parse_args([command, *argv])
    args._argv = [command, *argv]  # as `analysis.cli.main` records it: a launcher re-runs this command
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as f, contextlib.redirect_stdout(f):
        print(f"$ ferret {command} {shlex.join(argv)}", flush=True)
        code = int(args._run(args) or 0)
    if code:
        raise FerretError(f"ferret {command} exited {code}; its output is in {log}")
