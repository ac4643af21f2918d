"""Starting the stream clock only when every rank is ready, at one instant on every rank.

A datum that arrives while some rank is still getting ready waits in a pipeline that does not
move, and the data behind it are dropped: start-up costs must be paid before the clock starts,
not charged to the stream. So each rank, once its stages and channels exist:

1. greets every peer on every channel (`Transport.greet`: the first message each way — the
   wire threads run and each channel has carried a message);
2. warms up (`warm_up`): the lazy import the first backward would pay (torch's symbolic-shape
   machinery, sympy: 0.5–1 s), and one forward and backward of each stage it owns on the
   stream's first datum — on the real layers, in eval mode, gradients taken and dropped, so
   no weight, running statistic, random stream or ledger changes;
3. waits at a barrier for every other rank (`start_together`); then rank 0 names a start
   `START_LEAD_S` ahead on its clock, and each rank sleeps until that instant on its own.

`StartTimes` says, per rank, when it was ready (before the start: negative) and how late its
loop began (the sleep's overshoot) — `per_rank[].ready_s` and `start_late_s` in summary.json.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

from executor.distributed.context import RankContext
from executor.ocl.modes import eval_mode
from executor.pipeline.stage_worker import StageWorker

START_LEAD_S = 0.05  # after the barrier every rank waits for rank 0's word: it needs only the broadcast's time


@dataclass(frozen=True)
class StartTimes:
    """When this rank's stream clock started and when the rank was ready, relative to that start.

    `start_local` is on the rank's own `perf_counter`; `ready_s` is ≤ 0 (ready before the start).
    """

    start_local: float  # the run's start on this rank's perf_counter
    ready_s: float  # when this rank was ready, relative to the start (≤ 0)

    def late_s(self) -> float:
        """How late this rank's loop begins, relative to the start (0 if on time)."""
        return max(0.0, time.perf_counter() - self.start_local)


def warm_up(worker: StageWorker, x: torch.Tensor) -> None:
    """Pay the first op's one-time costs now: see the module's docstring (step 2)."""
    import torch.fx.experimental.symbolic_shapes  # what the first autograd.grad imports

    layers = worker.model.layers
    with torch.enable_grad():
        for j in range(worker.P):
            stage = [layers[i] for i in worker.plan.stage_layers(j)]
            if j in worker.stages:
                x = _forward_backward(stage, x)
            else:  # another rank's stage: its output's shape is all this rank needs
                with torch.no_grad(), eval_mode(*stage):
                    for layer in stage:
                        x = layer(x)


def _forward_backward(stage: list[torch.nn.Module], x: torch.Tensor) -> torch.Tensor:
    inp = x.detach().requires_grad_()
    with eval_mode(*stage):
        out = inp
        for layer in stage:
            out = layer(out)
    params = [p for layer in stage for p in layer.parameters() if p.requires_grad]
    torch.autograd.grad(out, [inp, *params], torch.ones_like(out), allow_unused=True)
    return out.detach()


def start_together(ctx: RankContext, offset_s: float, group: dist.ProcessGroup | None) -> StartTimes:
    """Every rank is ready (barrier); rank 0 names the start on its clock; each rank reads it
    on its own (minus its offset to rank 0) and sleeps until then."""
    ready = time.perf_counter()
    dist.barrier(group=group)
    box: list[float | None] = [time.perf_counter() + START_LEAD_S if ctx.rank == 0 else None]
    dist.broadcast_object_list(box, src=0, group=group)
    assert box[0] is not None
    start = float(box[0]) - offset_s
    delay = start - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
    return StartTimes(start, ready - start)
