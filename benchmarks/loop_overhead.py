"""Per-sample wall time of the Oracle loop vs a bare hand-written PyTorch test-then-train loop.

Same model (same initial weights), same data in the same order, Adam at lr 1e-3, batch of one:
the bare loop does forward, cross-entropy, backward, step and reads its prediction off the
logits — the least any test-then-train loop can do. The Oracle loop does the same through the
framework (algorithm hooks, byte ledger, virtual-time bookkeeping, evaluation only at the end).
Each loop runs `--repeats` times, interleaved; the table reports the fastest run of each, in
wall-clock time and in this process's CPU time (steadier on a shared machine). Both clocks
cover the whole call: the Oracle's set-up (learner, ledger, data on the device) included.
Bar (issue 4): Oracle ≤ 1.2 × bare.

    python benchmarks/loop_overhead.py [--model mnistnet] [--samples 1437] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from executor.data import build_stream, load_dataset
from executor.models import build_model
from executor.ocl.frameworks import build_framework
from executor.ocl.setup import RunSetup
from planner.profile import LayerProfile, ModelProfile
from sim.arrivals import FixedArrivals


def bare_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, order: np.ndarray) -> float:
    """Test-then-train by hand; returns the online accuracy in %."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    correct = 0
    for o in order.tolist():
        xi, yi = x[o : o + 1], y[o : o + 1]
        logits = model(xi)
        loss = F.cross_entropy(logits, yi)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        correct += int(logits.argmax()) == int(yi)
    return 100.0 * correct / len(order)


def timed(fn: Callable[[], float]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, fn's result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, value


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

    def run_bare() -> float:
        model = build_model(args.model, dataset.input_shape, dataset.num_classes, seed=0)
        return bare_loop(model, x, y, stream.order)

    def run_oracle() -> float:
        model = build_model(args.model, dataset.input_shape, dataset.num_classes, seed=0)
        return 100.0 * float(oracle.run(RunSetup(stream, model, profile, eval_every=0)).correct.mean())

    run_bare(), run_oracle()  # warm-up: lazy imports and first-call costs of torch
    times: dict[str, list[tuple[float, float, float]]] = {"bare": [], "oracle": []}
    for _ in range(args.repeats):
        times["bare"].append(timed(run_bare))
        times["oracle"].append(timed(run_oracle))

    n = len(stream)
    best = {name: (min(t[0] for t in runs), min(t[1] for t in runs), runs[0][2]) for name, runs in times.items()}
    print(f"model {args.model}, {n} samples, best of {args.repeats}, torch threads 1")
    print(f"{'loop':<8} {'wall us/sample':>15} {'cpu us/sample':>14} {'online acc %':>13}")
    for name, (wall, cpu, accuracy) in best.items():
        print(f"{name:<8} {1e6 * wall / n:>15.1f} {1e6 * cpu / n:>14.1f} {accuracy:>13.2f}")
    wall_ratio = best["oracle"][0] / best["bare"][0]
    cpu_ratio = best["oracle"][1] / best["bare"][1]
    print(f"ratio oracle/bare: wall {wall_ratio:.3f}, cpu {cpu_ratio:.3f}  (bar ≤ 1.2)")


if __name__ == "__main__":
    main()
