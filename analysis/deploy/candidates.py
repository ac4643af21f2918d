"""Deploy's plan choice: the top-K plans by the closed forms, then the twin picks one.

The closed forms assume no contention; on `D` real devices the plans' workers share them, so
every candidate is simulated with the (calibrated) twin on the same stream and the one with the
highest simulated adaptation rate is run. Candidates are Ferret's best plan for each of Alg. 3's
partitions (SPEC §4.2) within the budget, ranked by (F3).
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.errors import FerretError
from planner.partition import candidate_partitions
from planner.plan import Plan
from planner.profile import ModelProfile
from planner.strategies import make_plan, minimal_budget
from sim.arrivals import ArrivalProcess
from sim.config import SimConfig
from sim.result import SimResult
from sim.simulate import simulate


@dataclass(frozen=True, eq=False)
class Candidate:
    plan: Plan
    closed_form_rate: float
    closed_form_memory_bytes: int
    simulated: SimResult | None = None


def resolve_budget(budget: str | int, profile: ModelProfile, td: float, decay: float, devices: int) -> int | None:
    """'max' → unconstrained (M+), 'min' → the smallest feasible footprint (M−), else bytes."""
    if budget == "max":
        return None
    if budget == "min":
        return minimal_budget(profile, td, decay, strategy="ferret", num_devices=devices)
    return int(budget)


def top_candidates(
    profile: ModelProfile, td: float, decay: float, budget: int | None, devices: int, k: int
) -> list[Candidate]:
    found: dict[str, Candidate] = {}
    for partition in candidate_partitions(profile):
        result = make_plan("ferret", profile, td, decay, budget, partition=partition, num_devices=devices)
        if result.feasible:
            key = repr(result.plan.to_json())
            found.setdefault(key, Candidate(result.plan, result.adaptation_rate, result.memory_bytes))
    if not found:
        raise FerretError("no Ferret plan fits the budget on any partition")
    ranked = sorted(found.values(), key=lambda c: -c.closed_form_rate)
    return ranked[:k]


def simulate_candidates(
    candidates: list[Candidate],
    profile: ModelProfile,
    config: SimConfig,
    samples: int,
    arrivals: ArrivalProcess,
    seed: int,
) -> list[Candidate]:
    """Each candidate with its twin result on the stream, best simulated R first."""
    out = [
        Candidate(
            c.plan,
            c.closed_form_rate,
            c.closed_form_memory_bytes,
            simulate(c.plan, profile, samples, arrivals, seed, config),
        )
        for c in candidates
    ]
    return sorted(out, key=lambda c: -(c.simulated.adaptation_rate if c.simulated else 0.0))
