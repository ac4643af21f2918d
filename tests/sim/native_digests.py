"""Digests of whole runs — trace bytes and every result array — over fixed random scenarios.

`digests(n)` draws the same `n` scenarios every time (derandomized Hypothesis) and hashes each
run, so a compiled and an interpreted process can be compared run for run. Used by
tests/sim/test_native.py: `python -c "from tests.sim.native_digests import main; main(30)"`.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
from hypothesis import HealthCheck, given, settings

from sim import MemoryTrace, simulate
from sim.native import compiled
from tests.sim.scenarios import Scenario, scenarios


def digest(scenario: Scenario) -> str:
    trace = MemoryTrace()
    result = simulate(
        scenario.plan, scenario.profile, scenario.samples, scenario.arrivals, scenario.seed, scenario.config, trace
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


def digests(n: int) -> list[str]:
    out: list[str] = []

    @settings(max_examples=n, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(scenarios(max_samples=40))
    def collect(scenario: Scenario) -> None:
        out.append(digest(scenario))

    collect()
    return out


def main(n: int) -> None:
    print(json.dumps({"compiled": compiled("sim"), "digests": digests(n)}))
