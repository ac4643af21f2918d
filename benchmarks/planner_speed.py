"""Alg. 3 speed: one budget, the worst of 20 budgets, and a 20-budget sweep, per profile.

    .venv/bin/python benchmarks/planner_speed.py [--repeat 3] [--cases synthetic-64,random-64-0]
        [--reference] [--baseline DIR] [--breakdown CASE]

Profiles:
* `synthetic-L`: per layer, forward times log-normal around 1 ms (σ = 1, about four orders of
  magnitude over 128 layers), backward ≈ 2× forward, parameter and activation sizes uniform in
  [10 KB, 10 MB].
* `random-L-S` (seed S): forward times uniform in [50, 200] µs, backward exactly 2× forward,
  parameter and activation sizes uniform in [1 kB, 400 kB] (issue 14's random profiles).
`td` = the slowest layer's forward time (the paper's setting), decay 1/s.

Budgets: 20 geometric steps from the smallest footprint (M−) to the unconstrained plan's (M+).
"one budget" is their geometric mean; "worst of 20" is the slowest of the 20 budgets, each
planned alone from nothing (a fresh planner, as `ferret plan` does); "sweep" plans all 20 with
one planner (sharing its chains). Times are CPU seconds (`time.process_time`), best of
`--repeat` runs: the machine is shared, and the load (printed first) inflates them.

`--reference` also times the frozen copy of the planner before issue 14's speed work
(`tests/planner/reference_search`) and checks that both pick the same plan for every budget.
`--baseline DIR` also times the planner of another checkout (e.g. `/work/main`, the last
merged planner) on the same budgets, in a subprocess, and prints its numbers beside.
`FERRET_PURE_PYTHON=1` times this planner without its compiled kernel (the numpy paths).
Bars (issue 14): 64 layers ≤ 0.1 s and 128 layers ≤ 0.5 s for the worst of 20.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import os
import pstats
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planner import s3_batch
from planner import search as new_search
from planner.profile import LayerProfile, ModelProfile

DEFAULT_CASES = "synthetic-16,synthetic-32,synthetic-64,synthetic-128," + ",".join(
    [f"random-64-{s}" for s in range(5)] + ["random-128-0"]
)


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


def random_profile(num_layers: int, seed: int = 0) -> ModelProfile:
    rng = np.random.default_rng(seed)
    fwd = rng.uniform(50e-6, 200e-6, num_layers)
    layers = tuple(
        LayerProfile(
            f"layer{i}",
            float(fwd[i]),
            float(2 * fwd[i]),
            int(rng.integers(1_000, 400_001)),
            int(rng.integers(1_000, 400_001)),
        )
        for i in range(num_layers)
    )
    return ModelProfile(f"random-{num_layers}-{seed}", layers, source="synthetic")


def case_profile(case: str) -> ModelProfile:
    kind, *numbers = case.split("-")
    if kind == "synthetic":
        return synthetic_profile(int(numbers[0]))
    if kind == "random":
        return random_profile(int(numbers[0]), int(numbers[1]) if len(numbers) > 1 else 0)
    raise SystemExit(f"unknown case {case!r}: use synthetic-L or random-L-SEED")


def best_cpu_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def sweep_budgets(profile: ModelProfile, td: float) -> list[int]:
    planner = new_search.FerretPlanner(profile, td)
    low, high = planner.min_memory_bytes(), planner.plan(None).memory_bytes
    return sorted(set(np.geomspace(low, high, 20).astype(int).tolist()))


def chains_built(module: ModuleType, profile: ModelProfile, td: float, budget: int) -> str:
    """Chains a fresh planner builds for one budget: whole (and, new planner, abandoned part-way)."""
    planner = module.FerretPlanner(profile, td)
    planner.plan(budget)
    whole = sum(c.blocks is not None for c in planner.candidates)
    partly = sum(getattr(c, "builder", None) is not None for c in planner.candidates)
    return f"{whole}+{partly}" if hasattr(planner.candidates[0], "builder") else str(whole)


def timings(
    module: ModuleType, profile: ModelProfile, td: float, budgets: list[int], repeat: int
) -> dict[str, float | str]:
    """CPU seconds of one implementation: one (mid) budget, the worst single budget, the sweep."""
    mid = math.isqrt(budgets[0] * budgets[-1])
    one = best_cpu_time(lambda: module.plan_ferret(profile, td, budget_bytes=mid), repeat)

    def one_budget(b: int) -> Callable[[], object]:
        return lambda: module.plan_ferret(profile, td, budget_bytes=b)

    per_budget = [best_cpu_time(one_budget(b), repeat) for b in budgets]

    def sweep() -> None:
        planner = module.FerretPlanner(profile, td)
        for b in budgets:
            planner.plan(b)

    worst = int(np.argmax(per_budget))
    return {
        "one": one,
        "worst": per_budget[worst],
        "chains": chains_built(module, profile, td, budgets[worst]),
        "sweep": best_cpu_time(sweep, repeat),
    }


def baseline_timings(checkout: str, case: str, budgets: list[int], repeat: int) -> dict[str, float | str]:
    """`timings` of another checkout's planner: a fresh interpreter imports its `planner` first,
    so that this file's own `from planner import search` finds that one."""
    here = Path(__file__).resolve().parent
    script = (
        f"import sys, json; sys.path.insert(0, {checkout!r}); import planner.search as s\n"
        f"sys.path.append({str(here)!r}); import planner_speed as b\n"
        f"p = b.case_profile({case!r}); td = float(p.t_fwd.max())\n"
        f"print(json.dumps(b.timings(s, p, td, {budgets!r}, {repeat})))"
    )
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    result: dict[str, float | str] = json.loads(out.splitlines()[-1])
    return result


