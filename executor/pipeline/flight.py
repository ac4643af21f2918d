"""A datum inside a replayed pipeline, and the loss its backward differentiates at a stage."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from executor.ocl.algorithms.base import OCLAlgorithm
from executor.ocl.batch import TrainBatch


class Flight:
    """One datum between its stage-0 forward and the end of its backward: its micro-batch (the
    algorithm's rows), the tensor travelling between stages (an activation going up, a
    gradient coming down), the lowest stage its backward reaches, and per stage the saved-tensor
    bytes it holds beyond its layer outputs (accounting.py). Budgeted OCL adds the last stage's
    output (`logits`, for the freezing decision; the decision itself is `batch.frozen_layers`),
    the lowest stage whose backward trained so far (`trained`: above `bottom` when a frozen
    prefix stopped it) and the per-sample gradient columns its backward has yielded so far
    (`columns`: `(G, first column)`, for the similarity-aware sampler). LwF adds the generation
    of the teacher the datum is distilled from (`generation`, 0: none) and the teacher's
    activation going up beside the student's (`teacher`)."""

    __slots__ = (
        "batch", "bottom", "carry", "columns", "deltas", "generation", "input_bytes", "label_bytes", "logits", "ready",
        "teacher", "trained", "worker",
    )  # fmt: skip

    def __init__(
        self, batch: TrainBatch, worker: int, bottom: int, num_stages: int, label_bytes: int, input_bytes: int = 0
    ) -> None:
        self.batch = batch
        self.input_bytes = input_bytes  # stage 0's process: the datum's input, held until its first forward
        self.worker = worker
        self.bottom = bottom
        self.carry: torch.Tensor | None = batch.x
        self.deltas = [0] * num_stages
        self.label_bytes = label_bytes
        self.ready: Any = None  # a CUDA event `carry` is valid after (distributed --streams), else None
        self.logits: torch.Tensor | None = None
        self.trained = num_stages  # no backward yet
        self.columns: tuple[torch.Tensor, int] | None = None
        self.generation = 0
        self.teacher: torch.Tensor | None = None

    def add_columns(self, columns: tuple[torch.Tensor, int] | None) -> None:
        """Prepend a lower stage's columns (a backward goes down, the columns count up)."""
        if columns is None:
            return
        if self.columns is None:
            self.columns = columns
            return
        grads, first = columns
        above, start = self.columns
        if first + grads.shape[1] != start:
            raise RuntimeError(f"per-sample gradient columns {first}..{first + grads.shape[1]} do not meet {start}")
        self.columns = (torch.cat([grads, above], dim=1), first)


def stage_loss(
    algorithm: OCLAlgorithm,
    batch: TrainBatch,
    grad: torch.Tensor | None,
    penalized: Sequence[tuple[str, nn.Parameter]] | None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """What a stage's backward differentiates. At the last stage (`grad` None) the algorithm's
    training loss on the logits; below it `⟨out, grad⟩`, whose gradient is exactly the chain
    rule's from above. Plus, when `penalized` names the stage's stashed parameters, the
    algorithm's penalty on them (MAS), so every stage takes its share of it at the weights its
    forward used."""

    def loss(out: torch.Tensor) -> torch.Tensor:
        value = algorithm.loss(out, batch) if grad is None else (out * grad).sum()
        if penalized is not None:
            term = algorithm.penalty(penalized)
            if term is not None:
                value = value + term
        return value

    return loss
