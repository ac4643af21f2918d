"""Where the replay executor's schedule comes from: the twin, for the plan and the stream's
arrival times, or any trace file in the shared schema (sim/trace.py). Either way the rows are
`sim.trace.TraceRow`s, read by field name.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from planner.errors import FerretError
from planner.plan import Plan
from planner.profile import ModelProfile
from sim.config import SimConfig
from sim.costs import OpCosts
from sim.result import SimResult
from sim.simulate import simulate
from sim.strategies import get_strategy
from sim.trace import KINDS, MemoryTrace, TraceRow, read_trace


@dataclasses.dataclass(frozen=True)
class GivenArrivals:
    """An arrival process that returns a stream's own arrival times (the sim's `times` API)."""

    arrival_s: np.ndarray
    name: str = "stream"

    @property
    def mean_interval_s(self) -> float:
        n = len(self.arrival_s)
        return float(self.arrival_s[-1]) / (n - 1) if n > 1 else 0.0

    def times(self, n: int, seed: int = 0) -> np.ndarray:
        if n > len(self.arrival_s):
            raise FerretError(f"the stream has {len(self.arrival_s)} arrivals, the sim asked for {n}")
        return self.arrival_s[:n]


def execution_plan(plan: Plan) -> Plan:
    """The plan the StageRuntimes run. A synchronous strategy (GPipe, 1F1B-flush) updates every
    stage once per mini-batch with the batch's mean gradient: that is accumulation over
    `minibatch` data, so its workers get `c^a = minibatch` (a short last batch is flushed)."""
    if not get_strategy(plan.strategy).batched or plan.minibatch == 1:
        return plan
    workers = tuple(dataclasses.replace(w, accumulation=(plan.minibatch,) * plan.num_stages) for w in plan.workers)
    return dataclasses.replace(plan, workers=workers)


def execution_order(rows: Sequence[TraceRow], plan: Plan | None = None) -> list[TraceRow]:
    """The rows in the order their effects happen, which is the order to execute them in.

    A trace lists rows as ops *end*, but a forward reads its stage's weights when it *starts*
    (the twin records the version current at the start), so an update that lands while a
    forward runs must not reach it: forwards are placed at their start, everything else at its
    end — save the recomputation of a latest-weights worker of `plan` (SPEC §3.2; no plan: no
    such worker), which reads the weights when it starts too and is placed like a forward.
    Among rows of one instant, ends (backward, update, recompute) come first, in trace order,
    so memory is freed before it is taken again, as in the twin — except that a forward
    on version `v` of stage `j` goes right before the first end at stage `j` that applies an
    update to `v` or later (the versions say which way the twin went). Arrivals and drops come
    last, so an update that ends as a datum arrives is visible to its prediction (the
    sequential loop's rule). Zero-duration ops that depend on each other at one instant across
    stages are not ordered here (profiled times are positive).
    """
    latest = set() if plan is None else {n for n, w in enumerate(plan.workers) if w.latest}

    def reads_at_start(row: TraceRow) -> bool:
        return row.kind == "fwd" or (row.kind == "recompute" and row.worker in latest)

    def effect_time(row: TraceRow) -> float:
        return row.t_start if reads_at_start(row) else row.t_end

    order = sorted(range(len(rows)), key=lambda i: (effect_time(rows[i]), i))
    out: list[TraceRow] = []
    start = 0
    while start < len(order):
        t = effect_time(rows[order[start]])
        stop = start + 1
        while stop < len(order) and effect_time(rows[order[stop]]) == t:
            stop += 1
        out.extend(_order_instant([rows[i] for i in order[start:stop]], reads_at_start))
        start = stop
    return out


def _order_instant(group: list[TraceRow], reads_at_start: Callable[[TraceRow], bool]) -> list[TraceRow]:
    if len(group) == 1:
        return group
    forwards = [r for r in group if reads_at_start(r)]
    ends = [r for r in group if r.kind in ("bwd", "update", "recompute") and not reads_at_start(r)]
    rest = [r for r in group if r.kind not in ("bwd", "update", "recompute", "fwd")]
    # What moves a stage's version: the backward that closes a gradient group (the runtime
    # steps inside it), or an update row with no such backward (a group flushed early).
    closing = closing_backwards(ends)
    before: dict[int, list[TraceRow]] = {}
    after: list[TraceRow] = []
    for fwd in forwards:
        slot = next(
            (
                i
                for i, e in enumerate(ends)
                if e.stage == fwd.stage
                and (e.kind == "update" or (e.kind == "bwd" and (e.sample, e.worker, e.stage) in closing))
                and _applies_to(e) >= fwd.version
            ),
            None,
        )
        if slot is None:
            after.append(fwd)
        else:
            before.setdefault(slot, []).append(fwd)
    out: list[TraceRow] = []
    for i, end in enumerate(ends):
        out.extend(before.get(i, ()))
        out.append(end)
    return out + after + rest


def closing_backwards(rows: Iterable[TraceRow]) -> set[tuple[int, int, int]]:
    """`(sample, worker, stage)` of every backward that closes a gradient group: the last sample
    of each update row (the runtime steps inside that backward)."""
    return {(r.samples[-1], r.worker, r.stage) for r in rows if r.kind == "update" and r.samples}


def _applies_to(row: TraceRow) -> int:
    """The version an update (or the backward that closes its group) steps from."""
    return row.version if row.kind == "update" else row.version + row.staleness


def simulate_rows(
    plan: Plan,
    profile: ModelProfile,
    arrival_s: np.ndarray,
    seed: int,
    config: SimConfig,
    costs: OpCosts | None = None,
) -> tuple[list[TraceRow], SimResult]:
    """The twin's schedule of `plan` for exactly these arrivals (`costs`: a fitted cost model
    instead of the profile's times)."""
    trace = MemoryTrace()
    arrivals = GivenArrivals(arrival_s)
    result = simulate(plan, profile, len(arrival_s), arrivals, seed, config, trace, costs)
    return trace.events(), result


def load_rows(path: str | os.PathLike[str], arrival_s: np.ndarray, plan: Plan) -> list[TraceRow]:
    """A trace file's rows, checked against the stream (its arrival times) and the plan."""
    rows = check_rows(read_trace(path), len(arrival_s), plan, str(path))
    traced = np.array([r.t_end for r in rows if r.kind == "arrive"], dtype=np.float64)
    off = ~np.isclose(traced, arrival_s, rtol=1e-9, atol=1e-12)
    if off.any():
        i = int(np.argmax(off))
        raise FerretError(
            f"trace {path}: datum {i} arrives at {traced[i]:.9g} s but the stream's arrives at {arrival_s[i]:.9g} s; "
            "simulate the plan with the run's arrivals (same --arrival, --arrival-interval, --samples, --seed)"
        )
    return rows


def check_rows(rows: Iterable[TraceRow], num_samples: int, plan: Plan, where: str) -> list[TraceRow]:
    out = []
    P, N = plan.num_stages, plan.num_workers
    for i, row in enumerate(rows):
        kind, sample, worker, stage = row.kind, row.sample, row.worker, row.stage
        if kind not in KINDS:
            raise FerretError(f"trace {where} row {i + 1}: unknown kind {kind!r}")
        compute = kind in ("fwd", "recompute", "bwd", "update")
        if compute and (not 0 <= stage < P or not 0 <= worker < N):
            raise FerretError(
                f"trace {where} row {i + 1}: {kind} on worker {worker}, stage {stage}, but the plan has "
                f"{N} workers and {P} stages"
            )
        if kind in ("arrive", "fwd", "recompute", "bwd", "drop") and not 0 <= sample < num_samples:
            raise FerretError(
                f"trace {where} row {i + 1}: sample {sample} is outside the stream (0..{num_samples - 1})"
            )
        if kind == "update" and any(not 0 <= s < num_samples for s in row.samples):
            raise FerretError(f"trace {where} row {i + 1}: update names a sample outside the stream")
        out.append(row)
    arrivals = sum(1 for r in out if r.kind == "arrive")
    if arrivals != num_samples:
        raise FerretError(f"trace {where} has {arrivals} arrive rows but the stream has {num_samples} data")
    return out
