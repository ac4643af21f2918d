"""The pictures of `ferret validate` (matplotlib, Agg): what a person looks at before the table.

- `gantt.png`: a window of the run, predicted above measured, one lane per device (transfers in
  a strip below its compute), ops coloured by kind; the measured window holds the same ops
  (paired by `analysis.align`).
- `memory.png`: bytes held over time, predicted and measured overlaid (total, and per device).
- `durations.png`: predicted vs measured duration of every paired op, log-log, by kind, with
  the diagonal and a ±10 % band.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from analysis.plot_style import legend, pyplot
from analysis.run_folder import RunFolder
from analysis.trace_metrics import MemoryTimeline
from analysis.trace_table import KIND_CODES, LINK_KINDS, TraceTable
from analysis.validate import Validation

FIGURES = ("gantt.png", "memory.png", "durations.png")
KIND_COLOURS = {
    "fwd": "tab:blue",
    "recompute": "tab:cyan",
    "bwd": "tab:orange",
    "update": "tab:red",
    "send": "tab:green",
    "recv": "tab:olive",
}


def write_figures(v: Validation, folder: Path, window_ops: int = 200) -> list[str]:
    plot_gantt(v, folder / FIGURES[0], window_ops)
    plot_memory(v, folder / FIGURES[1])
    plot_durations(v, folder / FIGURES[2])
    return list(FIGURES)


# ---------------------------------------------------------------------- Gantt
def _window(table: TraceTable, window_ops: int) -> tuple[float, float]:
    """A time window around the middle of the run holding about `window_ops` ops."""
    ops = np.flatnonzero(table.mask(*KIND_COLOURS) & (table.device >= 0))
    if len(ops) == 0:
        return 0.0, 0.0
    starts = np.sort(table.t_start[ops])
    mid = len(starts) // 2
    lo, hi = max(0, mid - window_ops // 2), min(len(starts) - 1, mid + window_ops // 2)
    return float(starts[lo]), float(starts[hi])


def _lanes(ax: Any, table: TraceTable, t0: float, t1: float, title: str) -> None:
    """One lane per device: compute ops in its upper part, its wire's transfers (which run beside
    the compute, on the executor's sender and receiver threads) in a thin strip below."""
    in_window = (table.t_end > t0) & (table.t_start < t1) & (table.device >= 0)
    devices = int(table.device[in_window].max()) + 1 if in_window.any() else 1
    for kind, colour in KIND_COLOURS.items():
        rows = np.flatnonzero(in_window & (table.kind == KIND_CODES[kind]))
        lane = (-0.42, 0.22) if kind in LINK_KINDS else (-0.15, 0.55)
        for d in range(devices):
            on = rows[table.device[rows] == d]
            if len(on) == 0:
                continue
            spans = [
                ((s - t0) * 1e3, max((e - s) * 1e3, 1e-6))
                for s, e in zip(table.t_start[on], table.t_end[on], strict=True)
            ]
            ax.broken_barh(
                spans, (d + lane[0], lane[1]), facecolors=colour, edgecolor="black", linewidth=0.2, label=kind
            )
    ax.set_yticks(range(devices), [f"device {d}" for d in range(devices)])
    ax.set_xlim(0, max((t1 - t0) * 1e3, 1e-6))
    ax.set_title(title, fontsize=9)
    ax.grid(axis="x", alpha=0.3)


