"""What the `hvp` compensator's double-backward costs next to a plain stale backward.

    python benchmarks/hvp_cost.py [--rounds 5] [--reps 200]

One StageRuntime holding all of MNISTNet (8×8 inputs, 10 classes, Adam), two workers so that
every second backward is stale by one; the CPU time (this process, one thread) of a forward +
stale backward with `none`, with `hvp`, and with `none` while every stale backward's efficacy is
measured. Best of `--rounds` interleaved rounds: the ratio is what a twin would have to charge
for `hvp` (it charges nothing today: compensation is free in virtual time).
"""

from __future__ import annotations

import argparse
import functools
import time

import torch
import torch.nn.functional as F

from executor.compensation import CompensationConfig
from executor.models import build_model
from executor.stage import OptimizerConfig, StageRuntime
from planner.plan import Plan, WorkerConfig, default_placement


def per_pair(compensation: str, efficacy_every: int, reps: int) -> float:
    """CPU seconds per (two forwards, two backwards: one fresh, one stale by one)."""
    model = build_model("mnistnet", (1, 8, 8), 10, seed=0)
    plan = Plan("ferret", (0, 4), tuple(WorkerConfig.default(n, 1) for n in range(2)), default_placement(2, 1), 1.0)
    stage = StageRuntime(
        model, plan, 0, OptimizerConfig("adam"), CompensationConfig(compensation), None, efficacy_every
    )
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(2 * reps, 1, 1, 8, 8, generator=gen), torch.randint(0, 10, (2 * reps, 1), generator=gen)
    started = time.process_time()
    for k in range(reps):
        a, b = 2 * k, 2 * k + 1
        stage.forward(0, a, x[a])
        stage.forward(1, b, x[b])
        stage.backward(1, b, loss_fn=functools.partial(F.cross_entropy, target=y[b]))
        stage.backward(0, a, loss_fn=functools.partial(F.cross_entropy, target=y[a]))
    return (time.process_time() - started) / reps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cases = {"none": ("none", 0), "hvp": ("hvp", 0), "none + efficacy every stale backward": ("none", 1)}
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(args.rounds):
        for name, (compensation, every) in cases.items():
            best[name] = min(best[name], per_pair(compensation, every, args.reps))
    base = best["none"]
    for name, seconds in best.items():
        print(f"{name:<38} {seconds * 1e6:8.0f} µs per fresh + stale pair   ×{seconds / base:.2f}")


if __name__ == "__main__":
    main()
