"""Per-sample wall time of the Oracle loop vs a bare hand-written PyTorch test-then-train loop.

Same model (same initial weights), same data in the same order, Adam at lr 1e-3, batch of one:
the bare loop does forward, cross-entropy, backward, step and reads its prediction off the
logits — the least any test-then-train loop can do. The Oracle loop does the same through the
framework (algorithm hooks, byte ledger, virtual-time bookkeeping, evaluation only at the end).
Each loop runs `--repeats` times, interleaved; the table reports the fastest run of each.
Bar (issue 4): Oracle ≤ 1.2 × bare.

    python benchmarks/loop_overhead.py [--model mnistnet] [--samples 1437] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from executor.data import build_stream, load_dataset
from executor.models import build_model
from executor.ocl.frameworks import build_framework
from executor.ocl.setup import RunSetup
from planner.profile import LayerProfile, ModelProfile
from sim.arrivals import FixedArrivals


def bare_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, order: np.ndarray) -> tuple[float, float]:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    correct = 0
    start = time.perf_counter()
    for o in order.tolist():
        xi, yi = x[o : o + 1], y[o : o + 1]
        logits = model(xi)
        loss = F.cross_entropy(logits, yi)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        correct += int(logits.argmax()) == int(yi)
    return time.perf_counter() - start, 100.0 * correct / len(order)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mnistnet")
    parser.add_argument("--samples", type=int, default=None, help="stream length (default: digits' training set)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)

    dataset = load_dataset("digits")
    stream = build_stream("iid", dataset, FixedArrivals(1e-3), seed=0, length=args.samples)
    x, y = torch.from_numpy(dataset.x_train), torch.from_numpy(dataset.y_train)
    probe = build_model(args.model, dataset.input_shape, dataset.num_classes, seed=0)
    profile = ModelProfile(
        probe.name,
        tuple(LayerProfile(name, 1e-4, 2e-4, 0, 0, 0) for name in probe.layer_names),
        source="synthetic",
    )
    oracle = build_framework("oracle")
    bare_times, oracle_times = [], []
    bare_acc = oracle_acc = float("nan")
    for _ in range(args.repeats):
        model = build_model(args.model, dataset.input_shape, dataset.num_classes, seed=0)
        seconds, bare_acc = bare_loop(model, x, y, stream.order)
        bare_times.append(seconds)
        model = build_model(args.model, dataset.input_shape, dataset.num_classes, seed=0)
        result = oracle.run(RunSetup(stream, model, profile, eval_every=0))
        oracle_times.append(result.wall_s)
        oracle_acc = 100.0 * float(result.correct.mean())

    n = len(stream)
    bare_us, oracle_us = 1e6 * min(bare_times) / n, 1e6 * min(oracle_times) / n
    print(f"model {args.model}, {n} samples, best of {args.repeats}, torch threads 1")
    print(f"{'loop':<10} {'us/sample':>10} {'online acc %':>13}")
    print(f"{'bare':<10} {bare_us:>10.1f} {bare_acc:>13.2f}")
    print(f"{'oracle':<10} {oracle_us:>10.1f} {oracle_acc:>13.2f}")
    print(f"ratio oracle/bare: {oracle_us / bare_us:.3f}  (bar ≤ 1.2)")


if __name__ == "__main__":
    main()
