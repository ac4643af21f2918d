"""Compare runs: the shape of Ferret's Tables 7–8 and aL-SAR's budget tables, from `ferret run` folders.

Contract:
- `load_runs(folders)` reads each folder's summary.json, config.json and metrics.csv; a missing,
  corrupt or foreign file is a `FerretError` naming it.
- A run's *configuration* is its config.json less `NOT_CONFIGURATION` (the seed, the output
  path, provenance, ...). `comparison_rows` keeps one row per run, or with `group_by_seed` one
  per configuration; each metric of a row is a `Stat` (mean, sample std, count) over its runs.
- Runs are comparable when they share the data set and its options, the stream and its
  options, the sample count, and every configuration holds the same seeds, each once; else
  `comparison_rows` raises naming the field that differs (unless `force`).
- oagm/tagm (F17/F18, `executor.metrics.compare_to_baseline`) pair a run with the baseline
  configuration's run of the same seed; the baseline is the 1-Skip configuration unless given.
- The Pareto front: the rows no other row beats on both mean measured memory and mean online
  accuracy (`analysis.pareto`).
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis.config_args import config_dests
from analysis.pareto import non_dominated
from executor.metrics import compare_to_baseline
from planner.errors import FerretError
from planner.fileio import read_json
from planner.limits import WorkLimits

DEFAULT_BASELINE = "1-skip"  # Ferret's baseline for oagm/tagm (SPEC §9)
# Not what was run but where, when and against what it was reported; `arrival_interval_s` is the
# interval measured on the machine when the user left it to the profile (`arrival_interval`).
NOT_CONFIGURATION = frozenset(
    {"seed", "out", "baseline", "ferret_version", "python", "arrival_interval_s", "output_files", "repeat_of", "force"}
    | set(config_dests(WorkLimits))
)
_NUMBERS = ("online_accuracy", "test_accuracy", "measured_peak_memory_bytes", "train_flops")
_COUNTS = ("samples", "trained", "skipped", "seed")
_NAMES = ("framework", "dataset", "stream")
# Metrics whose column is the summary's field itself.
_AS_REPORTED: tuple[str, ...] = ("online_accuracy", "test_accuracy", "a_auc", "forgetting")
_AS_REPORTED += ("measured_peak_memory_bytes", "predicted_memory_bytes", "train_flops")


@dataclass(frozen=True, eq=False)
class Run:
    """One run: its summary.json, its config.json and its online accuracy at the test checkpoints."""

    name: str
    summary: Mapping[str, Any]
    config: Mapping[str, Any]
    checkpoints: np.ndarray = field(default_factory=lambda: np.empty(0))
    online_curve: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def seed(self) -> int:
        return int(self.summary["seed"])

    @property
    def framework(self) -> str:
        return str(self.summary["framework"])


@dataclass(frozen=True)
class Stat:
    """Mean, sample standard deviation (NaN below two values) and count of the finite values."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Stat:
        finite = [float(v) for v in values if v is not None and math.isfinite(v)]
        if not finite:
            return cls(math.nan, math.nan, 0)
        return cls(statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else math.nan, len(finite))

    def format(self, spec: str = ".2f", scale: float = 1.0) -> str:
        """`12.34 ± 0.56` (one value: `12.34`; none: `—`), each divided by `scale`."""
        if self.n == 0:
            return "—"
        text = format(self.mean / scale, spec)
        return text if self.n < 2 else f"{text} ± {format(self.std / scale, spec)}"


@dataclass(frozen=True)
class Metric:
    """A column: `key` in comparison.csv (raw units), `header` in comparison.md (value / `scale`)."""

    key: str
    header: str
    scale: float = 1.0
    spec: str = ".2f"


METRICS = (
    Metric("online_accuracy", "online acc %"),
    Metric("test_accuracy", "test acc %"),
    Metric("a_auc", "A_AUC %"),
    Metric("forgetting", "forgetting %"),
    Metric("measured_peak_memory_bytes", "memory MiB", 2**20, ".3f"),
    Metric("predicted_memory_bytes", "F4 memory MiB", 2**20, ".3f"),
    Metric("train_flops", "train GFLOPs", 1e9, ".3g"),
    Metric("trained_share", "trained %", 0.01, ".1f"),
    Metric("drop_rate", "dropped %", 0.01, ".1f"),
    Metric("mean_staleness", "staleness"),
    Metric("oagm", "oagm"),
    Metric("tagm", "tagm"),
)


