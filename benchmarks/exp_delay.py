"""Experiment: what delay alone costs — Oracle with every update `d` arrivals late.

    python benchmarks/exp_delay.py [--delays 0 3 7 10 14] [--seeds 0 1 2 3 4] [--stream class-incremental]

A sequential test-then-train learner on `digits` with Oracle's model (MNISTNet), optimizer (Adam
lr 1e-3) and stream: datum `t` is predicted on arrival and its single-datum step is applied
after datum `t + d`'s prediction, in order, on the weights current then — no staleness, no
skipped data, only delay. `d = 0` is Oracle. A pipeline's delay in arrivals is its datum's
time from arrival to update divided by `td` (Σ forward + backward ≈ 6.7 arrivals for MNISTNet
on the roofline TITAN Xp at the paper's `td`), so this is the floor no pipeline goes below.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from exp_common import ci95

from analysis.compare_table import markdown_table
from executor.ocl.experiment import RunSpec, prepare


def delayed(seed: int, delay: int, stream: str) -> float:
    """Online accuracy (%) of the learner whose every update lands `delay` arrivals late."""
    setup = prepare(RunSpec(framework="oracle", dataset="digits", stream=stream, seed=seed)).setup
    model = setup.model
    optimizer = torch.optim.Adam(model.parameters(), lr=setup.optimizer.lr)
    dataset = setup.stream.dataset
    x, y = torch.from_numpy(dataset.x_train), torch.from_numpy(dataset.y_train)
    order = setup.stream.order.tolist()
    n, correct = len(order), 0
    for t in range(n + delay):
        if t < n:
            with torch.no_grad():
                correct += int(model(x[order[t] : order[t] + 1]).argmax(1).item() == y[order[t]].item())
        u = t - delay
        if 0 <= u < n:
            optimizer.zero_grad()
            F.cross_entropy(model(x[order[u] : order[u] + 1]), y[order[u] : order[u] + 1]).backward()
            optimizer.step()
    return 100.0 * correct / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delays", type=int, nargs="+", default=[0, 3, 7, 10, 14])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--stream", default="class-incremental")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    accuracy = {d: [delayed(seed, d, args.stream) for seed in args.seeds] for d in args.delays}
    rows = [
        (
            d,
            ci95(accuracy[d]),
            ci95(a - o for a, o in zip(accuracy[d], accuracy[0], strict=True)) if 0 in accuracy else "—",
        )
        for d in args.delays
    ]
    print(f"{args.stream} digits, {len(args.seeds)} seeds, {time.perf_counter() - started:.0f} s\n")
    print(markdown_table(("delay (arrivals)", "online acc % [95 % CI]", "vs no delay"), rows))


if __name__ == "__main__":
    main()
