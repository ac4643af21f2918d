"""A predicted (`ferret simulate`) or measured (`ferret run --plan`) output folder, read back.

What validate and calibrate need from a folder: its op trace, its plan, the profile it used (if
it can be found), its summary, and where its times come from:

| source | folder from | clock |
| --- | --- | --- |
| `twin` | `ferret simulate` | `stream`: the schedule in stream time |
| `distributed` | `ferret run --mode distributed` | `stream`: ranks on the wall clock, in parallel |
| `replay` | `ferret run --mode replay` | `sequential`: one op at a time; durations are real, start times are not a schedule |

The plan is `plan.json` in the folder, else config.json's `plan` (embedded object or path).
A path recorded relative to where the command ran is tried as given, then beside the folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planner.builtin import resolve_profile
from planner.errors import FerretError
from planner.fileio import read_json
from planner.plan import Plan
from planner.profile import ModelProfile
from planner.provenance import read_provenance
from sim.trace_files import TRACE_FORMATS

SOURCES = ("twin", "replay", "distributed")
# Measured by the real-time executor: its traces hold the executor's own loop between ops and the
# host's stalls, which a twin (its own schedule) or a replay (the twin's schedule) cannot show.
REAL_TIME_SOURCES = ("distributed",)
TRACE_NAMES = tuple(f"trace.{fmt}" for fmt in TRACE_FORMATS)  # ftrace first: the twin's default


@dataclass(frozen=True)
class RunFolder:
    """A `ferret simulate` or `ferret run --plan` output folder, read back by `load_run_folder`.

    `source` is `twin`, `distributed` or `replay`; `clock` says whether its start times form a stream
    schedule (`stream`) or not (`sequential`). `profile` is None when it cannot be found.
    """

    path: Path
    trace_path: Path
    source: str
    plan: Plan
    profile: ModelProfile | None
    summary: dict[str, Any]
    config: dict[str, Any]

    @property
    def clock(self) -> str:
        return "sequential" if self.source == "replay" else "stream"

    @property
    def samples(self) -> int | None:
        value = self.summary.get("samples")
        return value if isinstance(value, int) else None

    @property
    def made_from(self) -> dict[str, Any]:
        """What the run was made from (planner.provenance): its summary's record, else what its
        profile says; empty for a folder that records neither."""
        recorded = read_provenance(self.summary, f"{self.path}/summary.json")
        if recorded is not None:
            return recorded
        return {} if self.profile is None else self.profile.made_from()


def load_run_folder(path: str | Path, role: str) -> RunFolder:
    """Read `path` as a run folder; `role` (e.g. "--measured") names it in errors."""
    folder = Path(path)
    if not folder.is_dir():
        raise FerretError(f"{role} {folder}: not a folder (give the output folder of ferret simulate or ferret run)")
    trace_path = next((folder / name for name in TRACE_NAMES if (folder / name).is_file()), None)
    if trace_path is None:
        raise FerretError(f"{role} {folder}: no trace ({', '.join(TRACE_NAMES)}; a run needs --plan to write one)")
    summary = _object(folder / "summary.json", f"{role} summary")
    config = _object(folder / "config.json", f"{role} config")
    source = _source(summary, config)
    if source is None:
        raise FerretError(f"{role} {folder}: not a ferret simulate or pipeline run folder (summary.json has no mode)")
    plan = _plan(folder, config, role)
    profile = _profile(folder, config)
    if profile is not None and profile.num_layers != plan.num_layers:
        profile = None  # a profile file replaced since the run: the plan is what the trace followed
    return RunFolder(folder, trace_path, source, plan, profile, summary, config)


def _object(path: Path, what: str) -> dict[str, Any]:
    obj = read_json(path, what)
    if not isinstance(obj, dict):
        raise FerretError(f"{what} {path} must be a JSON object")
    return obj


def _source(summary: dict[str, Any], config: dict[str, Any]) -> str | None:
    mode = summary.get("mode")
    if mode in SOURCES:
        return str(mode)
    if config.get("command") == "simulate" or ("events" in summary and "strategy" in summary and mode is None):
        return "twin"
    return None


def _candidates(folder: Path, recorded: str) -> list[Path]:
    p = Path(recorded)
    return [p] if p.is_absolute() else [p, folder / p, folder / p.name]


def _plan(folder: Path, config: dict[str, Any], role: str) -> Plan:
    if (folder / "plan.json").is_file():
        return Plan.load(folder / "plan.json")
    recorded = config.get("plan")
    if isinstance(recorded, dict):
        return Plan.from_json(recorded)
    if isinstance(recorded, str):
        for candidate in _candidates(folder, recorded):
            if candidate.is_file():
                return Plan.load(candidate)
        raise FerretError(f"{role} {folder}: its plan {recorded} is gone; copy it into the folder as plan.json")
    raise FerretError(f"{role} {folder}: config.json records no plan")


def _profile(folder: Path, config: dict[str, Any]) -> ModelProfile | None:
    if (folder / "profile.json").is_file():
        return ModelProfile.load(folder / "profile.json")
    recorded = config.get("profile")
    if not isinstance(recorded, str):
        return None
    if recorded.startswith("builtin:"):
        return resolve_profile(recorded)
    for candidate in _candidates(folder, recorded):
        if candidate.is_file():
            return ModelProfile.load(candidate)
    return None
