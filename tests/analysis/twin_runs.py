"""Twin run folders for the analysis tests: `ferret simulate` outputs, and edited copies."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from analysis.cli import main
from analysis.run_folder import TRACE_NAMES
from planner.plan import Plan
from planner.profile import ModelProfile
from sim import read_trace
from sim.trace import FIELDS


def simulate_folder(
    folder: Path, plan: Plan, profile: ModelProfile, samples: int, *flags: str, inputs: Path | None = None
) -> Path:
    """Run `ferret simulate` on `plan`/`profile` (saved beside `folder`) into `folder`, with the
    trace as JSON Lines (the tests edit it as text; `ferret simulate`'s default is ftrace)."""
    inputs = inputs or folder.parent
    plan_path, profile_path = inputs / f"{folder.name}-plan.json", inputs / f"{folder.name}-profile.json"
    plan.save(plan_path)
    profile.save(profile_path)
    args = ["simulate", "--plan", str(plan_path), "--profile", str(profile_path), "--samples", str(samples)]
    if "--trace-format" not in flags:
        args += ["--trace-format", "jsonl"]
    assert main([*args, *flags, "--out", str(folder)]) == 0
    return folder


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def trace_rows(folder: Path) -> list[dict[str, Any]]:
    """The rows of the folder's trace, whichever format it was written in."""
    out = []
    for event in read_trace(next(folder / name for name in TRACE_NAMES if (folder / name).is_file())):
        row = {name: getattr(event, name) for name in FIELDS if name != "samples"}
        if event.kind == "update":
            row["samples"] = list(event.samples)
        out.append(row)
    return out


def edited_copy(source: Path, target: Path, edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> Path:
    """A copy of a run folder whose trace rows went through `edit` (summary's event count follows)."""
    shutil.copytree(source, target)
    rows = edit(trace_rows(source))
    write_rows(target / "trace.jsonl", rows)
    summary = json.loads((target / "summary.json").read_text())
    summary["events"] = len(rows)
    (target / "summary.json").write_text(json.dumps(summary))
    return target
