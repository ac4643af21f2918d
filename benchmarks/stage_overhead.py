"""Per-op overhead of StageRuntime over a plain PyTorch training loop doing the same math.

    python benchmarks/stage_overhead.py [--data 400] [--rounds 5]

For each model and pipeline shape, one datum at a time (batch 1, digits-sized inputs):
  plain     forward, cross-entropy, backward, SGD step on the whole model (torch.optim)
  raw ops   the bare torch calls of P stages, datum by datum: per stage a forward from a
            detached input, an `autograd.backward` into the stage's parameters and input, an
            SGD step — what any pipeline must do, with no stashing and no bookkeeping
  pipeline  the same data through P StageRuntimes driven in 1F1B order by one worker
            (2·P ops per datum: a forward and a backward per stage)
overhead/op = (pipeline − plain) / (2·P) per datum; runtime/op = (pipeline − raw ops) / (2·P)
is what the StageRuntime itself adds per op (bookkeeping, version copies, compensation,
recomputation). Plain and pipeline alternate for
`--rounds` rounds; times are this thread's CPU time and the fastest round of each counts,
which filters out most of the noise of a busy machine.
The overhead includes real work the pipeline does and a plain loop does not: copying a
weight version that an in-flight datum still needs, compensation, recomputation.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from executor.compensation import CompensationConfig
from executor.models import build_model
from executor.models.base import LayeredModel
from executor.stage import OptimizerConfig, StageRuntime
from planner.plan import Plan, WorkerConfig, default_placement

CASES = [
    # (model, input shape, stages, compensation, recompute)
    ("mlp", (64,), 1, "none", False),
    ("mlp", (64,), 4, "none", False),
    ("mlp", (64,), 4, "iter-fisher", False),
    ("mlp", (64,), 4, "none", True),
    ("mnistnet", (1, 8, 8), 1, "none", False),
    ("mnistnet", (1, 8, 8), 4, "none", False),
    ("mnistnet", (1, 8, 8), 4, "iter-fisher", False),
]


def _plain(model: LayeredModel, X: torch.Tensor, Y: torch.Tensor) -> Callable[[], None]:
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def run() -> None:
        for x, y in zip(X, Y, strict=True):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()

    return run


def _raw_stages(model: LayeredModel, X: torch.Tensor, Y: torch.Tensor, P: int) -> Callable[[], None]:
    L = model.num_layers
    bounds = [round(j * L / P) for j in range(P + 1)]
    stages = [list(model.layers[a:b]) for a, b in itertools.pairwise(bounds)]
    params = [[p for layer in stage for p in layer.parameters()] for stage in stages]

    def run() -> None:
        for x, y in zip(X, Y, strict=True):
            kept = []
            h = x
            for j, stage in enumerate(stages):
                inp = h.detach().requires_grad_(j > 0)
                out = inp
                for layer in stage:
                    out = layer(out)
                kept.append((inp, out))
                h = out
            grad = None
            for j in range(P - 1, -1, -1):
                inp, out = kept[j]
                for p in params[j]:
                    p.grad = None
                root = F.cross_entropy(out, y) if j == P - 1 else out
                inputs = [inp, *params[j]] if j > 0 else params[j]
                torch.autograd.backward(root, grad, inputs=inputs)
                grad = inp.grad
                with torch.no_grad():
                    torch._foreach_add_(list(params[j]), [p.grad for p in params[j] if p.grad is not None], alpha=-1e-3)

    return run


def _pipeline(
    model: LayeredModel, X: torch.Tensor, Y: torch.Tensor, P: int, compensation: str, recompute: bool
) -> Callable[[], None]:
    L = model.num_layers
    partition = tuple(round(j * L / P) for j in range(P + 1))
    plan = Plan("pipedream", partition, (WorkerConfig.default(0, P, recompute),), default_placement(1, P), 1.0)
    comp = CompensationConfig(compensation)
    stages = [StageRuntime(model, plan, j, OptimizerConfig(name="sgd"), comp) for j in range(P)]
    counter = [0]

    def run() -> None:
        # 1F1B for one worker: datum k's forward through all stages, then the backward of
        # datum k − (P − 1 − j) at stage j, top down (the steady state of PipeDream).
        n = len(X)
        base = counter[0]
        counter[0] += n + P
        pending: dict[int, torch.Tensor] = {}
        for k in range(n + P - 1):
            if k < n:
                h = X[k]
                for stage in stages:
                    h = stage.forward(0, base + k, h).output
            grad = None
            for j in range(P - 1, -1, -1):
                d = k - (P - 1 - j)
                if not 0 <= d < n:
                    continue
                if j == P - 1:
                    y = Y[d]
                    result = stages[j].backward(0, base + d, loss_fn=functools.partial(F.cross_entropy, target=y))
                else:
                    result = stages[j].backward(0, base + d, pending.pop(d))
                grad = result.grad_input
                if j > 0:
                    assert grad is not None
                    pending[d] = grad

    return run


def _cpu_seconds(fn: Callable[[], None]) -> float:
    # CPU time of this thread (torch runs on one thread here): robust to a busy machine.
    t0 = time.thread_time()
    fn()
    return time.thread_time() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=int, default=400, help="data per round (default 400)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; the fastest counts (default 5)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    print(
        f"{'model':9} {'P':>2} {'compensation':12} {'recomp':6} {'plain µs/datum':>15} {'raw ops µs/datum':>17} "
        f"{'pipeline µs/datum':>18} {'overhead µs/op':>15} {'runtime µs/op':>14}"
    )
    for name, shape, P, compensation, recompute in CASES:
        X = torch.randn(args.data, 1, *shape, generator=gen)
        Y = torch.randint(0, 10, (args.data, 1), generator=gen)
        plain = _plain(build_model(name, shape, 10, seed=0), X, Y)
        raw = _raw_stages(build_model(name, shape, 10, seed=0), X, Y, P)
        pipe = _pipeline(build_model(name, shape, 10, seed=0), X, Y, P, compensation, recompute)
        best = dict.fromkeys(("plain", "raw", "pipe"), float("inf"))
        for fn in (plain, raw, pipe):
            fn()  # warm up
        for _ in range(args.rounds):
            for key, fn in (("plain", plain), ("raw", raw), ("pipe", pipe)):
                best[key] = min(best[key], _cpu_seconds(fn))
        per = {key: t / args.data * 1e6 for key, t in best.items()}
        overhead = (per["pipe"] - per["plain"]) / (2 * P)
        own = (per["pipe"] - per["raw"]) / (2 * P)
        print(
            f"{name:9} {P:>2} {compensation:12} {recompute!s:6} {per['plain']:15.1f} {per['raw']:17.1f} "
            f"{per['pipe']:18.1f} {overhead:15.1f} {own:14.1f}"
        )


if __name__ == "__main__":
    main()
