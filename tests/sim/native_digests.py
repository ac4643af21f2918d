"""Digests of whole runs — trace bytes and every result array — of random scenarios.

`digest(scenario)` hashes one run, so a compiled and an interpreted process can be compared run
for run: tests/sim/test_native.py pickles the scenarios it draws and has a pure-Python process
digest them too (`python -c "from tests.sim.native_digests import main; main(path)"`).
Hypothesis draws differ between processes (its choices depend on the modules loaded), so the
scenarios travel, not a seed.
"""

from __future__ import annotations

import hashlib
import json
import pickle

import numpy as np
from hypothesis import HealthCheck, given, settings

from planner.native import compiled
from sim import MemoryTrace, simulate
from sim.costs import OpCosts
from tests.sim.scenarios import Scenario, scenarios


def digest(scenario: Scenario, costs: OpCosts | None = None) -> str:
    trace = MemoryTrace()
    result = simulate(
        scenario.plan,
        scenario.profile,
        scenario.samples,
        scenario.arrivals,
        scenario.seed,
        scenario.config,
        trace,
        costs,
    )
    trace.flush()
    h = hashlib.sha256()
    for chunk in trace.chunks:
        h.update(chunk.rows.tobytes())
        h.update(chunk.samples.tobytes())
    for name in ("update_s", "dropped", "memory_timeline_s", "memory_timeline_bytes", "memory_timeline_per_device"):
        h.update(np.ascontiguousarray(getattr(result, name)).tobytes())
    scalars = (result.peak_memory_bytes, result.peak_memory_per_device, result.final_memory_bytes, result.makespan_s,
               result.staleness_histogram, result.utilisation, result.events, result.ops)  # fmt: skip
    h.update(repr(scalars).encode())
    return h.hexdigest()


def draw_scenarios(n: int) -> list[Scenario]:
    """`n` random scenarios (derandomized, but which ones depends on the process: hand them over pickled)."""
    out: list[Scenario] = []

    @settings(max_examples=n, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(scenarios(max_samples=40))
    def collect(scenario: Scenario) -> None:
        out.append(scenario)

    collect()
    return out


def main(path: str) -> None:
    """Print the digests of the pickled scenarios at `path`, and which modules ran compiled."""
    with open(path, "rb") as f:
        drawn = pickle.load(f)
    print(json.dumps({"compiled": compiled("sim"), "digests": [digest(s) for s in drawn]}))
