"""Predicted vs measured, metric by metric and op by op (`ferret validate`).

Both traces go through the same code (`analysis.trace_metrics`), so an error is a difference
between the runs, never between two ways of counting. Errors are `measured / predicted - 1`
(relative) except for the drop rate, whose error is in percentage points. The tolerances of
the project's fidelity bar (docs/FIDELITY.md) are `Tolerances`; each metric says whether it is
within its tolerance.

A replay run (`RunFolder.clock == "sequential"`) runs one op at a time on the wall clock: its
op durations are real costs, but its start times are not a parallel schedule, so metrics that
depend on *when* things happened (throughput, R, latency, the memory timeline) are reported
as not comparable, and op durations, drops, staleness and peak memory are compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.align import AlignedOps, align
from analysis.run_checks import check_same_model, check_same_run, check_same_stream, check_trace_complete
from analysis.run_folder import RunFolder
from analysis.trace_metrics import StreamMetrics, stream_metrics
from analysis.trace_table import KIND_NAMES, TraceTable, load_table
from planner.closed_form import stage_shares
from planner.config_field import config_field

FORCED_NOTE = "--force: --measured was made for"
# The metrics the fidelity bar judges, in the order of `Tolerances`' fields.
JUDGED = ("throughput_per_s", "latency_p50_s", "drop_rate", "peak_memory_bytes")


@dataclass(frozen=True)
class Tolerances:
    """The fidelity bar: relative for throughput, latency p50 and memory; points for drops."""

    throughput: float = config_field(
        0.10,
        help="tolerated relative throughput error (0.1: ten percent)",
        unit="float",
        ge=0,
        flag="tolerance-throughput",
    )
    latency_p50: float = config_field(
        0.10, help="tolerated relative latency p50 error", unit="float", ge=0, flag="tolerance-latency"
    )
    drop_points: float = config_field(
        2.0, help="tolerated drop-rate error, in percentage points", unit="float", ge=0, flag="tolerance-drops"
    )
    peak_memory: float = config_field(
        0.05, help="tolerated relative peak-memory error", unit="float", ge=0, flag="tolerance-memory"
    )

    def of(self, metric: str) -> float | None:
        bars = (self.throughput, self.latency_p50, self.drop_points, self.peak_memory)
        return dict(zip(JUDGED, bars, strict=True)).get(metric)


@dataclass(frozen=True)
class MetricComparison:
    """One metric predicted vs measured, with its error and the tolerance it is held to.

    `error` is relative (`measured / predicted - 1`) or, for the drop rate, in points; None when it
    cannot be compared. `within` is None when there is no tolerance or no error.
    """

    name: str
    unit: str
    predicted: float | None
    measured: float | None
    error: float | None  # relative, or points for the drop rate
    error_unit: str  # "relative" | "points"
    tolerance: float | None = None
    note: str = ""

    @property
    def within(self) -> bool | None:
        if self.tolerance is None or self.error is None:
            return None
        return abs(self.error) <= self.tolerance + 1e-12

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "predicted": self.predicted,
            "measured": self.measured,
            "error": self.error,
            "error_unit": self.error_unit,
            "tolerance": self.tolerance,
            "within_tolerance": self.within,
            "note": self.note,
        }


@dataclass(frozen=True)
class KindComparison:
    """Per op kind: pairs with a positive predicted duration, and their relative errors."""

    kind: str
    pairs: int
    predicted_median_s: float
    measured_median_s: float
    median_error: float
    p90_abs_error: float

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True, eq=False)
class Validation:
    """Everything `ferret validate` found comparing a predicted and a measured run folder.

    Metric and per-kind comparisons, staleness histograms, notes, and the tables, metrics and op pairing
    they came from; `to_json` is `validation.json`.
    """

    predicted: RunFolder
    measured: RunFolder
    metrics: tuple[MetricComparison, ...]
    kinds: tuple[KindComparison, ...]
    staleness: dict[str, tuple[int, ...]]
    notes: tuple[str, ...]
    predicted_table: TraceTable = field(repr=False)
    measured_table: TraceTable = field(repr=False)
    predicted_metrics: StreamMetrics = field(repr=False)
    measured_metrics: StreamMetrics = field(repr=False)
    aligned: AlignedOps = field(repr=False)

    def metric(self, name: str) -> MetricComparison:
        return next(m for m in self.metrics if m.name == name)

    def to_json(self) -> dict[str, Any]:
        return {
            "predicted": {"path": str(self.predicted.path), "source": self.predicted.source},
            "measured": {"path": str(self.measured.path), "source": self.measured.source},
            "clock": self.measured.clock,
            "metrics": [m.to_json() for m in self.metrics],
            "op_durations": [k.to_json() for k in self.kinds],
            "ops_paired": len(self.aligned),
            "ops_only_predicted": self.aligned.only_predicted,
            "ops_only_measured": self.aligned.only_measured,
            "staleness_histogram": {k: list(v) for k, v in self.staleness.items()},
            "notes": list(self.notes),
        }


def relative(predicted: float | None, measured: float | None) -> float | None:
    if predicted is None or measured is None or not (math.isfinite(predicted) and math.isfinite(measured)):
        return None
    if predicted == 0:
        return 0.0 if measured == 0 else None
    return measured / predicted - 1.0


def kind_comparisons(pred: TraceTable, meas: TraceTable, aligned: AlignedOps) -> tuple[KindComparison, ...]:
    dp = pred.duration[aligned.predicted]
    dm = meas.duration[aligned.measured]
    out = []
    for code in sorted(set(aligned.kind.tolist())):
        sel = (aligned.kind == code) & (dp > 0)
        if not sel.any():
            continue
        err = dm[sel] / dp[sel] - 1.0
        out.append(
            KindComparison(
                kind=KIND_NAMES[code],
                pairs=int(sel.sum()),
                predicted_median_s=float(np.median(dp[sel])),
                measured_median_s=float(np.median(dm[sel])),
                median_error=float(np.median(err)),
                p90_abs_error=float(np.quantile(np.abs(err), 0.9)),
            )
        )
    return tuple(out)


def _peak_memory(folder: RunFolder, metrics: StreamMetrics) -> tuple[float | None, tuple[int, ...] | None, str]:
    """(total, per device, where from): `mem` rows, else the folder's summary."""
    if metrics.memory is not None:
        return float(metrics.memory.peak_total), metrics.memory.peak_per_device, "mem rows"
    s = folder.summary
    for key in ("peak_memory_bytes", "measured_weights_activations_peak_bytes", "measured_peak_memory_bytes"):
        if isinstance(s.get(key), int | float):
            per_device = s.get("peak_memory_per_device")
            devices = tuple(int(x) for x in per_device) if isinstance(per_device, list) else None
            return float(s[key]), devices, f"summary {key}"
    return None, None, "none"