def plot_gantt(v: Validation, path: Path, window_ops: int) -> None:
    plt = pyplot()
    p0, p1 = _window(v.predicted_table, window_ops)
    in_pred = (v.predicted_table.t_start[v.aligned.predicted] >= p0) & (
        v.predicted_table.t_start[v.aligned.predicted] <= p1
    )
    paired = v.aligned.measured[in_pred]
    if len(paired):
        m0, m1 = float(v.measured_table.t_start[paired].min()), float(v.measured_table.t_end[paired].max())
    else:
        m0, m1 = _window(v.measured_table, window_ops)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6), dpi=120)
    try:
        _lanes(top, v.predicted_table, p0, p1, f"predicted ({v.predicted.source}), from {p0:.4g} s")
        clock = ": one op at a time, sequential clock" if v.measured.clock == "sequential" else ""
        _lanes(bottom, v.measured_table, m0, m1, f"measured ({v.measured.source}{clock}), from {m0:.4g} s")
        bottom.set_xlabel("time in the window (ms)")
        handles: dict[str, Any] = {}
        for ax in (top, bottom):
            for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
                handles.setdefault(label, h)
        labels = list(handles)
        fig.legend([handles[k] for k in labels], labels, loc="upper right", ncol=len(labels), fontsize=8)
        fig.tight_layout(rect=(0, 0, 1, 0.95))
        fig.savefig(path)
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------- memory
def memory_series(folder: RunFolder, timeline: MemoryTimeline | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(t, total bytes): the trace's `mem` rows, else a twin's memory_timeline.csv."""
    if timeline is not None:
        return timeline.t_s, timeline.total
    csv_path = folder.path / "memory_timeline.csv"
    if not csv_path.is_file():
        return None
    with csv_path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    return np.array([float(r["t_s"]) for r in rows]), np.array([float(r["peak_bytes"]) for r in rows])


def plot_memory(v: Validation, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4), dpi=120)
    try:
        missing = []
        for label, folder, metrics, style in (
            ("predicted", v.predicted, v.predicted_metrics, "-"),
            ("measured", v.measured, v.measured_metrics, "--"),
        ):
            series = memory_series(folder, metrics.memory)
            if series is None:
                missing.append(label)
                continue
            t, total = series
            ax.step(t, total / 2**10, where="post", linestyle=style, label=f"{label} total")
            if metrics.memory is not None and metrics.memory.per_device.shape[1] > 1:
                for d in range(metrics.memory.per_device.shape[1]):
                    ax.step(
                        t, metrics.memory.per_device[:, d] / 2**10, where="post", linestyle=style, alpha=0.4, lw=0.8
                    )
        peak = v.metric("peak_memory_bytes")
        for value, label, colour in ((peak.predicted, "predicted peak", "C0"), (peak.measured, "measured peak", "C1")):
            if value is not None:
                ax.axhline(value / 2**10, color=colour, lw=0.8, alpha=0.6, linestyle=":", label=label)
        title = "memory held over time"
        if missing:
            title += f" (no timeline in the {' and '.join(missing)} trace: peaks only)"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(
            "time (s)" + (" — measured on the replay's sequential clock" if v.measured.clock == "sequential" else "")
        )
        ax.set_ylabel("KiB")
        ax.grid(alpha=0.3)
        legend(ax, fontsize=8)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------- durations
def plot_durations(v: Validation, path: Path) -> None:
    plt = pyplot()
    dp = v.predicted_table.duration[v.aligned.predicted]
    dm = v.measured_table.duration[v.aligned.measured]
    fig, ax = plt.subplots(figsize=(6, 6), dpi=120)
    try:
        positive = (dp > 0) & (dm > 0)
        for kind, colour in KIND_COLOURS.items():
            sel = positive & (v.aligned.kind == KIND_CODES[kind])
            if sel.any():
                ax.scatter(
                    dp[sel] * 1e6, dm[sel] * 1e6, s=4, alpha=0.4, color=colour, label=f"{kind} ({int(sel.sum())})"
                )
        if positive.any():
            lo = float(min(dp[positive].min(), dm[positive].min())) * 1e6
            hi = float(max(dp[positive].max(), dm[positive].max())) * 1e6
            line = np.geomspace(lo, hi, 50)
            ax.plot(line, line, color="black", lw=0.8, label="measured = predicted")
            ax.fill_between(line, line * 0.9, line * 1.1, color="grey", alpha=0.2, label="±10 %")
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_xlabel("predicted op duration (µs)")
        ax.set_ylabel("measured op duration (µs)")
        ax.set_title("op durations, paired by (kind, sample, stage)", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        legend(ax, fontsize=8, markerscale=3)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
