"""Rank program: GPipe and 1F1B-flush in real time on 2 or 3 ranks, for test_batched_realtime.py.

    python -m tests.executor.distributed.batched OUT

run as every rank of a 2-rank `launch_local` (pipelines.py's `batched` part runs the 3-rank
cases in test_pipelines.py's 3-rank session: one start-up of torch per rank). Each case runs a plan in real time — on 2 ranks P = 2
(stage j on rank j); on 3 ranks P = 3 (one stage each: the `BATCH` message and every
activation and gradient go through rank 1, neither the source nor the last stage) and P = 4
on stages 0 | 1 | 2, 3 (the last rank owns two); rank 0 writes OUT/<case>.json with the
run's counts, the measured trace's ops and updates, whether the replay executor following the
measured trace (which checks every version, staleness and update against it) ends with the
run's weights, and whether the weights are those of plain mini-batch steps over the batches
the run formed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from executor.compensation import CompensationConfig
from executor.distributed.options import DistributedOptions
from executor.distributed.rank import RankRun, Session, check_run, run_in_session
from executor.ocl.setup import RunSetup
from executor.replay import ReplayExecutor, execution_plan, load_rows
from planner.plan import Plan
from sim.config import SimConfig
from tests.executor.distributed.pipelines import owner_plan
from tests.executor.replay import fixtures

N = 40
INTERVAL = 0.004
MINIBATCH = 3
PREDICT_ALL = ("gpipe-fast", "p3-gpipe-fast")  # its many drops get an inference forward each


def cases(ranks: int) -> dict[str, tuple[Plan, float]]:
    """Name → (plan, arrival interval) for `ranks` ranks. `fast` arrives faster than a batch
    runs, so the buffer fills and the policy drops; `omission`: stage 0 takes every other
    datum's backward, so its groups are short and flushed at the batch's last backward there."""

    def plan(strategy: str, P: int, omission: tuple[int, ...] | None = None) -> Plan:
        partition = (0, 2, 3) if P == 2 else tuple(range(P + 1))
        base = fixtures.plan(partition, interval_s=INTERVAL, strategy=strategy, minibatch=MINIBATCH, omission=omission)
        return owner_plan(base, OWNERS[P])

    if ranks == 2:
        return {
            "gpipe": (plan("gpipe", 2), INTERVAL),
            "1f1b": (plan("1f1b", 2), INTERVAL),
            "gpipe-fast": (plan("gpipe", 2), 0.0002),
            "1f1b-omission": (plan("1f1b", 2, omission=(1, 0)), INTERVAL),
        }
    return {
        "p3-gpipe-fast": (plan("gpipe", 3), 0.0002),
        "p3-1f1b-omission": (plan("1f1b", 3, omission=(1, 0, 0)), INTERVAL),
        "p4-gpipe": (plan("gpipe", 4), INTERVAL),
        "p4-1f1b": (plan("1f1b", 4), INTERVAL),
    }


OWNERS = {2: (0, 1), 3: (0, 1, 2), 4: (0, 1, 2, 2)}  # stage j's rank


def hidden(plan: Plan) -> tuple[int, ...]:
    """The fixture MLP's hidden widths for `plan`'s layers (P = 4 takes one layer more)."""
    return (8,) * (plan.partition[-1] - 1)


def run_case(session: Session, out: Path, name: str, plan: Plan, interval: float) -> None:
    setup = fixtures.setup(n=N, interval_s=interval, hidden=hidden(plan))
    trace = out / f"{name}.trace.jsonl"
    options = DistributedOptions(predict_all=name in PREDICT_ALL)
    run = RankRun(execution_plan(plan), CompensationConfig(), SimConfig(), options, measured_trace=trace)
    check_run(run.plan, setup.algorithm, run.options, session.ctx.world_size)
    result = session.run(setup, run)
    if session.ctx.rank != 0:
        return
    fresh = fixtures.setup(n=N, interval_s=interval, hidden=hidden(plan))
    rows = load_rows(trace, fresh.stream.arrival_s, plan)
    ReplayExecutor(fresh, execution_plan(plan), CompensationConfig()).run(rows, drain=True)
    distributed = setup.model.state_dict()
    d = result.details
    updates = [(r.stage, r.t_end, list(r.samples)) for r in rows if r.kind == "update"]
    report: dict[str, Any] = {
        "n": N,
        "P": plan.num_stages,
        "minibatch": MINIBATCH,
        "predict_all": options.predict_all,
        "trained": int(result.trained.sum()),
        "dropped": d["dropped"],
        "unpredicted": d["unpredicted"],
        "trained_mask": result.trained.tolist(),
        "predicted_mask": (result.predicted >= 0).tolist(),
        "in_flight_at_end": d["in_flight_at_end"],
        "staleness": d["staleness_histogram"],
        "updates_per_stage": d["updates_per_stage"],
        "updates": updates,
        "arrivals": setup.stream.arrival_s.tolist(),
        "ops": [(r.kind, r.sample, r.stage, r.t_start, r.t_end) for r in rows if r.kind in ("fwd", "bwd")],
        "replay_equal": all(torch.equal(distributed[k], v) for k, v in fresh.model.state_dict().items()),
        "minibatch_equal": minibatch_steps_match(
            setup, interval, [s for j, _, s in updates if j == plan.num_stages - 1], hidden(plan)
        ),
    }
    (out / f"{name}.json").write_text(json.dumps(report))


def minibatch_steps_match(run: RunSetup, interval: float, batches: list[list[int]], widths: tuple[int, ...]) -> bool:
    """Whether the run's last stage ends where plain mini-batch steps over `batches` (the
    last stage's update rows, in order) take a fresh model: one Adam step on each batch's mean
    loss. (The last stage is the last layer; every datum's backward reaches it.)"""
    reference = fixtures.setup(n=N, interval_s=interval, hidden=widths)
    model, stream = reference.model, reference.stream
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.from_numpy(stream.dataset.x_train), torch.from_numpy(stream.dataset.y_train)
    for batch in batches:
        rows = torch.tensor([int(stream.order[s]) for s in batch])
        optimizer.zero_grad()
        F.cross_entropy(model(x[rows]), y[rows]).backward()
        optimizer.step()
    expected, got = model.state_dict(), run.model.state_dict()
    return all(torch.allclose(got[k], v, rtol=1e-5, atol=1e-6) for k, v in expected.items())


def run_cases(session: Session, out: Path) -> None:
    """Every case for this session's number of ranks (pipelines.py runs the 3-rank ones in its session)."""
    for name, (plan, interval) in cases(session.ctx.world_size).items():
        run_case(session, out, name, plan, interval)


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    out = Path(argv[0])
    run_in_session(lambda session: run_cases(session, out), "gloo")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
