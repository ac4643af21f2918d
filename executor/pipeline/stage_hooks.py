"""An OCL algorithm's own work inside the pipeline's ops: one `StageHooks` per `StageWorker`.

The op bodies (stage_worker.py) are every algorithm's; an algorithm's own work joins them at
three points, and `stage_hooks` picks, once, what each built-in algorithm does there:

* `micro_batch(given)` — stage 0, at the datum's first forward: the batch it trains on and the
  generation of the teacher (anchor) it carries up (0: none). By default the algorithm's
  `observe` (ER draws its replay here). LwF and MAS `consolidate` instead (lwf.py, mas.py: the
  teacher and the anchor live per stage); MIR draws its candidates, scores them through the
  stages and chooses (scoring.py) — here when this process has every stage; otherwise the
  caller scores them across processes and hands `StageWorker.admit` the batch.
* `before_forward(flight, stage, x)` — only for a datum that carries a generation, before the
  student's forward of `stage`: LwF brings the stage's teacher up to it and runs it on the
  datum's teacher activation (`Flight.teacher`, the teacher logits at the last stage); MAS
  takes the stage's anchor from its weights as they are.
* `finish(flight)` — stage 0's process, once the datum's backward is over: `after_update`
  (ER's buffer insert). MAS's importance pass (importance.py) runs here when this process has
  every stage; otherwise its input rows are returned, for the caller to take through the stages.

The passes' objects are the hooks' (`scoring`: MIR's, `importance`: MAS's; None otherwise);
the distributed host drives them across ranks (executor/distributed/passes.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from executor.ledger import tensor_bytes
from executor.ocl.algorithms.base import OCLAlgorithm
from executor.ocl.algorithms.lwf import LearningWithoutForgetting
from executor.ocl.algorithms.mas import MemoryAwareSynapses
from executor.ocl.algorithms.mir import MaximallyInterferedRetrieval
from executor.ocl.batch import TrainBatch
from executor.pipeline.flight import Flight
from executor.pipeline.importance import StageImportance
from executor.pipeline.scoring import StageScoring
from planner.errors import FerretError

if TYPE_CHECKING:
    from executor.pipeline.stage_worker import StageWorker


class StageHooks:
    """An algorithm with no per-stage work of its own: `observe` builds the batch, `after_update` ends it.

    Subclasses override the points their algorithm needs (see the module docstring).
    """

    scoring: StageScoring | None = None
    importance: StageImportance | None = None

    def __init__(self, worker: StageWorker) -> None:
        self.worker = worker
        self.algorithm: OCLAlgorithm = worker.algorithm

    def micro_batch(self, given: TrainBatch) -> tuple[TrainBatch, int]:
        return self.algorithm.observe(self.worker.model, given), 0

    def before_forward(self, flight: Flight, stage: int, x: torch.Tensor) -> None:
        """Never called: a datum carries a generation only from an algorithm that numbers them."""

    def finish(self, flight: Flight) -> torch.Tensor | None:
        self.algorithm.after_update(self.worker.model, flight.batch)
        return None


class TeacherHooks(StageHooks):
    """LwF: the teacher is taken and run stage by stage, its activation riding up beside the student's."""

    def __init__(self, worker: StageWorker, lwf: LearningWithoutForgetting) -> None:
        super().__init__(worker)
        self.lwf = lwf

    def micro_batch(self, given: TrainBatch) -> tuple[TrainBatch, int]:
        return self.lwf.consolidate(given)

    def before_forward(self, flight: Flight, stage: int, x: torch.Tensor) -> None:
        worker = self.worker
        span = (worker.partition[stage], worker.partition[stage + 1])
        before = tensor_bytes(flight.teacher)
        teacher_in = x if stage == 0 else flight.teacher
        if teacher_in is None:
            raise FerretError(f"stage {stage} forward of a datum distilled from a teacher, without its activation")
        out = self.lwf.teacher_forward(stage, worker.model, span, flight.generation, teacher_in)
        batch = flight.batch
        if stage == worker.P - 1:
            batch.teacher_logits = out[:, batch.teacher_classes]
            flight.teacher = None
            after = tensor_bytes(batch.teacher_logits)
        else:
            flight.teacher = out
            after = tensor_bytes(out)
        if after > before:
            worker.ledger.alloc("inputs", after - before)
        elif before > after:
            worker.ledger.free("inputs", before - after)
        flight.label_bytes += after - before


class AnchorHooks(StageHooks):
    """MAS: the anchor is taken stage by stage; the importance pass follows a datum's backward."""

    def __init__(self, worker: StageWorker, mas: MemoryAwareSynapses) -> None:
        super().__init__(worker)
        self.mas = mas
        self.importance = StageImportance(worker.stages, worker.names, worker.P, mas)

    def micro_batch(self, given: TrainBatch) -> tuple[TrainBatch, int]:
        return self.mas.consolidate(given)

    def before_forward(self, flight: Flight, stage: int, x: torch.Tensor) -> None:
        worker = self.worker
        weights = worker.stages[stage].versions.current.params
        self.mas.anchor_stage(stage, zip(worker.names[stage], weights, strict=True), flight.generation)

    def finish(self, flight: Flight) -> torch.Tensor | None:
        rows = flight.batch.x[: self.mas.begin_pass(flight.batch)]
        worker = self.worker
        if len(worker.stages) < worker.P:
            return rows
        assert self.importance is not None
        worker.timed(self.importance.run_here, rows)
        return None


class ScoringHooks(StageHooks):
    """MIR: the candidates are scored through the stages before the datum's first forward."""

    def __init__(self, worker: StageWorker, mir: MaximallyInterferedRetrieval) -> None:
        super().__init__(worker)
        self.scoring = StageScoring(mir, worker.stages, worker.P)

    def micro_batch(self, given: TrainBatch) -> tuple[TrainBatch, int]:
        scoring, worker = self.scoring, self.worker
        assert scoring is not None
        if len(worker.stages) < worker.P:
            raise FerretError(
                "MIR's candidates are scored through stages of other processes: the caller builds the batch"
            )
        drawn = scoring.draw(given)
        if not drawn.scored:
            return scoring.batch(given, drawn, None), 0
        scores = worker.timed(scoring.score_here, given.x[: given.num_new], drawn.x, scoring.labels(given, drawn))
        return scoring.batch(given, drawn, scores), 0


def stage_hooks(worker: StageWorker) -> StageHooks:
    """The hooks of `worker`'s algorithm (the one place that tells the built-in algorithms apart)."""
    algorithm = worker.algorithm
    if isinstance(algorithm, LearningWithoutForgetting):
        return TeacherHooks(worker, algorithm)
    if isinstance(algorithm, MemoryAwareSynapses):
        return AnchorHooks(worker, algorithm)
    if isinstance(algorithm, MaximallyInterferedRetrieval):
        return ScoringHooks(worker, algorithm)
    return StageHooks(worker)
