"""Memory of a replayed pipeline in both conventions the project uses, and its compute.

The StageRuntimes count a stored datum's activations as the outputs of the stage's layers
(the profile's `â_l`, what (F4) charges). The sequential `Learner` counts the tensors autograd
saves for backward instead (saved-tensor hooks). To compare a pipeline with the sequential
frameworks in one table, `PipelineLedger` keeps both: the ledger itself (layer outputs) and,
beside it, the running difference `saved − layer outputs` of every stored (datum, stage), so
that `saved_peak` is the peak of the same ledger under the Learner's convention. `f4_peak` is
the peak of weights + activations alone, the part of the footprint (F4) predicts.
"""

from __future__ import annotations

import torch

from executor.ledger import ByteLedger
from executor.ocl.learner import SavedTensorMeter
from executor.stage import ForwardResult, StageRuntime

WEIGHTS, ACTIVATIONS = "weights", "activations"


class PipelineLedger(ByteLedger):
    def __init__(self) -> None:
        super().__init__()
        self.saved_delta = 0  # Σ over stored (datum, stage) of saved-tensor bytes − layer-output bytes
        self.saved_peak = 0
        self.f4_peak = 0

    def alloc(self, category: str, nbytes: int) -> None:
        super().alloc(category, nbytes)
        self._observe()

    def shift_saved(self, delta: int) -> None:
        """A stored datum's saved tensors differ from its layer outputs by `delta` (± at store/free)."""
        self.saved_delta += delta
        if delta > 0:
            self._observe()

    def _observe(self) -> None:
        current = self._current
        f4 = current[WEIGHTS] + current[ACTIVATIONS]
        if f4 > self.f4_peak:
            self.f4_peak = f4
        saved = self.current + self.saved_delta
        if saved > self.saved_peak:
            self.saved_peak = saved


class SavedTensorSizes:
    """Saved-tensor bytes of a stored stage forward, measured once per (stage, rows) with
    autograd's saved-tensor hooks (the Learner's meter), then reused: the graph a stage keeps
    depends only on the stage and the micro-batch's shape.

    Per stage, as a distributed pipeline holds them: a stage whose first op saves its input
    keeps that input (on its own device a received copy of the stage below's output). Stage
    0's input is the datum itself, counted with the batch ("inputs"), as the Learner does.
    """

    def __init__(self) -> None:
        self._delta: dict[tuple[int, int], int] = {}

    def known(self, stage: int, rows: int) -> int | None:
        return self._delta.get((stage, rows))

    def measure(
        self, runtime: StageRuntime, worker: int, sample: int, x: torch.Tensor, rows: int
    ) -> tuple[ForwardResult, int]:
        """Run the forward under the meter; return its result and the delta (0 if nothing was stored)."""
        excluded = {runtime.versions.current.flat.untyped_storage().data_ptr()}
        if runtime.stage == 0:
            excluded.add(x.untyped_storage().data_ptr())
        with SavedTensorMeter(excluded) as meter:
            result = runtime.forward(worker, sample, x)
        if not result.stored:
            return result, 0
        delta = meter.bytes - result.bytes
        self._delta[(runtime.stage, rows)] = delta
        return result, delta
