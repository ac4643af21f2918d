"""Does freezing a prefix of layers save real time? CPU time per training step, frozen vs not.

One `Learner` step (forward, loss, backward, Adam step) on a fixed batch, through the real code
path (`Learner.apply`), with the first `n` layers frozen for every step (a fixed choice, so the
measurement isolates the backward that is skipped, not the adaptive policy). For each `n` the
table gives the best-of-`--repeats` CPU time of `--steps` steps (this thread's CPU time: steadier
than the wall clock on a shared machine), the saving against `n = 0`, and the FLOP saving SPEC
§10.1 states (`BF_{≤n} / (FF + BF)`). Ratios are interleaved per repeat, so load drifts hit every
`n` alike.

    python benchmarks/freezing_speed.py [--model resnet32] [--shape 1,8,8] [--batch 16]
                                        [--frozen 0,4,8,12,16] [--steps 10] [--repeats 7]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from executor.models import build_model
from executor.ocl.algorithms import AlgorithmConfig, AlgorithmContext, OCLAlgorithm
from executor.ocl.batch import TrainBatch
from executor.ocl.learner import Learner
from executor.profiler.trace import layer_flops
from executor.stage.optim import OptimizerConfig


class FixedFreezing(OCLAlgorithm):
    """Vanilla that freezes the same prefix every step."""

    def __init__(self, frozen: int, config: AlgorithmConfig, context: AlgorithmContext) -> None:
        super().__init__(config, context)
        self.frozen = frozen

    def frozen_layers(self, model: nn.Module, logits: torch.Tensor, batch: TrainBatch) -> int:
        return self.frozen


def step_seconds(learner: Learner, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    started = time.thread_time()
    for _ in range(steps):
        learner.apply(TrainBatch(x, y, num_new=x.shape[0]))
    return (time.thread_time() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet32")
    parser.add_argument("--shape", default="1,8,8", help="input shape C,H,W")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frozen", default=None, help="comma-separated prefix lengths (default: 0 and quarters)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    shape = tuple(int(s) for s in args.shape.split(","))
    probe = build_model(args.model, shape, args.classes, seed=0)
    layers = probe.num_layers
    frozen = (
        [int(n) for n in args.frozen.split(",")]
        if args.frozen
        else sorted({0, layers // 4, layers // 2, 3 * layers // 4, layers - 1})
    )
    flops = np.array(layer_flops(probe), dtype=np.float64)
    x = torch.randn(args.batch, *shape, generator=torch.Generator().manual_seed(0))
    y = torch.arange(args.batch) % args.classes
    learners = {}
    for n in frozen:
        model = build_model(args.model, shape, args.classes, seed=0)
        learner = Learner(
            model,
            OptimizerConfig("adam", 1e-3),
            AlgorithmConfig(),
            num_classes=args.classes,
            bytes_per_sample=int(np.prod(shape)),
            rng=np.random.default_rng(0),
        )
        learner.algorithm = FixedFreezing(n, AlgorithmConfig(), learner.algorithm.context)
        step_seconds(learner, x, y, 2)  # warm-up: allocator, optimizer state
        learners[n] = learner
    best = {n: float("inf") for n in frozen}
    for _ in range(args.repeats):
        for n, learner in learners.items():
            best[n] = min(best[n], step_seconds(learner, x, y, args.steps))
    print(f"{args.model} {shape}, batch {args.batch}, {layers} layers; best of {args.repeats} × {args.steps} steps")
    print("| frozen layers | CPU ms / step | time saved | FLOPs saved (SPEC §10.1) |")
    print("| --- | --- | --- | --- |")
    for n in frozen:
        saved_flops = 2 * flops[:n].sum() / (3 * flops.sum())
        saved_time = 1 - best[n] / best[frozen[0]]
        print(f"| {n} | {best[n] * 1e3:.2f} | {100 * saved_time:.1f} % | {100 * saved_flops:.1f} % |")


if __name__ == "__main__":
    main()
