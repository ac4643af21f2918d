"""Rank programs that run real pipelines, for the distributed executor's tests.

    python -m tests.executor.distributed.pipelines PROGRAM OUT

run as every rank of a `launch_local` (harness: `launch(nproc, PROGRAM, OUT)`). Rank 0 writes
OUT/<case>.json per case. Programs:

* `lockstep` — every lockstep case for this many ranks, in one session: the twin's schedule
  of the case's plan is followed by the distributed executor (`--follow-trace`), then rank 0
  replays the same rows in one process and compares the final weights bit for bit.
* `realtime` — real-time runs (P = 2 on 1 or 2 ranks, P = 3 and 4 on 3); rank 0 keeps the
  merged trace and replays it in one process: the weights must come out the same.
* `batched` — batched.py's GPipe and 1F1B-flush cases for this many ranks.

Latest-weights backward (lockstep and real time) and the `hvp` compensator (lockstep) run on 2
ranks like the other cases: the replay's weights, bit for bit.

LwF, MAS and MIR (per-stage state, their passes through the stages) run in lockstep and in real
time on 2 ranks (stages 0 | 1, 2) and on 3: P = 3, one stage per rank — MAS's importance and
MIR's scoring passes go up and down through rank 1, which is neither the source nor the last
stage, and LwF's teacher activation rides through it — and P = 4 on stages 0 | 1 | 2, 3 (the
last rank owns two stages).

Budgeted OCL (aL-SAR's freezing and similarity-aware sampler on ER) cases, on 2 ranks: freezing decided by a fixed cycle (`scripted`: the
schedule changes with the data, yet a replay of the same rows decides the same) must still give
the replay's weights bit for bit, in lockstep and in real time; adaptive freezing proper (its
Fisher traces travel up with the activations) must keep the books (reports count releases,
skipped update rows and updates per stage).

`lockstep+realtime` runs both in one session (one start-up of torch per rank), and
`lockstep+realtime+batched` all three (the 3-rank session).

"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from executor.compensation import CompensationConfig
from executor.distributed.options import DistributedOptions
from executor.distributed.rank import RankRun, Session, check_run, run_in_session
from executor.ocl.freezing import AdaptiveFreezing
from executor.replay import ReplayExecutor, execution_order, execution_plan, load_rows, simulate_rows
from planner.plan import Plan, WorkerConfig
from planner.strategies import make_plan
from sim.config import SimConfig
from tests.executor.replay import fixtures

N = 40
INTERVAL = 0.004  # real time: data overlap in the pipeline (stale gradients); the tests assert invariants, never timing


def owner_plan(plan: Plan, owners: tuple[int, ...]) -> Plan:
    """`plan` with every worker's stage j on device `owners[j]`."""
    return dataclasses.replace(plan, placement=tuple(owners for _ in plan.workers))


def removed_worker_plan(interval_s: float = 1.0, accumulation: tuple[int, ...] = (1, 1, 1)) -> Plan:
    base = fixtures.plan((0, 1, 2, 3), workers=3, interval_s=interval_s, accumulation=accumulation)
    workers = (base.workers[0], WorkerConfig(-1, False, (1, 1, 1), (0, 0, 0)), base.workers[2])
    return dataclasses.replace(base, workers=workers).validate(3)


CYCLE = (0, 0, 0, 1, 2, 0, 2, 1, 2, 0, 1)  # layers frozen, datum by datum (3 layers: at most 2)
SCRIPTED = "scripted"  # a case option: freezing decides by CYCLE
COMPENSATION = "compensation"  # a lockstep case option: the compensator (default iter-fisher)
# aL-SAR's two parts on ER (aL-SAR itself trains on memory draws only and is refused: its training
# forward holds no prediction of the datum, the distributed executor's prediction).
SIMILARITY_ER = {"algorithm": "er", "buffer_samples": 8, "sampler": "similarity-aware", "freezing": "adaptive"}


# The algorithms that need every stage's current weights for a datum — their state kept per stage
# by each stage's owner, or their passes going through the stages: consolidating every 5 data takes
# several teachers (anchors) in a run of N; MIR scores 4 candidates for 1 replayed row. Each with
# the algorithm it must differ from (the term it adds, the choice it makes, changes the weights).
PER_STAGE = {
    "lwf": {"algorithm": "lwf", "consolidate_every": 5},
    "mas": {"algorithm": "mas", "consolidate_every": 5},
    "mir": {"algorithm": "mir", "replay_batch": 1, "buffer_samples": 8, "mir_candidates": 4},
}
BASELINE = {"lwf": "vanilla", "mas": "vanilla", "mir": "er"}


