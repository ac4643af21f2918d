"""The what-if figures (matplotlib, Agg): R vs memory, drops vs memory, closed form vs twin.

One panel per arrival interval; one line per strategy, points sorted by simulated peak memory;
Pareto-optimal points (no other point has as much R for as little memory) ringed in black.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from analysis.plot_style import legend, plain_log_ticks, pyplot
from analysis.whatif import WhatIfRow

FIGURES = ("rate_vs_memory.png", "drops_vs_memory.png", "predicted_vs_simulated.png")


def _mib(nbytes: float) -> float:
    return nbytes / 2**20


def write_figures(rows: Sequence[WhatIfRow], folder: Path) -> list[str]:
    plt = pyplot()
    feasible = [r for r in rows if r.feasible]
    intervals = sorted({r.arrival_interval_s for r in rows})
    strategies = list(dict.fromkeys(r.strategy for r in rows))
    colours = {name: f"C{i % 10}" for i, name in enumerate(strategies)}
    written = []
    for filename, field, label, log_y in (
        (FIGURES[0], "rate", "adaptation rate R (value/s, simulated)", False),
        (FIGURES[1], "drop_rate", "drop rate (simulated)", False),
    ):
        fig, axes = plt.subplots(1, len(intervals), figsize=(6.4 * len(intervals), 4.6), squeeze=False)
        for ax, interval in zip(axes[0], intervals, strict=True):
            for name in strategies:
                pts = sorted(
                    (r.peak_memory_bytes, getattr(r, field), r.pareto)
                    for r in feasible
                    if r.strategy == name and r.arrival_interval_s == interval
                )
                if not pts:
                    continue
                xs = [_mib(p[0]) for p in pts]
                ys = [p[1] for p in pts]
                ax.plot(xs, ys, marker="o", ms=4, color=colours[name], label=name)
                if field == "rate":
                    front = [(x, y) for x, y, p in zip(xs, ys, [p[2] for p in pts], strict=True) if p]
                    if front:
                        ax.scatter(*zip(*front, strict=True), s=90, facecolors="none", edgecolors="black", zorder=3)
            ax.set_xscale("log")
            plain_log_ticks(ax, "x")
            if log_y:
                ax.set_yscale("log")
            ax.set_xlabel("peak memory (MiB, simulated)")
            ax.set_ylabel(label)
            ax.set_title(f"arrival interval {interval * 1e3:.3g} ms")
            ax.grid(True, which="both", alpha=0.3)
            legend(ax, fontsize=8, title="○ Pareto front" if field == "rate" else None, title_fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / filename, dpi=120)
        plt.close(fig)
        written.append(filename)

    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    low, high = math.inf, 0.0
    for name in strategies:
        pairs = [
            (r.predicted_rate, r.rate) for r in feasible if r.strategy == name and not math.isnan(r.predicted_rate)
        ]
        if not pairs:
            continue
        ax.scatter(*zip(*pairs, strict=True), color=colours[name], label=name, s=20)
        low = min(low, *(min(p) for p in pairs))
        high = max(high, *(max(p) for p in pairs))
    if high > 0:
        low = max(low, high * 1e-6)
        ax.plot([low, high], [low, high], color="grey", lw=1, ls="--", label="twin = closed form")
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain_log_ticks(ax, "x")
        plain_log_ticks(ax, "y")
    ax.set_xlabel("closed-form R (F3 / strategy's form)")
    ax.set_ylabel("simulated R")
    ax.grid(True, which="both", alpha=0.3)
    legend(ax, fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / FIGURES[2], dpi=120)
    plt.close(fig)
    written.append(FIGURES[2])
    return written