def _shares(predicted: RunFolder, measured: RunFolder) -> np.ndarray | None:
    for folder in (predicted, measured):
        if folder.profile is not None:
            return stage_shares(folder.profile, folder.plan.partition)
    return None


def validate(
    predicted: RunFolder, measured: RunFolder, tolerances: Tolerances | None = None, *, force: bool = False
) -> Validation:
    """Compare the traces of two run folders of one plan and stream (`force`: even when their
    provenance names different models or streams; the report notes it)."""
    tol = Tolerances() if tolerances is None else tolerances
    check_same_run(predicted, measured)
    plan = predicted.plan
    shares = _shares(predicted, measured)
    tables, stream = [], []
    for role, folder in (("--predicted", predicted), ("--measured", measured)):
        table = load_table(folder.trace_path)
        metrics = stream_metrics(
            table, plan.num_stages, shares, plan.decay_per_s, plan.arrival_interval_s, f"{role} {folder.trace_path}"
        )
        check_trace_complete(folder, table, metrics, role)
        tables.append(table)
        stream.append(metrics)
    pm, mm = stream
    check_same_stream(pm, mm, measured.clock)
    forced = check_same_model(predicted, measured, force=force)
    timed = measured.clock == "stream" and predicted.clock == "stream"
    untimed_note = "" if timed else "not comparable: the replay's timeline is sequential, not a schedule"
    notes = [f"{FORCED_NOTE} {mismatch}" for mismatch in forced]
    if not timed:
        notes.append(
            "The measured run is a replay: one op at a time on the wall clock. Op durations, drops, staleness and "
            "peak memory are compared; throughput, R and latency are shown but not compared."
        )
    if shares is None:
        notes.append("No profile found beside either folder: R (which weighs stages by their weight bytes) is n/a.")

    def timed_row(name: str, unit: str, p: float | None, m: float | None) -> MetricComparison:
        err = relative(p, m) if timed else None
        return MetricComparison(name, unit, p, m, err, "relative", tol.of(name) if timed else None, untimed_note)

    rows = [
        timed_row("throughput_per_s", "/s", pm.throughput_per_s, mm.throughput_per_s),
        MetricComparison(
            "drop_rate",
            "%",
            100 * pm.drop_rate,
            100 * mm.drop_rate,
            100 * (mm.drop_rate - pm.drop_rate),
            "points",
            tol.of("drop_rate"),
        ),
        timed_row("adaptation_rate", "/s", pm.adaptation_rate, mm.adaptation_rate),
        timed_row("latency_p50_s", "s", pm.latency_quantile(0.5), mm.latency_quantile(0.5)),
        timed_row("latency_p99_s", "s", pm.latency_quantile(0.99), mm.latency_quantile(0.99)),
    ]
    p_total, p_dev, p_how = _peak_memory(predicted, pm)
    m_total, m_dev, m_how = _peak_memory(measured, mm)
    how = f"predicted from {p_how}, measured from {m_how}"
    rows.append(
        MetricComparison(
            "peak_memory_bytes",
            "B",
            p_total,
            m_total,
            relative(p_total, m_total),
            "relative",
            tol.of("peak_memory_bytes"),
            how,
        )
    )
    if p_dev is not None and m_dev is not None:
        for d in range(max(len(p_dev), len(m_dev))):
            p = float(p_dev[d]) if d < len(p_dev) else 0.0
            m = float(m_dev[d]) if d < len(m_dev) else 0.0
            rows.append(MetricComparison(f"peak_memory_device_{d}", "B", p, m, relative(p, m), "relative"))
    rows.append(
        MetricComparison(
            "mean_staleness",
            "updates",
            pm.mean_staleness,
            mm.mean_staleness,
            relative(pm.mean_staleness, mm.mean_staleness),
            "relative",
        )
    )
    aligned = align(tables[0], tables[1])
    if aligned.only_predicted or aligned.only_measured:
        notes.append(
            f"Ops on one side only: predicted {aligned.only_predicted or 'none'}, measured {aligned.only_measured or 'none'}"
            " (a run stops at the last arrival; a different schedule pairs fewer ops)."
        )
    return Validation(
        predicted=predicted,
        measured=measured,
        metrics=tuple(rows),
        kinds=kind_comparisons(tables[0], tables[1], aligned),
        staleness={"predicted": pm.staleness_histogram, "measured": mm.staleness_histogram},
        notes=tuple(notes),
        predicted_table=tables[0],
        measured_table=tables[1],
        predicted_metrics=pm,
        measured_metrics=mm,
        aligned=aligned,
    )
