"""`RunResult`: everything a run measured, framework-independent; metrics are computed from it.

Per datum (stream position): arrival time, label, the prediction made on arrival, and when an
update that included it became visible (`inf` if it was never trained on). Per checkpoint
(every `eval_every` arrivals and at the end): correct test predictions per group — a class,
or a (domain, class) cell on streams with test domains — and which groups the stream had
shown by then. Plus the work done (steps, FLOPs, busy time) and the
memory measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class RunResult:
    framework: str
    algorithm: str
    arrival_s: np.ndarray
    labels: np.ndarray
    predicted: np.ndarray
    trained_at_s: np.ndarray
    checkpoint_samples: np.ndarray
    checkpoint_time_s: np.ndarray
    group_correct: np.ndarray
    group_total: np.ndarray
    seen: np.ndarray
    steps: int
    train_flops: float
    busy_s: float
    peak_memory_bytes: int
    peak_memory_by_category: dict[str, int] = field(default_factory=dict)
    cuda_peak_memory_bytes: int | None = None
    wall_s: float = 0.0
    # Peak of the stored state (SPEC §10.1's memory: weights, optimizer, extra state, replay, window).
    stored_peak_bytes: int | None = None
    # Framework-specific numbers (e.g. a pipeline's staleness statistics), copied into the summary.
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.arrival_s)
        for name in ("labels", "predicted", "trained_at_s"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"RunResult.{name} has {len(getattr(self, name))} entries for {n} arrivals")
        k = len(self.checkpoint_samples)
        if self.group_correct.shape != (k, len(self.group_total)) or self.seen.shape != self.group_correct.shape:
            raise ValueError("RunResult checkpoint arrays disagree in shape")

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.labels

    @property
    def trained(self) -> np.ndarray:
        return np.isfinite(self.trained_at_s)

    @property
    def samples(self) -> int:
        return len(self.arrival_s)
