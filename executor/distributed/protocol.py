"""What the ranks of a distributed run say to each other (carried by transport.py, in order).

| kind | from → to | fields | tensors |
| --- | --- | --- | --- |
| `ACT` | owner of stage j−1 → owner of stage j | sample, worker, stage j, bottom, num_new, task | activation, labels (, row weights) |
| `GRAD` | owner of stage j+1 → owner of stage j | sample, worker, stage j | d loss / d activation |
| `DONE` | owner of the datum's lowest backward stage → the source | sample, worker | — |
| `INFER` | owner of stage j−1 → owner of stage j (`--predict-all`) | sample, stage j | activation |
| `PREDICTED` | owner of the last stage → the source | sample, class | — |
| `FLUSH` | the source → every stage owner | worker | — |
| `STOP` | the source → every rank | — | — |
| `CHECKPOINT` | the source → every rank (pipeline quiescent) | stream position | — |
| `SAVED` | every rank → the source | stream position | — |

The source is the owner of stage 0: it releases arrivals, admits or drops them, and keeps
each admitted datum's micro-batch until `DONE` says its backward is over (ER's buffer insert
happens there). Everything a datum does is done when its `DONE` arrives, so after the stream
ended and every worker drained, `FLUSH` (apply open gradient groups) and then `STOP` close
the run; a channel is ordered, so every rank sees `FLUSH` before `STOP`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import torch

from executor.ocl.batch import TrainBatch
from executor.pipeline.transport import Message


class Kind(IntEnum):
    ACT = 0
    GRAD = 1
    DONE = 2
    INFER = 3
    PREDICTED = 4
    FLUSH = 5
    STOP = 6
    CHECKPOINT = 7
    SAVED = 8


@dataclass(frozen=True, slots=True)
class Activation:
    """A datum's activation on its way to stage `stage`, with what the loss will need."""

    sample: int
    worker: int
    stage: int
    bottom: int
    batch: TrainBatch  # x: the activation

    def message(self) -> Message:
        b = self.batch
        tensors = (b.x, b.y) if b.weight is None else (b.x, b.y, b.weight)
        return Message(Kind.ACT, (self.sample, self.worker, self.stage, self.bottom, b.num_new, b.task), tensors)

    @classmethod
    def parse(cls, message: Message) -> Activation:
        sample, worker, stage, bottom, num_new, task = message.fields[:6]
        x, y = message.tensors[0], message.tensors[1]
        weight = message.tensors[2] if len(message.tensors) > 2 else None
        return cls(sample, worker, stage, bottom, TrainBatch(x, y, num_new=num_new, weight=weight, task=task))


def gradient(sample: int, worker: int, stage: int, grad: torch.Tensor) -> Message:
    return Message(Kind.GRAD, (sample, worker, stage), (grad,))


def done(sample: int, worker: int) -> Message:
    return Message(Kind.DONE, (sample, worker))


def infer(sample: int, stage: int, x: torch.Tensor) -> Message:
    return Message(Kind.INFER, (sample, stage), (x,))


def predicted(sample: int, label: int) -> Message:
    return Message(Kind.PREDICTED, (sample, label))


def flush(worker: int) -> Message:
    return Message(Kind.FLUSH, (worker,))


def checkpoint(position: int) -> Message:
    return Message(Kind.CHECKPOINT, (position,))


def saved(position: int) -> Message:
    return Message(Kind.SAVED, (position,))


STOP = Message(Kind.STOP)
