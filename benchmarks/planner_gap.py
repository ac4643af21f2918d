"""How far Alg. 2 + 3's greedy falls below the exact optimum of (F13), on tiny random models.

    .venv/bin/python benchmarks/planner_gap.py [--cases 200] [--seed 0]

Each case: 1–4 layers with random times and sizes, `td` such that at most 3 workers run, a
decay from {0.05, 0.2, 1}/s, and 4 budgets evenly spaced between the smallest footprint and
the unconstrained plan's. "inner" compares `search` on one random partition with the exact
optimum on that partition; "full" compares `plan_ferret` (Alg. 3's candidate partitions) with
the exact optimum over every partition (`planner.exhaustive`); "moves" compares `plan_ferret` with
the optimum over Alg. 3's own candidate partitions and only the configurations S2/S3/S4 can
reach: what is left is the greedy's ordering alone, not its move set or its partitions. Gap = 1 - R_greedy / R_opt.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planner.closed_form import stage_times
from planner.exhaustive import exhaustive_optimum
from planner.profile import LayerProfile, ModelProfile
from planner.search import FerretPlanner, search


def case(rng: np.random.Generator) -> tuple[ModelProfile, float, float, tuple[int, ...]]:
    L = int(rng.integers(1, 5))
    layers = tuple(
        LayerProfile(
            f"l{i}",
            float(rng.uniform(0.2, 2)),
            float(rng.uniform(0.2, 3)),
            int(rng.integers(10, 500)),
            int(rng.integers(10, 500)),
        )
        for i in range(L)
    )
    profile = ModelProfile("tiny", layers, source="synthetic")
    whole = sum(stage_times(profile, (0, L)))
    td = whole / float(rng.uniform(1.0, 2.9))
    cuts = sorted(rng.choice(np.arange(1, L), size=int(rng.integers(0, L)), replace=False).tolist()) if L > 1 else []
    return profile, td, float(rng.choice([0.05, 0.2, 1.0])), (0, *cuts, L)


def describe(name: str, gaps: list[float]) -> str:
    g = np.array(gaps)
    return (
        f"{name:<6} {len(g):>6} {np.mean(g == 0):>9.1%} {np.mean(g):>8.2%} {np.median(g):>8.2%} "
        f"{np.quantile(g, 0.9):>8.2%} {np.max(g):>8.2%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    inner, full, moves = [], [], []
    for _ in range(args.cases):
        profile, td, decay, part = case(rng)
        planner = FerretPlanner(profile, td, decay)
        top = planner.plan(None).memory_bytes
        for budget in np.linspace(planner.min_memory_bytes(), top, 4).astype(int).tolist():
            best = exhaustive_optimum(profile, td, budget, decay)
            greedy = planner.plan(budget)
            assert greedy.feasible and best.plan is not None
            full.append(max(0.0, 1 - greedy.adaptation_rate / best.adaptation_rate))
            reachable = exhaustive_optimum(profile, td, budget, decay, partitions=planner.partitions, space="steps")
            moves.append(max(0.0, 1 - greedy.adaptation_rate / reachable.adaptation_rate))
            best_part = exhaustive_optimum(profile, td, budget, decay, partitions=[part])
            if best_part.plan is None:
                continue
            mine = search(profile, part, td, budget, decay)
            assert mine.feasible
            inner.append(max(0.0, 1 - mine.adaptation_rate / best_part.adaptation_rate))
    print(f"{'search':<6} {'points':>6} {'optimal':>9} {'mean':>8} {'median':>8} {'p90':>8} {'max':>8}")
    print(describe("inner", inner))
    print(describe("full", full))
    print(describe("moves", moves))


if __name__ == "__main__":
    main()
