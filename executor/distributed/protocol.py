"""What the ranks of a distributed run say to each other (carried by transport.py, in order).

| kind | from → to | fields | tensors |
| --- | --- | --- | --- |
| `ACT` | owner of stage j−1 → owner of stage j | sample, worker, stage j, bottom, num_new, task, flags (1: row weights, 2: Fisher, 4: teacher), generation of LwF's teacher / MAS's anchor | activation, labels (, row weights) (, Fisher traces of layers `< partition[j]`) (, teacher activation, teacher classes) |
| `GRAD` | owner of stage j+1 → owner of stage j | sample, worker, stage j, frozen layers, lowest trained stage, has gradient, first column (−1: none) | (d loss / d activation) (, per-sample gradient columns) |
| `DONE` | owner of the datum's lowest backward stage → the source | sample, worker, lowest trained stage, first column (−1: none) | (per-sample gradient columns) |
| `IMPORTANCE` | owner of stage j∓1 → owner of stage j (MAS) | sample, stage j, up (1) or down (0) | the importance pass's activation (up) or gradient (down) |
| `SCORE` | owner of stage j∓1 → owner of stage j; the last stage's → the source (MIR) | sample, stage j, pass (1 up, 2 down, 3 up, 4 the scores), skip | pass 1: new rows' and candidates' activations, their labels (, the new rows' weights); 2: gradient; 3: candidates' activation; 4: scores |
| `INFER` | owner of stage j−1 → owner of stage j (`--predict-all`) | sample, stage j | activation |
| `PREDICTED` | owner of the last stage → the source | sample, class | — |
| `BATCH` | the source → the owner of stage 1, relayed up the stages (batched strategies) | worker, batch index, size | per stage, the batch's backwards there |
| `FLUSH` | the source → every stage owner | worker | — |
| `STOP` | the source → every rank | — | — |
| `CHECKPOINT` | the source → every rank (pipeline quiescent) | stream position | — |
| `SAVED` | every rank → the source (its own: into its inbox) | stream position, outcome (0: snapshotted, 1: written, 2: write failed; checkpoint.py) | — |

The source is the owner of stage 0: it releases arrivals, admits or drops them, and keeps
each admitted datum's micro-batch until `DONE` says its backward is over (ER's buffer insert
happens there). Everything a datum does is done when its `DONE` arrives, so after the stream
ended and every worker drained, `FLUSH` (apply open gradient groups) and then `STOP` close
the run; a channel is ordered, so every rank sees `FLUSH` before `STOP`.

Budgeted OCL (aL-SAR) rides on the same messages. The last stage decides a datum's frozen
prefix; its `GRAD`s carry it down (with no gradient below the stage where the prefix ends: the
stages under it only release the datum) and the lowest stage that trained, which `DONE` brings
to the source. The per-sample gradient columns each stage yields for the similarity-aware
sampler travel down the same way to the source, where the sampler lives. Each stage's Fisher
traces (freezing's statistics of its own layers) travel up with the activations, so the last
stage decides on every layer's.

A synchronous strategy (GPipe, 1F1B-flush) starts a mini-batch at the source; its `BATCH`
travels the activations' path ahead of them — each owner relays it to the next stage's owner
before it sends any of the batch's activations there — so an owner knows the batch (GPipe's
barrier, where its groups close) before any of its data reach it (batches.py).

LwF's teacher and MAS's anchor live per stage with the stage's owner (lwf.py, mas.py): an `ACT`
carries the generation of the teacher (anchor) its datum belongs to — the source decided it at
admission, so every owner takes its stage's share at the same datum — and LwF's teacher
activation beside the student's, with the classes it distils, to the last stage's loss. MAS's
importance pass of a datum whose backward is over goes up and down the stages in `IMPORTANCE`
messages; the source counts the datum done when the pass is back (so a checkpoint or the end
of the run waits for it). MIR scores a datum's replay candidates before its first forward in
three passes over the stages (executor/pipeline/scoring.py) in `SCORE` messages; with nothing to
score (a memory too small) pass 1 still goes up, marked `skip`, so that every owner knows.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, NamedTuple

import torch

from executor.ocl.batch import TrainBatch
from executor.pipeline.transport import Message


class Kind(IntEnum):
    """The message kinds of the table in the module docstring; the value is the header's kind code."""

    ACT = 0
    GRAD = 1
    DONE = 2
    INFER = 3
    PREDICTED = 4
    FLUSH = 5
    STOP = 6
    CHECKPOINT = 7
    SAVED = 8
    BATCH = 9
    IMPORTANCE = 10
    SCORE = 11


class Activation(NamedTuple):
    """A datum's activation on its way to stage `stage`, with what the loss will need (and the
    Fisher traces of the layers below, when the algorithm freezes; LwF's teacher activation of
    `generation`, whose classes are `batch.teacher_classes`). (A named tuple: one is made per
    message, on the hot path.)"""

    sample: int
    worker: int
    stage: int
    bottom: int
    batch: TrainBatch  # x: the activation
    fisher: torch.Tensor | None = None
    teacher: torch.Tensor | None = None
    generation: int = 0

    def message(self) -> Message:
        return activation(
            self.sample, self.worker, self.stage, self.bottom, self.batch, self.batch.x, self.fisher, self.teacher,
            self.generation,
        )  # fmt: skip

    @classmethod
    def parse(cls, message: Message) -> Activation:
        sample, worker, stage, bottom, num_new, task, flags, generation = message.fields[:8]
        x, y, *optional = message.tensors
        weight = optional.pop(0) if flags & _WEIGHTS else None
        fisher = optional.pop(0) if flags & _FISHER else None
        teacher, classes = (optional.pop(0), optional.pop(0)) if flags & _TEACHER else (None, None)
        batch = TrainBatch(x, y, num_new=num_new, weight=weight, task=task, teacher_classes=classes)
        return cls(sample, worker, stage, bottom, batch, fisher, teacher, generation)


