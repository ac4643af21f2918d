"""Which rank owns which stage, and what a distributed run can execute.

A stage's weights — the one set every worker updates (SPEC §3.1) — live on one device, so a
plan's placement must put stage `j` of every active worker on the same device; that device's
rank owns the stage and runs every worker's ops on it. Devices are numbered as the plan
numbers them and become ranks in that order; the run needs exactly one rank per device used.
A placement that splits a stage across devices would need its weights synchronised between
replicas, which this executor does not do: it is refused (`ferret plan --devices D` makes
owner placements).

OCL algorithms: vanilla and ER run anywhere (ER's replayed rows travel with the datum, their
labels with them), with adaptive freezing and any sampler too (freezing's Fisher traces travel
up with the activations, the similarity-aware sampler's per-sample gradients down with the
gradients, protocol.py); so do LwF (each owner keeps its stages' teacher, the teacher's
activations travel up with the student's), MAS (each owner keeps its stages' importance and
anchor; the importance pass goes through the stages in messages of its own) and MIR (its
scoring passes go through the stages before the datum's first forward). An algorithm that is
not in `ANYWHERE` has no such split yet: it runs only when one rank owns every stage.
"""

from __future__ import annotations

from collections.abc import Sequence

from planner.errors import FerretError
from planner.plan import Plan

ANYWHERE = ("vanilla", "er", "lwf", "mas", "mir")


def stage_owners(plan: Plan, world_size: int) -> list[int]:
    """The rank of every stage's owner; refuses split stages and a rank count that does not fit."""
    active = plan.active_workers or (0,)
    devices = []
    for j in range(plan.num_stages):
        used = sorted({plan.placement[n][j] for n in active})
        if len(used) > 1:
            raise FerretError(
                f"the plan puts stage {j} on devices {used}: a stage's weights live on one device, and this "
                "executor does not synchronise replicas; make the plan with `ferret plan --devices D`"
            )
        devices.append(used[0])
    ranks = {device: rank for rank, device in enumerate(sorted(set(devices)))}
    if len(ranks) != world_size:
        raise FerretError(
            f"the plan places its {plan.num_stages} stages on {len(ranks)} device(s) but the run has "
            f"{world_size} rank(s); run it with --nproc {len(ranks)} (or plan with --devices {world_size})"
        )
    return [ranks[d] for d in devices]


def check_algorithm(name: str, owners: Sequence[int]) -> None:
    """Refuses an algorithm with no per-stage split when its stages are on several ranks."""
    if name in ANYWHERE or len(set(owners)) == 1:
        return
    raise FerretError(
        f"algorithm {name} has no split of its work over stages on several ranks; the distributed executor "
        f"runs it only when one rank owns every stage — use {', '.join(ANYWHERE)}, or --mode replay"
    )