@contextlib.contextmanager
def scripted_freezing(on: bool) -> Iterator[None]:
    """While on, `AdaptiveFreezing.choose` returns CYCLE's next entry (its own count of batches)."""
    original = AdaptiveFreezing.choose

    def choose(self: AdaptiveFreezing, logits: Any, labels: Any, classifier: Any) -> int:
        frozen = CYCLE[self.batches % len(CYCLE)]
        self.batches += 1
        self.frozen_batches += frozen > 0
        self.frozen_layers_total += frozen
        return frozen

    if on:
        AdaptiveFreezing.choose = choose  # type: ignore[method-assign]
    try:
        yield
    finally:
        AdaptiveFreezing.choose = original  # type: ignore[method-assign]


def freezing_books(result: Any, rows: Any = None) -> dict[str, Any]:
    """A freezing run's counts per stage: releases, updates, and (lockstep) skipped and traced update rows."""
    d = result.details
    books = {"frozen_backwards": d["frozen_backwards_per_stage"], "updates": d["updates_per_stage"]}
    if rows is not None:
        P = len(d["updates_per_stage"])
        books["skipped"] = d["trace_updates_skipped_per_stage"]
        books["traced_updates"] = [sum(1 for r in rows if r.kind == "update" and r.stage == j) for j in range(P)]
    return books


def lockstep_cases(ranks: int) -> dict[str, tuple[Plan, dict[str, Any]]]:
    """Plans with P = 3 and N ≥ 2 (T1–T4), PipeDream-2BW; stage owners for `ranks` ranks."""
    owners = (0, 1, 1) if ranks == 2 else (0, 1, 2)
    two_bw = make_plan("pipedream-2bw", fixtures.setup().profile, 1.0, partition=(0, 1, 2, 3)).plan
    cases: dict[str, tuple[Plan, dict[str, Any]]] = {
        "t1-recompute": (fixtures.plan((0, 1, 2, 3), workers=2, interval_s=1.0, recompute=True), {}),
        "t2-accumulation": (fixtures.plan((0, 1, 2, 3), workers=2, interval_s=1.0, accumulation=(2, 1, 2)), {}),
        "t3-omission-er": (
            fixtures.plan((0, 1, 2, 3), workers=2, interval_s=1.0, omission=(1, 1, 0)),
            {"algorithm": "er", "replay_batch": 2, "buffer_samples": 8},
        ),
        "t4-removed-worker": (removed_worker_plan(), {}),
        "pipedream-2bw": (two_bw, {}),
        # Latest-weights backward: each recomputation reads the weights current when it starts.
        "latest-weights": (
            fixtures.plan((0, 1, 2, 3), workers=3, interval_s=1.0, recompute=True, backward_weights="latest"),
            {},
        ),
        "hvp-compensation": (fixtures.plan((0, 1, 2, 3), workers=2, interval_s=1.0), {COMPENSATION: "hvp"}),
    }
    # Per-stage algorithm state across ranks: LwF's teacher, MAS's importance and anchor
    # (generations carried by the data, MAS's importance pass in messages), MIR's scoring passes,
    # with recomputation and accumulation: on stages 0 | 1, 2, or one stage per rank (every pass
    # and LwF's teacher activation relayed by rank 1, which is neither the source nor the last stage).
    per_stage = fixtures.plan((0, 1, 2, 3), workers=2, interval_s=1.0, recompute=True, accumulation=(2, 1, 1))
    if ranks == 3:
        cases = {k: cases[k] for k in ("t3-omission-er", "pipedream-2bw")}
        cases.update((name, (per_stage, opts)) for name, opts in PER_STAGE.items())
    else:
        freezing = fixtures.plan((0, 1, 2, 3), workers=2, interval_s=1.0, accumulation=(2, 1, 1))
        cases["freezing-scripted"] = (freezing, {**SIMILARITY_ER, SCRIPTED: True})
        cases["freezing-adaptive-er"] = (freezing, {"algorithm": "er", "buffer_samples": 8, "freezing": "adaptive"})
        cases.update((name, (per_stage, opts)) for name, opts in PER_STAGE.items())
    planned = {name: (owner_plan(plan, owners), opts) for name, (plan, opts) in cases.items()}
    if ranks == 3:  # P = 4 on stages 0 | 1 | 2, 3: the last rank owns two stages
        four = owner_plan(per_stage_four(1.0), FOUR_OWNERS)
        planned.update((f"{name}-p4", (four, {**opts, **FOUR})) for name, opts in PER_STAGE.items())
    return planned


