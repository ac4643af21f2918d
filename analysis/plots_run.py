"""The accuracy-curve figure of a run: online accuracy over the stream, test accuracy at checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.plot_style import pyplot

MAX_POINTS = 2000


def plot_accuracy_curves(
    path: str | Path,
    online_curve: np.ndarray,
    checkpoint_samples: np.ndarray,
    test_curve: np.ndarray,
    title: str,
) -> None:
    """Write a PNG: online accuracy vs samples seen (line), seen-class test accuracy (markers)."""
    plt = pyplot()
    n = len(online_curve)
    # A long stream's curve is thinned to at most MAX_POINTS points; the last point is kept.
    index = np.unique(np.linspace(0, n - 1, num=min(n, MAX_POINTS)).round().astype(np.int64))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    try:
        ax.plot(index + 1, online_curve[index], label="online accuracy", color="tab:blue")
        valid = np.isfinite(test_curve)
        ax.plot(
            checkpoint_samples[valid], test_curve[valid], "o-", ms=3, label="test accuracy (seen)", color="tab:orange"
        )
        ax.set_xlabel("stream samples")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_xlim(0, n + 1)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