@dataclass(frozen=True, eq=False)
class ComparisonRow:
    """A row of the table: one run, or one configuration over its seeds."""

    label: str
    runs: tuple[Run, ...]
    stats: Mapping[str, Stat]
    baseline: bool = False
    pareto: bool = False

    @property
    def framework(self) -> str:
        return self.runs[0].framework

    @property
    def seeds(self) -> list[int]:
        return sorted(r.seed for r in self.runs)


def baseline_label(rows: Sequence[ComparisonRow]) -> str | None:
    return next((row.label for row in rows if row.baseline), None)


def load_runs(folders: Sequence[Path]) -> list[Run]:
    """Read run folders; each is named by its folder's name, or by its path where names collide."""
    resolved = [Path(f).resolve() for f in folders]
    twice = next((f for f, r in zip(folders, resolved, strict=True) if resolved.count(r) > 1), None)
    if twice is not None:
        raise FerretError(f"run folder given twice: {twice}")
    names = Counter(r.name for r in resolved)
    return [
        _load_run(Path(f), r.name if names[r.name] == 1 else str(f)) for f, r in zip(folders, resolved, strict=True)
    ]


def _load_run(folder: Path, name: str) -> Run:
    if not folder.is_dir():
        raise FerretError(f"run folder not found: {folder}")
    path = folder / "summary.json"
    summary = read_json(path, "run summary")
    if not isinstance(summary, dict):
        raise FerretError(f"{path} is not a ferret run summary (not a JSON object)")
    bad = [k for k in _NUMBERS if isinstance(summary.get(k), bool) or not isinstance(summary.get(k), int | float)]
    bad += [k for k in _COUNTS if isinstance(summary.get(k), bool) or not isinstance(summary.get(k), int)]
    bad += [k for k in _NAMES if not isinstance(summary.get(k), str)]
    if bad:
        raise FerretError(f"{path} is not a ferret run summary (no {bad[0]!r}); is {folder} a `ferret run` folder?")
    if summary["measured_peak_memory_bytes"] <= 0 or summary["samples"] <= 0:
        raise FerretError(f"{path}: measured_peak_memory_bytes and samples must be positive")
    config = read_json(folder / "config.json", "run configuration")
    if not isinstance(config, dict):
        raise FerretError(f"{folder / 'config.json'} is not a ferret run configuration (not a JSON object)")
    checkpoints, online = _read_curve(folder / "metrics.csv")
    return Run(name, summary, config, checkpoints, online)


