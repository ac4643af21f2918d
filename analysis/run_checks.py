"""Two folders that `ferret validate` may compare: the same plan, the same stream, whole traces.

Ops of different plans or streams would pair by accident and report nonsense, so these are
refused with one line naming what differs.
"""

from __future__ import annotations

import numpy as np

from analysis.run_folder import RunFolder
from analysis.trace_metrics import StreamMetrics
from analysis.trace_table import TraceTable
from planner.errors import FerretError
from planner.provenance import check_made_for


def check_same_run(predicted: RunFolder, measured: RunFolder) -> None:
    """Refuse two folders of different plans: their ops would pair by accident."""
    a, b = predicted.plan, measured.plan
    for what, x, y in (
        ("strategy", a.strategy, b.strategy),
        ("partition", list(a.partition), list(b.partition)),
        ("workers", [w.to_json() for w in a.workers], [w.to_json() for w in b.workers]),
        ("minibatch", a.minibatch, b.minibatch),
    ):
        if x != y:
            raise FerretError(f"--predicted and --measured follow different plans ({what} {x} vs {y})")


def check_same_model(predicted: RunFolder, measured: RunFolder, *, force: bool = False) -> list[str]:
    """Refuse two folders whose provenance names different models or streams (`force`: return
    the mismatches instead)."""
    what, against = f"--measured {measured.path}", f"--predicted {predicted.path}"
    return check_made_for(measured.made_from, predicted.made_from, what, against, force=force)


def check_trace_complete(folder: RunFolder, table: TraceTable, metrics: StreamMetrics, role: str) -> None:
    events = folder.summary.get("events")
    if folder.source == "twin" and isinstance(events, int) and events != len(table):
        raise FerretError(f"{role} {folder.trace_path}: {len(table)} rows but summary.json says {events} (truncated?)")
    if folder.samples is not None and folder.samples != metrics.arrivals:
        raise FerretError(
            f"{role} {folder.trace_path}: {metrics.arrivals} arrivals but summary.json says {folder.samples} samples"
            " (truncated?)"
        )


def check_same_stream(predicted: StreamMetrics, measured: StreamMetrics, measured_clock: str) -> None:
    if predicted.arrivals != measured.arrivals:
        raise FerretError(
            f"--predicted and --measured are different streams ({predicted.arrivals} vs {measured.arrivals} arrivals)"
        )
    if measured_clock != "stream" or predicted.arrivals < 2:
        return
    gap = float(predicted.arrival_s[-1] - predicted.arrival_s[0]) / (predicted.arrivals - 1)
    shift = np.abs((measured.arrival_s - measured.arrival_s[0]) - (predicted.arrival_s - predicted.arrival_s[0]))
    if gap > 0 and float(np.median(shift)) > 0.5 * gap:
        raise FerretError(
            f"--predicted and --measured are different streams: arrivals differ by a median {float(np.median(shift)):.3g} s"
            f" (mean gap {gap:.3g} s); same --arrival, --arrival-interval and --seed?"
        )
