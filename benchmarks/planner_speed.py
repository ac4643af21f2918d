"""Alg. 3 speed on synthetic profiles: one budget, and a 20-budget sweep, per model depth.

    .venv/bin/python benchmarks/planner_speed.py [--repeat 3] [--layers 16,32,64,128] [--breakdown]

Profiles: per layer, forward times log-normal around 1 ms (σ = 1, so about four orders of
magnitude over 128 layers), backward ≈ 2× forward, parameter and activation sizes uniform in
[10 KB, 10 MB]; `td` = the slowest layer's forward time (the paper's setting), decay 1/s.
"One budget" is the geometric mean of the smallest footprint (M−) and the unconstrained plan's
footprint (M+): a budget that needs every kind of technique; "worst of 20" is the slowest of
the sweep's budgets planned alone. Those timings start from nothing (a fresh planner); the
sweep reuses one planner (its chains) for its 20 geometric budgets from M− to M+.
Times are the median of `--repeat` runs. Bar (issue 2): 64 layers, one budget, < 1 s.
"""

from __future__ import annotations

import argparse
import cProfile
import math
import pstats
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planner.partition import candidate_partitions, num_caps
from planner.profile import LayerProfile, ModelProfile
from planner.search import FerretPlanner, plan_ferret


def synthetic_profile(num_layers: int, seed: int = 0) -> ModelProfile:
    rng = np.random.default_rng(seed)
    fwd = rng.lognormal(np.log(1e-3), 1.0, num_layers)
    layers = tuple(
        LayerProfile(
            f"layer{i}",
            float(fwd[i]),
            float(fwd[i] * rng.uniform(1.5, 2.5)),
            int(rng.integers(10_000, 10_000_000)),
            int(rng.integers(10_000, 10_000_000)),
        )
        for i in range(num_layers)
    )
    return ModelProfile(f"synthetic-{num_layers}", layers, source="synthetic")


def budgets_of(profile: ModelProfile, td: float) -> tuple[int, int]:
    planner = FerretPlanner(profile, td)
    return planner.min_memory_bytes(), planner.plan(None).memory_bytes


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--layers", default="16,32,64,128")
    parser.add_argument("--breakdown", action="store_true", help="cProfile the 64-layer single budget")
    args = parser.parse_args()
    header = (
        f"{'layers':>6} {'caps':>6} {'parts':>6} {'searched':>9} {'chain steps':>11} "
        f"{'one budget':>11} {'worst of 20':>12} {'20 budgets':>11} {'per budget':>11}"
    )
    print(header)
    print("-" * len(header))
    for L in (int(x) for x in args.layers.split(",")):
        profile = synthetic_profile(L)
        td = float(profile.t_fwd.max())
        low, high = budgets_of(profile, td)
        budget = math.isqrt(low * high)
        sweep = np.geomspace(low, high, 20).astype(int).tolist()
        one = median_time(lambda p=profile, t=td, b=budget: plan_ferret(p, t, budget_bytes=b), args.repeat)

        def run_sweep(p=profile, t=td, bs=sweep):
            planner = FerretPlanner(p, t)
            for b in bs:
                planner.plan(b)
            return planner

        many = median_time(run_sweep, args.repeat)
        worst = max(median_time(lambda p=profile, t=td, b=b: plan_ferret(p, t, budget_bytes=b), 1) for b in sweep)
        planner = FerretPlanner(profile, td)
        result = planner.plan(budget)
        searched = sum(c.blocks is not None for c in planner.candidates)
        steps = sum(c.blocks.chain.length for c in planner.candidates if c.blocks is not None)
        print(
            f"{L:>6} {num_caps(profile):>6} {len(candidate_partitions(profile)):>6} {searched:>9} {steps:>11} "
            f"{one:>10.3f}s {worst:>11.3f}s {many:>10.3f}s {many / len(sweep):>10.3f}s"
        )
        assert result.feasible
    if args.breakdown:
        profile = synthetic_profile(64)
        td = float(profile.t_fwd.max())
        low, high = budgets_of(profile, td)
        budget = math.isqrt(low * high)
        profiler = cProfile.Profile()
        profiler.enable()
        plan_ferret(profile, td, budget_bytes=budget)
        profiler.disable()
        print("\n64 layers, one budget: where the time goes (cumulative, top 12)")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(12)


if __name__ == "__main__":
    main()
