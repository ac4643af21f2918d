"""`ferret run --repeat-of RUNDIR`: the command line that reproduces a run from its folder.

A run folder holds `config.json` (every resolved flag), `profile.json` (the step times the run
used, measured or not), the batch profiles of its cost fit (`profile.batch<B>.json`) and, for a
pipeline run, `plan.json`. The repeat is the same `ferret run` with those flags, the saved
profiles and plan instead of the files they came from (which may have changed or gone), and a
new `--out`: same seed, same profile, same run. Nothing but `--out` (and the work limits) may
be given beside `--repeat-of`; a folder without a `profile.json` was written before runs saved
their profile, and is refused.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from analysis.config_args import config_dests
from planner.errors import FerretError
from planner.fileio import read_json
from planner.limits import WorkLimits

SAVED_PROFILE = "profile.json"
SAVED_PLAN = "plan.json"
# Flags that are not part of the run: where it goes, how it was asked for, the work limits.
_LIMITS = config_dests(WorkLimits)
_NOT_REPEATED = {"out", "repeat_of", "help", *_LIMITS}


def saved_batch_profiles(folder: Path) -> list[Path]:
    """The batch profiles a run saved, by batch size."""
    found = [(int(m.group(1)), p) for p in folder.glob("profile.batch*.json") if (m := _BATCH.match(p.name))]
    return [p for _, p in sorted(found)]


_BATCH = re.compile(r"^profile\.batch(\d+)\.json$")


def repeated_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The arguments of the run in `args.repeat_of`, writing to `args.out`."""
    folder: Path = args.repeat_of
    for action in parser._actions:
        if action.dest in _NOT_REPEATED or not action.option_strings:
            continue
        default = parser.get_default(action.dest)
        given = hasattr(args, action.dest) if default == argparse.SUPPRESS else getattr(args, action.dest) != default
        if given:
            raise FerretError(
                f"--repeat-of takes every setting from {folder / 'config.json'}; drop {action.option_strings[-1]}"
            )
    config = read_json(folder / "config.json", "run config")
    if not isinstance(config, dict) or "dataset" not in config or not (folder / "metrics.csv").is_file():
        raise FerretError(f"--repeat-of {folder} is not the folder of a `ferret run`")
    if not (folder / SAVED_PROFILE).is_file():
        raise FerretError(f"--repeat-of {folder}: the folder has no {SAVED_PROFILE} (written by an older ferret)")
    saved = {
        "profile": str(folder / SAVED_PROFILE),
        "batch_profile": [str(p) for p in saved_batch_profiles(folder)],
        "plan": str(folder / SAVED_PLAN) if (folder / SAVED_PLAN).is_file() else None,
    }
    argv: list[str] = []
    for action in parser._actions:
        dest = action.dest
        if dest in _NOT_REPEATED or not action.option_strings or dest not in config:
            continue
        value = saved.get(dest, config[dest])
        if dest == "device" and str(value).startswith("roofline:"):
            continue  # the saved profile is that estimate
        argv += _flag(action, value)
    repeated = parser.parse_args([*argv, "--out", str(args.out)])
    repeated.repeat_of = folder
    for dest in _LIMITS:
        setattr(repeated, dest, getattr(args, dest))
    return repeated


def _flag(action: argparse.Action, value: Any) -> list[str]:
    """`value` (as config.json holds it) back as the command-line text of `action`."""
    flag = action.option_strings[-1]
    if value is None or value == []:
        return []
    if action.nargs == 0:  # a switch
        return [flag] if value else []
    if isinstance(action, argparse._AppendAction):
        return [part for item in value for part in (flag, _text(item))]
    return [flag, _text(value)]


def _text(value: Any) -> str:
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):  # a KEY=VALUE option
        return f"{value[0]}={_text(value[1])}"
    if isinstance(value, list):  # a pair
        return ",".join(_text(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)