def _read_curve(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        samples = np.array([int(row["samples"]) for row in rows], dtype=np.int64)
        online = np.array([float(row["online_accuracy"]) for row in rows], dtype=np.float64)
    except FileNotFoundError:
        raise FerretError(f"run metrics not found: {path}") from None
    except (OSError, UnicodeDecodeError, KeyError, TypeError, ValueError):
        raise FerretError(f"{path} is not a ferret metrics.csv (numeric samples, online_accuracy columns)") from None
    if not len(samples):
        raise FerretError(f"{path} has no checkpoint rows")
    return samples, online


def configuration(run: Run) -> str:
    """The run's configuration as canonical text: equal text, same configuration."""
    return json.dumps({k: v for k, v in run.config.items() if k not in NOT_CONFIGURATION}, sort_keys=True, default=str)


def run_values(summary: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> dict[str, float | None]:
    """A run's numbers in comparison.csv's units (%, bytes, FLOPs, fractions); None where it has none."""
    samples = summary["samples"]
    sequential = "mode" not in summary  # a pipeline run says how it ran (replay, distributed)
    values = {key: summary.get(key) for key in _AS_REPORTED}
    values["trained_share"] = summary["trained"] / samples
    # A sequential framework never trains a datum it skipped: it dropped it. A pipeline's other
    # untrained data were still in flight when the stream ended.
    dropped = summary["skipped"] if sequential else summary.get("dropped")
    values["drop_rate"] = None if dropped is None else dropped / samples
    # A sequential step computes its gradient on the weights it updates.
    values["mean_staleness"] = 0.0 if sequential else summary.get("mean_staleness")
    gains = compare_to_baseline(summary, baseline) if baseline is not None else {}
    values.update(oagm=gains.get("oagm"), tagm=gains.get("tagm"))
    return values


def comparison_rows(
    runs: Sequence[Run], *, group_by_seed: bool = False, baseline: Run | None = None, force: bool = False
) -> list[ComparisonRow]:
    """The table's rows, in the order the runs come; `baseline`, if given, is one of `runs`."""
    if not runs:
        raise FerretError("no runs to compare")
    by_config: dict[str, list[Run]] = {}
    for run in runs:
        by_config.setdefault(configuration(run), []).append(run)
    labels = dict(zip(by_config, _labels(list(by_config.values())), strict=True))
    if not force:
        _check_comparable(runs, by_config, labels)
    key = configuration(baseline) if baseline is not None else _default_baseline(by_config, labels)
    paired = {r.seed: r.summary for r in reversed(by_config.get(key or "", []))}  # reversed: the first wins
    groups = [(labels[k], g) for k, g in by_config.items()] if group_by_seed else [(r.name, [r]) for r in runs]
    stats = []
    for _, group in groups:
        values = [run_values(r.summary, paired.get(r.seed)) for r in group]
        stats.append({m.key: Stat.of(v[m.key] for v in values) for m in METRICS})
    front = non_dominated([(s["measured_peak_memory_bytes"].mean, s["online_accuracy"].mean) for s in stats])
    return [
        ComparisonRow(label, tuple(group), s, configuration(group[0]) == key, on_front)
        for (label, group), s, on_front in zip(groups, stats, front, strict=True)
    ]


def _describe(name: str, options: Any) -> str:
    options = dict(options or {})  # config.json keeps `--stream-option`s as [key, value] pairs
    return name + (f" ({', '.join(f'{k}={v}' for k, v in sorted(options.items()))})" if options else "")


COMPARED = (
    ("data set", lambda r: _describe(r.summary["dataset"], r.config.get("dataset_option"))),
    ("stream", lambda r: _describe(r.summary["stream"], r.config.get("stream_option"))),
    ("sample count", lambda r: str(r.summary["samples"])),
)


def _check_comparable(runs: Sequence[Run], by_config: Mapping[str, list[Run]], labels: Mapping[str, str]) -> None:
    force = "; --force compares them anyway"
    first = runs[0]
    for name, describe in COMPARED:
        other = next((r for r in runs if describe(r) != describe(first)), None)
        if other is not None:
            raise FerretError(
                f"runs are not comparable: {name} differs ({first.name}: {describe(first)}; "
                f"{other.name}: {describe(other)}){force}"
            )
    for group in by_config.values():
        counts = Counter(r.seed for r in group)
        again = next((seed for seed, count in counts.items() if count > 1), None)
        if again is not None:
            a, b = [r.name for r in group if r.seed == again][:2]
            raise FerretError(f"{a} and {b} are the same configuration with the same seed {again}{force}")
    seed_sets = {key: sorted({r.seed for r in group}) for key, group in by_config.items()}
    keys = list(seed_sets)
    other_key = next((k for k in keys if seed_sets[k] != seed_sets[keys[0]]), None)
    if other_key is not None:

        def seeds(k: str) -> str:
            return f"{labels[k]}: seed{'s' if len(seed_sets[k]) > 1 else ''} {', '.join(map(str, seed_sets[k]))}"

        raise FerretError(f"runs are not comparable: seed set differs ({seeds(keys[0])}; {seeds(other_key)}){force}")


def _default_baseline(by_config: Mapping[str, list[Run]], labels: Mapping[str, str]) -> str | None:
    keys = [k for k, group in by_config.items() if group[0].framework == DEFAULT_BASELINE]
    if len(keys) > 1:
        names = ", ".join(labels[k] for k in keys)
        raise FerretError(f"{len(keys)} 1-skip configurations could be the baseline ({names}); choose with --baseline")
    return keys[0] if keys else None


def _labels(groups: Sequence[list[Run]]) -> list[str]:
    """A configuration is named by its runs' common name (one folder, a benchmark's label), else by
    its framework and the configuration fields that tell it from the same framework's others."""
    labels = []
    for group in groups:
        if len({r.name for r in group}) == 1:
            labels.append(group[0].name)
            continue
        siblings = [g[0].config for g in groups if g[0].framework == group[0].framework]
        keys = sorted({k for config in siblings for k in config} - NOT_CONFIGURATION)
        differ = [k for k in keys if len({json.dumps(c.get(k), sort_keys=True, default=str) for c in siblings}) > 1]
        labels.append(" ".join([group[0].framework, *(f"{k}={_short(group[0].config.get(k))}" for k in differ)]))
    return labels


def _short(value: Any) -> str:
    """A path by its file name (plan files differ there); anything else as it is."""
    return Path(value).name if isinstance(value, str) and "/" in value else str(value)