FOUR = {"hidden": (8, 8, 8)}  # four layers: P = 4, one layer per stage
FOUR_OWNERS = (0, 1, 2, 2)


def per_stage_four(interval_s: float) -> Plan:
    """P = 4, two workers, recomputation and accumulation (the per-stage algorithms' plan, one stage more)."""
    return fixtures.plan((0, 1, 2, 3, 4), workers=2, interval_s=interval_s, recompute=True, accumulation=(2, 1, 1, 1))


def lockstep(session: Session, out: Path) -> None:
    for name, (plan, opts) in lockstep_cases(session.ctx.world_size).items():
        with scripted_freezing(opts.pop(SCRIPTED, False)):
            lockstep_case(session, out, name, plan, opts)


def lockstep_case(session: Session, out: Path, name: str, plan: Plan, opts: dict[str, Any]) -> None:
    compensation = CompensationConfig(opts.pop(COMPENSATION, "iter-fisher"))
    setup = fixtures.setup(n=N, interval_s=1.0, **opts)
    rows, _ = simulate_rows(plan, setup.profile, setup.stream.arrival_s, 0, SimConfig())
    ordered = execution_order(rows, plan)
    run = RankRun(execution_plan(plan), compensation, SimConfig(), DistributedOptions(follow_trace=Path(name)),
                  rows=ordered)  # fmt: skip
    check_run(run.plan, setup.algorithm, run.options, session.ctx.world_size)
    result = session.run(setup, run)
    if session.ctx.rank != 0:
        return
    distributed = {k: v.clone() for k, v in setup.model.state_dict().items()}
    fresh = fixtures.setup(n=N, interval_s=1.0, **opts)
    replay = ReplayExecutor(fresh, execution_plan(plan), compensation).run(rows, drain=True)
    replayed = fresh.model.state_dict()
    equal = all(torch.equal(distributed[k], replayed[k]) for k in replayed)
    moved = any(not torch.equal(v, fixtures.setup(**opts).model.state_dict()[k]) for k, v in replayed.items())
    if opts.get("algorithm") in PER_STAGE:  # the term it adds (the choice it makes) changes the weights
        plain = fixtures.setup(n=N, interval_s=1.0, **{**opts, "algorithm": BASELINE[opts["algorithm"]]})
        ReplayExecutor(plain, execution_plan(plan), compensation).run(rows, drain=True)
        moved = moved and any(not torch.equal(v, plain.model.state_dict()[k]) for k, v in replayed.items())
    report = {
        "equal": equal,
        "moved": moved,
        "ops": result.details["ops_executed"],
        "stale": sum(sum(h[1:]) for h in result.details["staleness_histogram"]),
        "updates": result.details["updates_per_stage"],
        # Compensation efficacy, merged over the ranks' stages, and the replay's of the same rows.
        "efficacy": [r.details["compensation_efficacy"]["per_stage"] for r in (result, replay)],
        **freezing_books(result, rows),
    }
    (out / f"{name}.json").write_text(json.dumps(report))


