"""What the analysis figures share: matplotlib on the Agg backend, and log axes with plain ticks."""

from __future__ import annotations

from typing import Any


def pyplot() -> Any:
    """`matplotlib.pyplot`, drawing off-screen (no display needed); imported only when a figure is made."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plain_log_ticks(ax: Any, which: str) -> None:
    """Log-scale ticks at 1, 2, 5 × 10^k, written as plain numbers (20, 50, 100)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def legend(ax: Any, **kwargs: Any) -> None:
    """`ax.legend(**kwargs)` when some artist of `ax` has a label; nothing otherwise (an empty
    legend only makes matplotlib warn on the user's terminal: a sweep with nothing feasible)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)
