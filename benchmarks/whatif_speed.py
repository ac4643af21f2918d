"""How long a large what-if sweep takes: 200 budgets × 5 pipeline strategies, 20,000 samples each.

    .venv/bin/python benchmarks/whatif_speed.py [--budgets 200] [--samples 20000] [--jobs 2]

The sweep `ferret whatif --profile builtin:mnistnet-titan-xp --budgets auto:200 --samples 20000
--jobs 2` runs: every point planned in this process, every distinct plan simulated once (budgets
that plan the same pipeline share its run) in `--jobs` worker processes, with a progress bar on
a terminal. Prints wall and CPU seconds (this process and its workers), the points, the
simulations actually run, and the number measured before (the replaced engine, one simulation
per point: the same sweep with 40 budgets took 90.0 s CPU, 318.9 s wall at load 13 on this
machine; 200 budgets ≈ 5 × that; docs/sim.md §6).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.whatif import DEFAULT_STRATEGIES, WhatIfJob, auto_budgets, run_sweep, tqdm_progress
from planner.builtin import resolve_profile
from sim.config import SimConfig

BEFORE_CPU_S = 450.0  # the replaced engine, one simulation per point: 5 × the 40-budget sweep's 90.0 s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budgets", type=int, default=200)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()

    profile = resolve_profile("builtin:mnistnet-titan-xp")
    interval = float(profile.t_fwd.max())  # `--arrival-interval auto`
    start_wall = time.perf_counter()
    start_cpu = time.process_time()
    budgets = auto_budgets(profile, DEFAULT_STRATEGIES, interval, 1.0, args.budgets)
    jobs = [
        WhatIfJob(strategy, budget, interval, 1.0, args.samples, "fixed", 0, SimConfig())
        for strategy in DEFAULT_STRATEGIES
        for budget in budgets
    ]
    rows = run_sweep(jobs, profile, workers=args.jobs, progress=tqdm_progress(True))
    wall = time.perf_counter() - start_wall
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - start_cpu + children.ru_utime + children.ru_stime
    runs = len({(r.strategy, r.events, r.rate, r.peak_memory_bytes) for r in rows if r.feasible})
    print(
        f"whatif {len(DEFAULT_STRATEGIES)} strategies × {len(budgets)} budgets × {args.samples:,} samples, "
        f"--jobs {args.jobs}, load {os.getloadavg()[0]:.1f}: {len(rows)} points, {runs} simulations run; "
        f"{wall:.1f} s wall, {cpu:.1f} s CPU (before: ≈ {BEFORE_CPU_S * args.budgets / 200:.0f} s CPU)"
    )


if __name__ == "__main__":
    main()
