"""Hand-driven pipeline schedules for the stage tests (no simulator needed).

`async_1f1b` is the closed form's regime: every (worker, stage) is its own device (no
contention), stages take `tf` forward and `tb` backward, data arrive every `td` and datum `i`
goes to worker `i mod N`. Each (worker, stage) runs a ready backward before a ready forward
(1F1B). Integer times keep every tie exact. `drive` plays a schedule against StageRuntimes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from executor.stage import BackwardResult, ForwardResult, StageRuntime


@dataclass(frozen=True)
class Op:
    kind: str  # "fwd" | "bwd"
    sample: int
    worker: int
    stage: int
    t_start: int
    t_end: int


def async_1f1b(num_stages: int, num_workers: int, num_data: int, tf: int = 1, tb: int = 2, td: int = 1) -> list[Op]:
    """Ops in the order they complete; at one instant forwards before backwards.

    An op's effect on memory is applied when it completes. A forward allocates its
    activations while it runs and a backward frees its stash when it ends, so of two ops that
    end at the same instant the forward's allocation is counted first (the physical order).
    """
    P, N = num_stages, num_workers
    ready_fwd = {(n, j): deque() for n in range(N) for j in range(P)}
    ready_bwd = {(n, j): deque() for n in range(N) for j in range(P)}
    busy_until = dict.fromkeys(ready_fwd, 0)
    running: list[tuple[int, Op]] = []
    ops: list[Op] = []
    t = 0
    while len(ops) < 2 * P * num_data:
        for end, op in [r for r in running if r[0] == t]:
            running.remove((end, op))
            ops.append(op)
            if op.kind == "fwd" and op.stage < P - 1:
                ready_fwd[(op.worker, op.stage + 1)].append(op.sample)
            elif op.kind == "fwd":
                ready_bwd[(op.worker, op.stage)].append(op.sample)
            elif op.stage > 0:
                ready_bwd[(op.worker, op.stage - 1)].append(op.sample)
        if t % td == 0 and t // td < num_data:
            sample = t // td
            ready_fwd[(sample % N, 0)].append(sample)
        for n in range(N):
            for j in range(P):
                if busy_until[(n, j)] > t:
                    continue
                if ready_bwd[(n, j)]:
                    op = Op("bwd", ready_bwd[(n, j)].popleft(), n, j, t, t + tb)
                elif ready_fwd[(n, j)]:
                    op = Op("fwd", ready_fwd[(n, j)].popleft(), n, j, t, t + tf)
                else:
                    continue
                busy_until[(n, j)] = op.t_end
                running.append((op.t_end, op))
        t += 1
    return sorted(ops, key=lambda op: (op.t_end, op.kind != "fwd"))


def drive(
    runtimes: Sequence[StageRuntime],
    ops: Sequence[Op],
    inputs: Callable[[int], torch.Tensor],
    loss: Callable[[int, torch.Tensor], torch.Tensor],
    on_op: Callable[[Op, ForwardResult | BackwardResult], None] | None = None,
) -> None:
    """Play `ops` against one runtime per stage. A datum whose backward a stage skipped (or
    that never reached it) gets no backward below; `loss(sample, logits)` is the training loss."""
    last = len(runtimes) - 1
    outputs: dict[tuple[int, int], torch.Tensor] = {}
    grads: dict[tuple[int, int], torch.Tensor] = {}
    for op in ops:
        rt = runtimes[op.stage]
        result: ForwardResult | BackwardResult
        if op.kind == "fwd":
            x = inputs(op.sample) if op.stage == 0 else outputs.pop((op.sample, op.stage - 1))
            result = rt.forward(op.worker, op.sample, x)
            if op.stage < last:
                outputs[(op.sample, op.stage)] = result.output
            else:
                outputs[(op.sample, last)] = result.output
        else:
            if op.stage == last:
                outputs.pop((op.sample, last))
                result = rt.backward(op.worker, op.sample, loss_fn=lambda z, s=op.sample: loss(s, z))
            elif (op.sample, op.stage + 1) in grads:
                result = rt.backward(op.worker, op.sample, grads.pop((op.sample, op.stage + 1)))
            else:
                continue  # a stage above stopped this datum's backward
            if result.ran and result.grad_input is not None:
                grads[(op.sample, op.stage)] = result.grad_input
        if on_op is not None:
            on_op(op, result)
