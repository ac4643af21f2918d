"""The passes an OCL algorithm makes through the stages besides a datum's training, across ranks.

* MAS's importance pass (executor/pipeline/importance.py): when a datum's backward is over the
  source starts it; it goes up the stages and back down (`IMPORTANCE_UP`, `IMPORTANCE_DOWN`),
  and the datum is done (`StageHost.on_done`) when it is back at stage 0 — so admission,
  checkpoints and the end of the run wait for it.
* MIR's scoring (executor/pipeline/scoring.py): the source draws an admitted datum's replay
  candidates; three passes go up, down and up the stages (`SCORING`); the last stage sends the
  scores to the source, which chooses the replay and makes the datum's stage-0 forward ready.
  With nothing to score (a memory too small) pass 1 still goes up, marked skip, so that every
  owner knows (lockstep waits for it at the datum's stage-0 forward row).

Each stage's part runs on its owner as an op of its own, after every training op in dispatch
order (ready.py), and is not a row of the trace; a part's result goes to the next stage's owner
— this rank (the op is ready at once) or another (a protocol message).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from executor.distributed import protocol
from executor.ocl.algorithms.mir import Candidates
from executor.ocl.batch import TrainBatch
from executor.pipeline.scoring import Labels
from executor.pipeline.transport import Message
from sim.policy import FWD

if TYPE_CHECKING:
    from executor.distributed.host import StageHost

# The ops' kinds, after the inference forward (FWD + 1) in dispatch order.
IMPORTANCE_UP = FWD + 2
IMPORTANCE_DOWN = FWD + 3
SCORING = (FWD + 4, FWD + 5, FWD + 6)  # MIR's pass 1 (up), 2 (down), 3 (up)


class AlgorithmPasses:
    """One rank's share of MAS's importance passes and MIR's scoring passes (module docstring)."""

    def __init__(self, host: StageHost) -> None:
        self.host = host
        self._importance_in: dict[tuple[int, int], torch.Tensor] = {}  # (sample, stage) → input
        self._importance_open: dict[int, tuple[int, int]] = {}  # the source: sample → (worker, trained)
        self._scoring_in: dict[tuple[int, int, int], tuple[torch.Tensor, ...]] = {}  # (sample, stage, pass)
        self.skipped: set[int] = set()  # data whose pass 1 said there is nothing to score
        # The source: sample → its admission (worker, bottom, x, y, task), its batch so far, the candidates.
        self._scoring_open: dict[int, tuple[tuple[Any, ...], TrainBatch, Candidates]] = {}

    def run(self, kind: int, sample: int, stage: int) -> None:
        if kind in (IMPORTANCE_UP, IMPORTANCE_DOWN):
            self._importance(sample, stage, kind == IMPORTANCE_UP)
        else:
            self._score(sample, stage, SCORING.index(kind) + 1)

    def receive(self, message: Message) -> None:
        if message.kind == protocol.Kind.IMPORTANCE:
            sample, stage, up = message.fields[:3]
            self._importance_to(sample, stage, bool(up), message.tensors[0])
            return
        sample, stage, step, skip = message.fields[:4]
        if step == 4:
            self._scored(sample, message.tensors[0] if message.tensors else None)
        else:
            self._score_to(sample, stage, step, message.tensors, bool(skip))

    # ------------------------------------------------------------------ MAS
    def start_importance(self, sample: int, worker: int, trained: int, rows: torch.Tensor) -> None:
        """The source: `sample`'s backward is over; its importance pass starts on `rows`."""
        self._importance_open[sample] = (worker, trained)
        self._importance_to(sample, 0, True, rows)

    def _importance(self, sample: int, stage: int, up: bool) -> None:
        host = self.host
        importance = host.worker.importance
        assert importance is not None
        x = self._importance_in.pop((sample, stage))
        out = host.worker.timed(importance.up if up else importance.down, sample, stage, x)
        host._count()
        if up and stage < host.P - 1:
            assert out is not None
            self._importance_to(sample, stage + 1, True, out)
        elif stage > 0:
            assert out is not None
            self._importance_to(sample, stage - 1, False, out)
        else:  # back at stage 0, on the source: the datum is done
            host.on_done(sample, *self._importance_open.pop(sample))

    def _importance_to(self, sample: int, stage: int, up: bool, tensor: torch.Tensor) -> None:
        host = self.host
        if host.owns(stage):
            self._importance_in[(sample, stage)] = tensor
            host.on_ready(IMPORTANCE_UP if up else IMPORTANCE_DOWN, sample, stage, -1, False)
        else:
            host.transport.send(host.owners[stage], protocol.importance(sample, stage, up, tensor))

    # ------------------------------------------------------------------ MIR
    def start_scoring(self, sample: int, admission: tuple[Any, ...]) -> None:
        """The source admitted `sample` (`(worker, bottom, x, y, task)`): draw its candidates;
        their scoring passes start at stage 0."""
        scoring = self.host.worker.scoring
        assert scoring is not None
        x, y, task = admission[2:]
        given = TrainBatch.fresh(x, y, task=task)
        drawn = scoring.draw(given)
        self._scoring_open[sample] = (admission, given, drawn)
        if not drawn.scored:
            self._score_to(sample, 0, 1, (), skip=True)
            return
        labels = scoring.labels(given, drawn)
        weight = () if labels.new_weight is None else (labels.new_weight,)
        self._score_to(sample, 0, 1, (x[: given.num_new], drawn.x, labels.new_y, labels.cand_y, *weight))

    def _score(self, sample: int, stage: int, step: int) -> None:
        host = self.host
        inputs = self._scoring_in.pop((sample, stage, step))
        last = stage == host.P - 1
        if sample in self.skipped:  # nothing to score: pass 1 tells every owner
            if last:
                self._scores(sample, None)
            else:
                self._score_to(sample, stage + 1, 1, (), skip=True)
            return
        scoring = host.worker.scoring
        assert scoring is not None
        if step == 1:
            new_x, cand_x, new_y, cand_y, *weight = inputs
            labels = Labels(new_y, weight[0] if weight else None, cand_y)
            out = host.worker.timed(scoring.first, sample, stage, new_x, cand_x, labels)
        else:
            out = host.worker.timed(scoring.down if step == 2 else scoring.second, sample, stage, inputs[0])
        host._count()
        if step == 1 and not last:  # the new rows' and candidates' outputs, their labels
            assert isinstance(out, tuple)
            self._score_to(sample, stage + 1, 1, (*out, *inputs[2:]))
        elif step == 3:
            assert isinstance(out, torch.Tensor)
            if last:
                self._scores(sample, out)
            else:
                self._score_to(sample, stage + 1, 3, (out,))
        elif stage > 0:  # pass 2 (which the last stage's pass 1 begins)
            assert isinstance(out, torch.Tensor)
            self._score_to(sample, stage - 1, 2, (out,))
        else:  # the virtual step is taken everywhere: the candidates go through it
            self._score_to(sample, 0, 3, (self._scoring_open[sample][2].x,))

    def _score_to(
        self, sample: int, stage: int, step: int, tensors: tuple[torch.Tensor, ...], skip: bool = False
    ) -> None:
        host = self.host
        if not host.owns(stage):
            host.transport.send(host.owners[stage], protocol.score(sample, stage, step, tensors, skip))
            return
        if skip:
            self.skipped.add(sample)
        self._scoring_in[(sample, stage, step)] = tensors
        host.on_ready(SCORING[step - 1], sample, stage, -1, False)

    def _scores(self, sample: int, scores: torch.Tensor | None) -> None:
        """The last stage: the scores (None: skipped) go to the source."""
        host = self.host
        if host.rank != host.source:
            host.transport.send(host.source, protocol.score(sample, -1, 4, () if scores is None else (scores,)))
        else:
            self._scored(sample, scores)

    def _scored(self, sample: int, scores: torch.Tensor | None) -> None:
        """The source: the datum's batch with MIR's choice; its stage-0 forward is ready."""
        host = self.host
        admission, given, drawn = self._scoring_open.pop(sample)
        worker, bottom = admission[0], admission[1]
        scoring = host.worker.scoring
        assert scoring is not None
        host.entering[sample] = (*admission, scoring.batch(given, drawn, scores))
        host.on_ready(FWD, sample, 0, worker, bottom == 0)