def realtime_cases(ranks: int) -> dict[str, tuple[Plan, dict[str, Any]]]:
    """Real-time plans: P = 2 on 2 ranks (two workers, ER), P = 3 on 3 ranks (T2, a removed worker),
    and on one rank (the in-process transport) P = 2 with MIR, which needs the whole model."""
    if ranks == 1:
        plan = fixtures.plan((0, 2, 3), workers=2, interval_s=INTERVAL)
        return {"p1": (owner_plan(plan, (0, 0)), {"algorithm": "mir", "replay_batch": 1, "buffer_samples": 8})}
    if ranks == 2:
        plan = owner_plan(fixtures.plan((0, 2, 3), workers=2, interval_s=INTERVAL), (0, 1))
        latest = fixtures.plan((0, 2, 3), workers=2, interval_s=INTERVAL, recompute=True, backward_weights="latest")
        return {
            "p2": (plan, {"algorithm": "er", "replay_batch": 1, "buffer_samples": 8}),
            "p2-freezing-scripted": (plan, {**SIMILARITY_ER, SCRIPTED: True}),
            "p2-latest": (owner_plan(latest, (0, 1)), {}),
            **{f"p2-{name}": (plan, opts) for name, opts in PER_STAGE.items()},
        }
    # A removed worker: a third of the stream is always dropped, and --predict-all predicts it.
    plan = removed_worker_plan(INTERVAL, accumulation=(1, 2, 1))
    # LwF, MAS and MIR with every message relayed by a middle rank; and P = 4 with two stages on rank 2.
    per_stage = owner_plan(fixtures.plan((0, 1, 2, 3), workers=2, interval_s=INTERVAL), (0, 1, 2))
    four = owner_plan(per_stage_four(INTERVAL), FOUR_OWNERS)
    return {
        "p3": (owner_plan(plan, (0, 1, 2)), {}),
        **{f"p3-{name}": (per_stage, opts) for name, opts in PER_STAGE.items()},
        **{f"p4-{name}": (four, {**opts, **FOUR}) for name, opts in PER_STAGE.items()},
    }


PREDICT_ALL = ("p3",)


def realtime(session: Session, out: Path) -> None:
    """Run each case in real time; rank 0 keeps the merged trace, the result's counts, the
    final weights, and the weights the replay executor reaches following the measured trace."""
    for name, (plan, opts) in realtime_cases(session.ctx.world_size).items():
        with scripted_freezing(opts.pop(SCRIPTED, False)):
            realtime_case(session, out, name, plan, opts)


def realtime_case(session: Session, out: Path, name: str, plan: Plan, opts: dict[str, Any]) -> None:
    setup = fixtures.setup(n=N, interval_s=INTERVAL, **opts)
    trace = out / f"{name}.trace.jsonl"
    options = DistributedOptions(predict_all=name in PREDICT_ALL)
    run = RankRun(plan, CompensationConfig(), SimConfig(), options, measured_trace=trace)
    result = session.run(setup, run)
    if session.ctx.rank != 0:
        return
    fresh = fixtures.setup(n=N, interval_s=INTERVAL, **opts)
    rows = load_rows(trace, fresh.stream.arrival_s, plan)
    ReplayExecutor(fresh, plan, CompensationConfig()).run(rows, drain=True)
    replayed = fresh.model.state_dict()
    distributed = setup.model.state_dict()
    d = result.details
    report = {
        "n": N,
        "predict_all": options.predict_all,
        "trained": int(result.trained.sum()),
        "dropped": d["dropped"],
        "unpredicted": d["unpredicted"],
        "predicted": int((result.predicted >= 0).sum()),
        "trained_mask": result.trained.tolist(),
        "predicted_mask": (result.predicted >= 0).tolist(),
        "in_flight_at_end": d["in_flight_at_end"],
        "updates": d["updates_per_stage"],
        "stale": sum(sum(h[1:]) for h in d["staleness_histogram"]),
        "replay_equal": all(torch.equal(distributed[k], replayed[k]) for k in replayed),
        "latency_p50_s": d["latency_p50_s"],
        "bwd_rows": [sum(1 for r in rows if r.kind == "bwd" and r.stage == j) for j in range(plan.num_stages)],
        # The schema's transfer stage: a send row on the sending stage's owner, a recv on the receiving one's.
        "transfers": [(r.kind, r.stage, r.device) for r in rows if r.kind in ("send", "recv")],
        "owners": list(plan.placement[0]),
        "start": [(r["ready_s"], r["start_late_s"]) for r in d["per_rank"]],
        **freezing_books(result),
    }
    (out / f"{name}.json").write_text(json.dumps(report))


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    program, out = argv[0], Path(argv[1])

    def body(session: Session) -> None:
        from tests.executor.distributed.batched import run_cases  # it imports this module

        for part in program.split("+"):
            {"lockstep": lockstep, "realtime": realtime, "batched": run_cases}[part](session, out)

    run_in_session(body, "gloo")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
