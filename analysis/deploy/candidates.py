"""Deploy's plan choice: the top-K plans by the closed forms, then the twin picks one.

The closed forms assume no contention; on `D` real devices the plans' workers share them, so
every candidate is simulated with the (calibrated) twin on the same stream and the one with the
highest simulated adaptation rate is run. Candidates are Ferret's best plan for each of Alg. 3's
partitions (SPEC §4.2) within the budget, ranked by (F3).

A stage's weights live on one device (its owner rank runs every worker's ops on it), so each
candidate is placed by owners, two ways: contiguous blocks balanced by stage time
(`planner.placement.owner_placement`: fewest transfers), and stage `j` on device `j mod D` (round
robin: neighbours on different devices). Both are simulated; the twin decides.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from analysis.units import parse_budget
from planner.errors import FerretError
from planner.partition import candidate_partitions
from planner.placement import owner_placement
from planner.plan import Plan
from planner.profile import ModelProfile
from planner.strategies import make_plan, minimal_budget
from sim.arrivals import ArrivalProcess
from sim.config import SimConfig
from sim.fitted_costs import LayerCosts
from sim.result import SimResult
from sim.simulate import simulate


@dataclass(frozen=True, eq=False)
class Candidate:
    """One plan deploy may run, with its closed-form (F3) rate (data/s) and (F4) bytes.

    `simulated` is the twin's `SimResult` once simulated (None before).
    """

    plan: Plan
    closed_form_rate: float
    closed_form_memory_bytes: int
    simulated: SimResult | None = None


def checked_budget(text: str) -> str | int:
    """`units.parse_budget`, its error one line naming the flag."""
    try:
        return parse_budget(text)
    except ValueError as exc:
        raise FerretError(f"--budget: {exc} (or min, max)") from None


def resolve_budget(budget: str, profile: ModelProfile, td: float, decay: float, devices: int) -> int | None:
    """'max' → unconstrained (M+), 'min' → the smallest feasible footprint (M−), else the size."""
    parsed = checked_budget(budget)
    if parsed == "max":
        return None
    if parsed == "min":
        return minimal_budget(profile, td, decay, strategy="ferret", num_devices=devices)
    return int(parsed)


def owner_placements(plan: Plan, profile: ModelProfile, devices: int) -> list[Plan]:
    """`plan` with every stage on one device: balanced contiguous blocks, and round robin."""
    blocks = owner_placement(profile, plan.partition, plan.num_workers, devices)
    robin = tuple(tuple(j % devices for j in range(plan.num_stages)) for _ in plan.workers)
    return [replace(plan, placement=p) for p in dict.fromkeys((blocks, robin))]


def top_candidates(
    profile: ModelProfile, td: float, decay: float, budget: int | None, devices: int, k: int
) -> list[Candidate]:
    found: dict[str, Candidate] = {}
    for partition in candidate_partitions(profile):
        result = make_plan("ferret", profile, td, decay, budget, partition=partition, num_devices=devices)
        if not result.feasible:
            continue
        for plan in owner_placements(result.plan, profile, devices):
            found.setdefault(repr(plan.to_json()), Candidate(plan, result.adaptation_rate, result.memory_bytes))
    if not found:
        raise FerretError("no Ferret plan fits the budget on any partition")
    ranked = sorted(found.values(), key=lambda c: -c.closed_form_rate)
    partitions = list(dict.fromkeys(c.plan.partition for c in ranked))[:k]
    return [c for c in ranked if c.plan.partition in partitions]


def simulate_candidates(
    candidates: list[Candidate],
    profile: ModelProfile,
    config: SimConfig,
    costs: LayerCosts,
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
            simulate(c.plan, profile, samples, arrivals, seed, config, costs=costs.for_partition(c.plan.partition)),
        )
        for c in candidates
    ]
    return sorted(out, key=lambda c: -(c.simulated.adaptation_rate if c.simulated else 0.0))
