"""What a replay measures, datum by datum, and how it becomes a `RunResult`.

Per datum: the prediction made at its `arrive` row, the lowest stage its backward reaches
(SPEC §3.2 omission; -1 if it never entered the pipeline), and the virtual time of the first
update that included its gradient at each stage (NaN: none). A datum counts as trained once
every stage its backward reaches has applied its gradient; its `trained_at_s` is the last of
those updates (the delay of its whole training, as the sequential frameworks report it).
"""

from __future__ import annotations

import numpy as np
import torch

from executor.data import Stream
from executor.ocl.evaluation import Evaluator
from executor.ocl.learner import PREDICT_CHUNK
from executor.ocl.modes import eval_mode
from executor.ocl.result import RunResult
from sim.result import measured_adaptation_rate, stream_horizon


class ModelView:
    """What `Evaluator` asks of a learner: the model's predictions and a version that changes
    whenever the model may have (so evaluations are cached between updates)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.version = 0

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        with eval_mode(self.model):
            return torch.cat([self.model(chunk).argmax(dim=1) for chunk in x.split(PREDICT_CHUNK)])


class ReplayRecords:
    """Per-datum measurements of a replay (prediction, lowest stage, update times) and its checkpoints.

    Turned into a `RunResult` at the end; see the module docstring for when a datum counts as trained.
    """

    def __init__(self, stream: Stream, num_stages: int, eval_every: int, device: torch.device) -> None:
        n = len(stream)
        self.stream = stream
        self.n = n
        self.predicted = np.full(n, -1, dtype=np.int64)
        self.bottom = np.full(n, -1, dtype=np.int64)
        self.update_s = np.full((n, num_stages), np.nan)
        self.evaluator = Evaluator(stream, device)
        points = set(range(eval_every, n + 1, eval_every)) if eval_every > 0 else set()
        self.checkpoints = np.array(sorted(points | {n}), dtype=np.int64)
        self.group_correct = np.zeros((len(self.checkpoints), self.evaluator.num_groups), dtype=np.int64)
        self.seen = np.zeros_like(self.group_correct, dtype=bool)
        self.checkpoint_index = 0
        self.staleness: list[list[int]] = [[0] for _ in range(num_stages)]  # per stage: gradients by staleness

    @property
    def next_checkpoint(self) -> int:
        k = self.checkpoint_index
        return int(self.checkpoints[k]) if k < len(self.checkpoints) else self.n + 1

    def evaluate(self, view: ModelView, arrived: int) -> None:
        """The test set at the checkpoint `arrived`, on the model as it is now."""
        k = self.checkpoint_index
        self.group_correct[k] = self.evaluator.group_correct(view)  # type: ignore[arg-type]
        self.seen[k] = self.evaluator.seen_after(arrived)
        self.checkpoint_index += 1

    def applied_staleness(self, stage: int, tau: int) -> None:
        hist = self.staleness[stage]
        if tau >= len(hist):
            hist.extend([0] * (tau + 1 - len(hist)))
        hist[tau] += 1

    def staleness_summary(self) -> dict[str, object]:
        total = sum(sum(h) for h in self.staleness)
        weighted = sum(tau * count for h in self.staleness for tau, count in enumerate(h))
        return {
            "staleness_histogram": [list(h) for h in self.staleness],
            "mean_staleness": weighted / total if total else None,
        }

    def updated(self, samples: tuple[int, ...], stage: int, t: float) -> None:
        column = self.update_s[:, stage]
        for s in samples:
            if np.isnan(column[s]):
                column[s] = t

    def trained_at(self) -> np.ndarray:
        """Per datum, the last first-update over the stages its backward reaches (inf: not all)."""
        num_stages = self.update_s.shape[1]
        reached = (np.arange(num_stages)[None, :] >= self.bottom[:, None]) & (self.bottom[:, None] >= 0)
        complete = np.where(reached, ~np.isnan(self.update_s), True).all(axis=1) & (self.bottom >= 0)
        last = np.where(reached, np.nan_to_num(self.update_s, nan=-np.inf), -np.inf).max(axis=1)
        return np.where(complete, last, np.inf)

    def stagewise_rate(self, shares: np.ndarray, decay_per_s: float, nominal_interval_s: float) -> float:
        """SPEC §2's measured adaptation rate: each stage's share of the weights, per datum."""
        arrival = self.stream.arrival_s
        horizon = stream_horizon(arrival, nominal_interval_s)
        return measured_adaptation_rate(self.update_s, arrival, shares, decay_per_s, horizon)

    def result(self, framework: str, algorithm: str, **work: object) -> RunResult:
        return RunResult(
            framework=framework,
            algorithm=algorithm,
            arrival_s=self.stream.arrival_s,
            labels=self.stream.labels,
            predicted=self.predicted,
            trained_at_s=self.trained_at(),
            checkpoint_samples=self.checkpoints,
            checkpoint_time_s=self.stream.arrival_s[self.checkpoints - 1],
            group_correct=self.group_correct,
            group_total=self.evaluator.group_total,
            seen=self.seen,
            **work,  # type: ignore[arg-type]
        )