_WEIGHTS, _FISHER, _TEACHER = 1, 2, 4  # the `ACT` flags


def activation(
    sample: int,
    worker: int,
    stage: int,
    bottom: int,
    batch: TrainBatch,
    x: torch.Tensor,
    fisher: torch.Tensor | None,
    teacher: torch.Tensor | None = None,
    generation: int = 0,
) -> Message:
    """The `ACT` of `batch` whose input `x` has reached stage `stage` (the batch's own `x` is
    the datum's input: a stage above 0 sends its output instead, with the batch's labels), and
    the `generation` of LwF's teacher (with its activation `teacher` and the batch's teacher
    classes) or MAS's anchor."""
    weight = batch.weight
    flags = (
        (_WEIGHTS if weight is not None else 0)
        | (_FISHER if fisher is not None else 0)
        | (_TEACHER if teacher is not None else 0)
    )
    fields = (sample, worker, stage, bottom, batch.num_new, batch.task, flags, generation)
    if not flags:
        return Message(Kind.ACT, fields, (x, batch.y))
    tensors = [x, batch.y, *(t for t in (weight, fisher) if t is not None)]
    if teacher is not None:
        assert batch.teacher_classes is not None
        tensors += (teacher, batch.teacher_classes)
    return Message(Kind.ACT, fields, tuple(tensors))


Columns = tuple[torch.Tensor, int]  # per-sample gradient columns and the first one's index


class Gradient(NamedTuple):
    """A datum's backward on its way down to stage `stage`: the gradient (None below the stage
    where its frozen prefix ends), the prefix, the lowest stage trained so far, the columns."""

    sample: int
    worker: int
    stage: int
    grad: torch.Tensor | None
    frozen_layers: int = 0
    trained: int = -1
    columns: Columns | None = None

    def message(self, ready: Any = None) -> Message:
        """`ready`: the CUDA event the tensors are valid after (--streams), else None."""
        return gradient(*self, ready=ready)

    @classmethod
    def parse(cls, message: Message) -> Gradient:
        sample, worker, stage, frozen, trained, has_grad, first = message.fields[:7]
        tensors = list(message.tensors)
        grad = tensors.pop(0) if has_grad else None
        columns = (tensors.pop(0), first) if first >= 0 else None
        return cls(sample, worker, stage, grad, frozen, trained, columns)


def gradient(
    sample: int,
    worker: int,
    stage: int,
    grad: torch.Tensor | None,
    frozen_layers: int = 0,
    trained: int = -1,
    columns: Columns | None = None,
    ready: Any = None,
) -> Message:
    """The `GRAD` message (`Gradient(...).message(ready)`, without making the tuple first)."""
    fields = (
        sample,
        worker,
        stage,
        frozen_layers,
        trained,
        int(grad is not None),
        -1 if columns is None else columns[1],
    )
    if columns is None:
        return Message(Kind.GRAD, fields, () if grad is None else (grad,), ready)
    return Message(Kind.GRAD, fields, (columns[0],) if grad is None else (grad, columns[0]), ready)


def done(sample: int, worker: int, trained: int, columns: Columns | None = None) -> Message:
    if columns is None:
        return Message(Kind.DONE, (sample, worker, trained, -1))
    return Message(Kind.DONE, (sample, worker, trained, columns[1]), (columns[0],))


def parse_done(message: Message) -> tuple[int, int, int, Columns | None]:
    """`(sample, worker, lowest trained stage, columns)` of a `DONE`."""
    sample, worker, trained, first = message.fields[:4]
    return sample, worker, trained, (message.tensors[0], first) if first >= 0 else None


def importance(sample: int, stage: int, up: bool, tensor: torch.Tensor) -> Message:
    return Message(Kind.IMPORTANCE, (sample, stage, int(up)), (tensor,))


def score(sample: int, stage: int, step: int, tensors: tuple[torch.Tensor, ...] = (), skip: bool = False) -> Message:
    """MIR's scoring pass `step` (1–3; 4: the scores, to the source) of `sample` at `stage`."""
    return Message(Kind.SCORE, (sample, stage, step, int(skip)), tensors)


def infer(sample: int, stage: int, x: torch.Tensor, ready: Any = None) -> Message:
    return Message(Kind.INFER, (sample, stage), (x,), ready)


def predicted(sample: int, label: int) -> Message:
    return Message(Kind.PREDICTED, (sample, label))


def flush(worker: int) -> Message:
    return Message(Kind.FLUSH, (worker,))


def batch(worker: int, index: int, size: int, backwards: torch.Tensor) -> Message:
    """`backwards[j]`: how many of the batch's data back-propagate through stage `j`."""
    return Message(Kind.BATCH, (worker, index, size), (backwards,))


def checkpoint(position: int) -> Message:
    return Message(Kind.CHECKPOINT, (position,))


def saved(position: int, outcome: int) -> Message:
    return Message(Kind.SAVED, (position, outcome))


STOP = Message(Kind.STOP)
