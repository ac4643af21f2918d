"""The comparison's figures (matplotlib, Agg).

- accuracy.png: online accuracy at the test checkpoints, one line per row, one colour per
  framework (line styles tell a framework's rows apart), shaded ± std across a row's seeds;
- memory_vs_accuracy.png: mean online accuracy against mean measured peak memory (log axis),
  one marker per row with ± std bars, the Pareto front ringed and joined (Ferret's Fig. 11).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from analysis.compare import ComparisonRow
from analysis.plot_style import legend, plain_log_ticks, pyplot

FIGURES = ("accuracy.png", "memory_vs_accuracy.png")
_STYLES = ("-", "--", ":", "-.")


def write_figures(rows: Sequence[ComparisonRow], folder: Path) -> list[str]:
    colours = {name: f"C{k % 10}" for k, name in enumerate(dict.fromkeys(r.framework for r in rows))}
    plot_accuracy(rows, colours, folder / FIGURES[0])
    plot_memory_vs_accuracy(rows, colours, folder / FIGURES[1])
    return list(FIGURES)


def plot_accuracy(rows: Sequence[ComparisonRow], colours: dict[str, str], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    try:
        seen: dict[str, int] = {}
        for row in rows:
            curves = [r for r in row.runs if len(r.checkpoints)]
            if not curves:
                continue
            grid = curves[0].checkpoints
            stack = np.stack([np.interp(grid, r.checkpoints, r.online_curve) for r in curves])
            style = _STYLES[seen.get(row.framework, 0) % len(_STYLES)]
            seen[row.framework] = seen.get(row.framework, 0) + 1
            mean = stack.mean(axis=0)
            label = row.label + (f" ({len(curves)} seeds)" if len(curves) > 1 else "")
            ax.plot(grid, mean, style, color=colours[row.framework], label=label)
            if len(curves) > 1:
                std = stack.std(axis=0, ddof=1)
                ax.fill_between(grid, mean - std, mean + std, color=colours[row.framework], alpha=0.2, lw=0)
        ax.set_xlabel("stream samples")
        ax.set_ylabel("online accuracy (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        legend(ax, fontsize=8, loc="best")
        ax.set_title("online accuracy over the stream", fontsize=10)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)


def plot_memory_vs_accuracy(rows: Sequence[ComparisonRow], colours: dict[str, str], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    try:
        for row in rows:
            memory, accuracy = row.stats["measured_peak_memory_bytes"], row.stats["online_accuracy"]
            x, y = memory.mean / 2**20, accuracy.mean
            errors = {"xerr": memory.std / 2**20, "yerr": accuracy.std} if len(row.runs) > 1 else {}
            ax.errorbar(x, y, fmt="o", ms=6, color=colours[row.framework], capsize=3, **errors)
            ax.annotate(row.label, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=7)
        front = sorted(
            (r.stats["measured_peak_memory_bytes"].mean / 2**20, r.stats["online_accuracy"].mean)
            for r in rows
            if r.pareto
        )
        if front:
            xs, ys = zip(*front, strict=True)
            ax.plot(xs, ys, ":", color="black", lw=1, drawstyle="steps-post")
            ax.scatter(xs, ys, s=150, facecolors="none", edgecolors="black", zorder=3, label="Pareto front")
        for name, colour in colours.items():
            ax.plot([], [], "o", color=colour, label=name)
        ax.set_xscale("log")
        plain_log_ticks(ax, "x")
        ax.set_xlabel("measured peak memory (MiB, log)")
        ax.set_ylabel("online accuracy (%)")
        ax.grid(True, which="both", alpha=0.3)
        legend(ax, fontsize=8, loc="best")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
