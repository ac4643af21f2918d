"""Class similarity from per-sample gradients (aL-SAR, SPEC §10.3).

Per class `y`, exponential moving averages (ratio `EMA`) over the training rows of that class:
the class-mean gradient `ḡ_y` (of the fixed weight subset of `executor.ocl.sample_grads`,
entries clamped to [−1, 1]), `σ_y` of `cos(g, ḡ_y)` (taken after `ḡ_y` moved), and the bias
factor `e_y ← e_y + EMA·(1 − e_y)`. Rows update in batch order, one after another. Then

    S_{a,b} = cos(ḡ_a, ḡ_b) · sqrt(σ_a·σ_b) · e_a·e_b

and a class never trained on has `e = 0`, hence `S = 0`. When the step froze a prefix, only
the suffix columns of `ḡ_y` move and `cos(g, ḡ_y)` is taken over them (the reference code's
behaviour). Statistics are stored in float32 and updated in float64. **Decisions:** `σ` starts at 1 (the reference's first class); `σ_a·σ_b` is clamped
at 0 inside the square root (early negative cosines would make it NaN); a zero vector has
cosine 0 with everything.
"""

from __future__ import annotations

from typing import Any

import numpy as np

EMA = 0.001


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of `a` and `b` (broadcast), 0 where either is the zero vector."""
    norms = np.sqrt(np.sum(a * a, axis=-1) * np.sum(b * b, axis=-1))
    dots = np.sum(a * b, axis=-1)
    return np.divide(dots, norms, out=np.zeros(np.shape(dots)), where=norms > 0)


class ClassSimilarity:
    """aL-SAR's class-similarity statistics `ḡ_y`, `σ_y`, `e_y` and the matrix `S` built from them.

    `update` folds a batch's per-sample gradient columns in; statistics are float32 and their size is
    `nbytes` (`bytes_for` predicts it before one exists). See the module docstring.
    """

    def __init__(self, num_classes: int, size: int) -> None:
        # Stored in float32, the gradients' own precision (bytes count against a memory budget).
        self.mean_grad = np.zeros((num_classes, size), dtype=np.float32)
        self.self_similarity = np.ones(num_classes, dtype=np.float32)
        self.bias = np.zeros(num_classes, dtype=np.float32)
        self._matrix: np.ndarray | None = None  # S, until the next update

    @property
    def nbytes(self) -> int:
        return self.mean_grad.nbytes + self.self_similarity.nbytes + self.bias.nbytes

    @staticmethod
    def bytes_for(num_classes: int, size: int) -> int:
        """What `nbytes` is for these sizes (float32 statistics), before any object exists."""
        return 4 * num_classes * (size + 2)

    def state_dict(self) -> dict[str, Any]:
        """The statistics (copies)."""
        return {
            "mean_grad": self.mean_grad.copy(),
            "self_similarity": self.self_similarity.copy(),
            "bias": self.bias.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict()` of statistics of the same shape."""
        if state["mean_grad"].shape != self.mean_grad.shape:
            raise ValueError(f"class statistics of shape {state['mean_grad'].shape}, expected {self.mean_grad.shape}")
        self.mean_grad = state["mean_grad"].astype(np.float32, copy=True)
        self.self_similarity = state["self_similarity"].astype(np.float32, copy=True)
        self.bias = state["bias"].astype(np.float32, copy=True)
        self._matrix = None

    def update(self, grads: np.ndarray, labels: np.ndarray, first: int) -> None:
        """Rows `grads[b]` (columns `first..`) of classes `labels[b]`, in order.

        The rows of one class update its EMAs one after another; they are unrolled in closed
        form, `ḡ_j = (1−r)^j·ḡ_0 + Σ_{i≤j} r(1−r)^{j−i}·g_i` (and likewise `σ`, `e`), which is
        the sequential update exactly, in a few array operations per class."""
        self._matrix = None
        grads = np.clip(grads, -1.0, 1.0)
        keep = 1.0 - EMA
        for y in np.unique(labels).tolist():
            rows = grads[labels == y]
            m = len(rows)
            steps = np.arange(1, m + 1)
            lag = steps[:, None] - steps[None, :]  # j − i
            weights = np.where(lag >= 0, EMA * keep ** np.maximum(lag, 0), 0.0)
            start = self.mean_grad[y, first:].astype(np.float64)
            means = keep ** steps[:, None] * start[None, :] + weights @ rows  # ḡ after each row
            cosines = _cosine(rows, means)
            self.self_similarity[y] = keep**m * float(self.self_similarity[y]) + weights[-1] @ cosines
            self.bias[y] = 1.0 - keep**m * (1.0 - float(self.bias[y]))
            self.mean_grad[y, first:] = means[-1]

    def matrix(self) -> np.ndarray:
        """`S` (SPEC §10.3), classes × classes."""
        if self._matrix is None:
            mean = self.mean_grad.astype(np.float64)
            sigma, bias = self.self_similarity.astype(np.float64), self.bias.astype(np.float64)
            cos = _cosine(mean[:, None, :], mean[None, :, :])
            scale = np.sqrt(np.maximum(sigma[:, None] * sigma[None, :], 0.0))
            self._matrix = cos * scale * bias[:, None] * bias[None, :]
        return self._matrix

    @staticmethod
    def update_flops(rows: int, columns: int) -> float:
        """Per row: the mean's EMA (3 per column), clamp (1) and cosine (≈ 3 per column)."""
        return float(rows * 7 * columns)