def same_plans(reference: ModuleType, profile: ModelProfile, td: float, budgets: list[int]) -> bool:
    new, old = new_search.FerretPlanner(profile, td), reference.FerretPlanner(profile, td)
    return all(new.plan(b).plan == old.plan(b).plan for b in budgets)


def in_fresh_process(module: str, case: str, repeat: int) -> float:
    """Wall seconds of a new interpreter that imports `module` and plans `case`'s slowest budget
    (what `ferret plan` pays: imports and tables built on first use included)."""
    profile = case_profile(case)
    td = float(profile.t_fwd.max())
    budgets = sweep_budgets(profile, td)
    worst = max(budgets, key=lambda b: best_cpu_time(lambda: new_search.plan_ferret(profile, td, budget_bytes=b), 1))
    root = Path(__file__).resolve().parents[1]
    script = (
        f"import sys; sys.path[:0] = [{str(root)!r}, {str(root / 'benchmarks')!r}]\n"
        f"from planner_speed import case_profile\nfrom {module} import plan_ferret\n"
        f"p = case_profile({case!r}); plan_ferret(p, float(p.t_fwd.max()), budget_bytes={worst})"
    )
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", script], check=True)
        times.append(time.perf_counter() - start)
    return min(times)


def breakdown(module: ModuleType, case: str) -> None:
    profile = case_profile(case)
    td = float(profile.t_fwd.max())
    budgets = sweep_budgets(profile, td)
    worst = max(budgets, key=lambda b: best_cpu_time(lambda: module.plan_ferret(profile, td, budget_bytes=b), 1))
    profiler = cProfile.Profile()
    profiler.enable()
    module.plan_ferret(profile, td, budget_bytes=worst)
    profiler.disable()
    print(f"\n{module.__name__}: {case}, its slowest budget ({worst} B), where the time goes (top 15 by own time)")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs (CPU time)")
    parser.add_argument("--cases", default=DEFAULT_CASES, help="comma-separated synthetic-L / random-L-SEED")
    parser.add_argument("--reference", action="store_true", help="also time the planner before issue 14")
    parser.add_argument("--reference-repeat", type=int, default=1, help="best of this many for the old planner")
    parser.add_argument("--baseline", metavar="DIR", help="also time the planner of this checkout (e.g. /work/main)")
    parser.add_argument("--breakdown", metavar="CASE", help="cProfile the slowest budget of this case")
    parser.add_argument("--process", metavar="CASE", help="time `ferret plan`'s work in a fresh process")
    args = parser.parse_args()
    reference: ModuleType | None = None
    if args.reference or args.breakdown or args.process:
        from tests.planner.reference_search import search as reference

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average (1, 5, 15 min): {load} on {os.cpu_count()} CPUs; CPU seconds, best of {args.repeat}")
    kernel = (
        "compiled (planner/_s3_kernel.c)" if s3_batch.kernel else "numpy (no kernel built, or FERRET_PURE_PYTHON=1)"
    )
    print(f"S2 runs, S3 tails and walks: {kernel}")
    cols = [("one budget", "one"), ("worst of 20", "worst"), ("chains", "chains"), ("sweep of 20", "sweep")]
    header = f"{'case':>15} {'P range':>8} " + " ".join(f"{c:>12}" for c, _ in cols)
    if args.baseline:
        header += "  " + " ".join(f"{'base ' + c:>17}" for c, _ in cols)
    if reference is not None:
        header += "  " + " ".join(f"{'old ' + c:>16}" for c, _ in cols) + "  same plans"
    print(header)
    print("-" * len(header))

    def cells(numbers: dict[str, float | str], width: int) -> str:
        return " ".join(
            f"{numbers[k]:>{width - 1}.3f}s" if isinstance(numbers[k], float) else f"{numbers[k]:>{width}}"
            for _, k in cols
        )

    for case in args.cases.split(","):
        profile = case_profile(case)
        td = float(profile.t_fwd.max())
        budgets = sweep_budgets(profile, td)
        stages = [len(p) - 1 for p in new_search.FerretPlanner(profile, td).partitions]
        line = f"{case:>15} {min(stages):>3}–{max(stages):<4} " + cells(
            timings(new_search, profile, td, budgets, args.repeat), 12
        )
        if args.baseline:
            line += "  " + cells(baseline_timings(args.baseline, case, budgets, args.repeat), 17)
        if reference is not None:
            old = timings(reference, profile, td, budgets, args.reference_repeat)
            line += "  " + cells(old, 16)
            line += f"  {'yes' if same_plans(reference, profile, td, budgets) else 'NO':>10}"
        print(line, flush=True)
    if args.process:
        print(f"\n{args.process}, its slowest budget, in a fresh process (wall seconds, best of {args.repeat}):")
        for module in ["planner.search"] + (["tests.planner.reference_search.search"] if reference else []):
            print(f"  {module}: {in_fresh_process(module, args.process, args.repeat):.3f}s")
    if args.breakdown:
        breakdown(new_search, args.breakdown)
        assert reference is not None
        breakdown(reference, args.breakdown)


if __name__ == "__main__":
    main()
