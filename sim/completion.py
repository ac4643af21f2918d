"""What happens when an op ends: the next op of the datum, the backward's gradient, the update.

Functions of the engine (`sim.engine.Engine`), called from its loop with the op's slot, datum,
start time and end time. A forward hands the datum to the next stage (or, at the last stage,
to its backward; GPipe waits for the whole batch); a backward frees what its datum stored,
adds its gradient to the slot's open group and, when the group is complete, applies the update
(SPEC §3.2: onto the current version, with staleness `current - stashed`), then hands the
gradient down or finishes the datum. Every step writes its trace row and its memory changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from librt.vecs import append

from sim.admission import Batch
from sim.parts import Datum, Slot
from sim.policy import BWD, FWD
from sim.rows import write_row
from sim.trace import KIND_CODE

if TYPE_CHECKING:
    from sim.engine import Engine

K_FWD: Final = KIND_CODE["fwd"]
K_REC: Final = KIND_CODE["recompute"]
K_BWD: Final = KIND_CODE["bwd"]
K_UPDATE: Final = KIND_CODE["update"]


def transient_bytes(engine: Engine, slot: Slot, opening: bool) -> int:
    """What a backward holds beyond (F4): its gradient, rebuilt activations, a new accumulation buffer."""
    extra = slot.weights + (engine.sizes.recompute_saving[slot.stage] if slot.recompute else 0)
    if opening and slot.acc_target > 1:
        extra += slot.weights
    return extra


def forward_done(engine: Engine, slot: Slot, d: Datum, t0: float, now: float, factor: float) -> None:
    dev = slot.device
    j = slot.stage
    dev.busy_s += now - t0
    after = slot.after_s > 0 and j < d.bottom and d.sample >= slot.passes_from  # a pass after it; no backward here
    engine.end_op(slot, slot.after_s * factor if after else 0.0, now)
    rows = engine.trace_rows
    if rows is not None:
        stored = slot.act if j >= d.bottom else 0
        write_row(rows, K_FWD, d.sample, slot.widx, j, slot.dev_index, t0, now, d.versions[j], 0, stored, 0)
    nxt = slot.next
    if nxt is not None:
        if engine.free_links or nxt.device is dev:
            engine.ready(nxt, FWD, d, now)
        else:
            engine.links.transfer(slot, nxt, FWD, d, slot.boundary_out, now)
    elif engine.barrier:
        batch: Batch = d.batch  # type: ignore[assignment]
        batch.parked.append(d)
        if len(batch.parked) == batch.size:
            parked, batch.parked = batch.parked, []
            for other in parked:
                engine.ready(slot, BWD, other, now)
    else:
        engine.ready(slot, BWD, d, now)
    if dev.free and dev.ready.heap:
        engine.dispatch(dev, now)


def backward_done(engine: Engine, slot: Slot, d: Datum, t0: float, now: float, factor: float) -> None:
    dev = slot.device
    dev.busy_s += now - t0
    after = slot.after_s > 0 and d.sample >= slot.passes_from  # an algorithm's pass after it (MAS's importance)
    engine.end_op(slot, slot.after_s * factor if after else 0.0, now)
    sample = d.sample
    j = slot.stage
    v = d.versions[j]
    cur = engine.version[j]
    refs = engine.refs[j]
    left = refs[v] - 1
    ledger = engine.ledger
    if left:
        refs[v] = left
    else:
        del refs[v]
        if v != cur:  # the last datum that needed this old version is done: its copy goes
            ledger.change(now, slot.home, -slot.weights)
    slot.outstanding -= 1
    if slot.parked:
        engine.unpark(slot)
    ledger.change(now, slot.dev_index, -slot.act)
    if engine.transient:
        ledger.change(now, slot.dev_index, -transient_bytes(engine, slot, opening=False))
    rows = engine.trace_rows
    t = t0 + slot.overhead * factor
    if slot.recompute:
        t = t + slot.t_rec * factor
        engine.recomputes += 1
        if rows is not None:
            write_row(rows, K_REC, sample, slot.widx, j, slot.dev_index, t0, t, v, 0, 0, 0)
        t0 = t
    acc = slot.acc
    acc.append((sample, v))
    closes = len(acc) == slot.acc_target
    t_bwd = now  # the optimizer step, if any, is the job's tail
    if closes and slot.update_s:
        t_bwd = min(now, t + (slot.t_bwd_job - slot.t_rec) * factor)
    if rows is not None:
        write_row(rows, K_BWD, sample, slot.widx, j, slot.dev_index, t0, t_bwd, v, cur - v, 0, 0)
    if closes:
        apply_update(engine, slot, t_bwd, now)
    if j > d.bottom:
        prev: Slot = slot.prev  # type: ignore[assignment]
        if engine.free_links or prev.device is dev:
            engine.ready(prev, BWD, d, now)
        else:
            engine.links.transfer(slot, prev, BWD, d, slot.boundary_in, now)
    else:
        engine.in_flight -= 1
        engine.admission.datum_done(d, now)
    if dev.free and dev.ready.heap:
        engine.dispatch(dev, now)


def count_staleness(engine: Engine, j: int, tau: int) -> None:
    """One more gradient of staleness `tau` applied at stage `j` (its histogram grows to `tau`)."""
    hist = engine.staleness[j]
    if tau >= len(hist):
        while tau >= len(hist):
            hist = append(hist, 0)
        engine.staleness[j] = hist  # appending may move the array
    hist[tau] += 1


def apply_update(engine: Engine, slot: Slot, t_start: float, now: float) -> None:
    """Step `slot.stage` with the gradients in `slot.acc`: version `cur` becomes `cur + 1`."""
    j = slot.stage
    cur = engine.version[j]
    if cur in engine.refs[j]:  # an in-flight datum still needs `cur`: it turns into a stashed copy
        engine.ledger.change(now, slot.home, slot.weights)
    engine.version[j] = cur + 1
    update_t, P = engine.update_t, engine.P
    acc = slot.acc
    slot.acc = []
    if len(acc) == 1:  # the common case (c^a = 1): one gradient
        sample, v = acc[0]
        worst = cur - v
        count_staleness(engine, j, worst)
        update_t[sample * P + j] = now
    else:
        worst = 0
        for sample, v in acc:
            tau = cur - v
            if tau > worst:
                worst = tau
            count_staleness(engine, j, tau)
            update_t[sample * P + j] = now
    rows = engine.trace_rows
    if rows is not None:
        write_row(rows, K_UPDATE, -1, slot.widx, j, slot.dev_index, t_start, now, cur, worst, 0, len(acc))
        samples = engine.samples_out
        for sample, _ in acc:
            samples.append(sample)
    if engine.transient and slot.acc_target > 1:
        engine.ledger.change(now, slot.dev_index, -slot.weights)  # the accumulation buffer closes
