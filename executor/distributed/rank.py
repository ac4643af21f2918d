"""One rank's whole run: join, build its stages, run (real time or along a trace), report.

Every rank builds the same `RunSetup` (same flags, same seed: the same stream and the same
initial model) and keeps the StageRuntimes of the stages the plan puts on it. After the run
each rank sends rank 0 a `RankReport`; rank 0 merges them into the `RunResult` (merge.py),
writes the measured trace, and every rank returns that same result, so a caller (ferret run)
can tell the output rank from the others only by `is_output_rank`.

Failures never hang: a lost peer, Ctrl-C, a user error or a bug ends this rank with one line
(faults.py); the launcher then stops the others.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch
import torch.distributed as dist

from executor.compensation import CompensationConfig
from executor.distributed.batches import BatchBook
from executor.distributed.checkpoint import Checkpointer, RankCheckpoints, latest, read_meta
from executor.distributed.clock import ClockOffset, sync_clocks
from executor.distributed.context import RankContext
from executor.distributed.faults import fatal_on_failure, run_and_exit
from executor.distributed.host import StageHost
from executor.distributed.lockstep import run_lockstep, stale_stages
from executor.distributed.merge import merge_reports, write_trace
from executor.distributed.options import DistributedOptions
from executor.distributed.placement import check_algorithm, stage_owners
from executor.distributed.ready import RankReadyOps
from executor.distributed.realtime import run_realtime
from executor.distributed.report import RankReport, cuda_peak_bytes, rss_peak_bytes, stage_weights
from executor.distributed.source import StreamSource
from executor.distributed.startup import start_together, warm_up
from executor.distributed.streams import Streams, check_streams
from executor.distributed.threads import ThreadTimes
from executor.distributed.trace import RankRecorder
from executor.distributed.transport import TorchTransport
from executor.distributed.watchdog import Watchdog
from executor.models.base import LayeredModel
from executor.ocl.algorithms import AlgorithmConfig, build_algorithm
from executor.ocl.algorithms.base import algorithm_class
from executor.ocl.result import RunResult
from executor.ocl.setup import RunSetup
from executor.pipeline.accounting import PipelineLedger
from executor.pipeline.stage_worker import StageWorker
from executor.pipeline.stages import stage_flops
from executor.pipeline.transport import LocalTransport, Transport
from executor.seeding import seed_everything
from planner.errors import FerretError
from planner.plan import Plan
from sim.config import SimConfig
from sim.policy import admission_policy
from sim.strategies import get_strategy
from sim.trace import TraceRow


@dataclass(frozen=True)
class RankRun:
    """What a rank needs beyond the setup: the plan as the stages run it, the twin's settings
    (the source's buffer), the compensator, where rank 0 writes the measured trace."""

    plan: Plan
    compensation: CompensationConfig
    sim_config: SimConfig
    options: DistributedOptions
    measured_trace: Path | None = None
    rows: list[TraceRow] | None = None  # lockstep: the trace to follow, in execution order


def run_rank(setup: RunSetup, run: RankRun) -> RunResult:
    """Run this rank (started by torchrun or `launch_local`); every rank returns the merged result."""
    ctx = RankContext.from_env(run.options.backend)
    with fatal_on_failure(ctx.rank):
        check_run(run.plan, setup.algorithm, run.options, ctx.world_size)
        session = Session.open(ctx)
        result = session.run(setup, run)
        RankContext.leave()
        return result
    raise AssertionError("unreachable")  # fatal_on_failure ends the process on any failure


def run_in_session(body: Callable[[Session], None], backend: str | None = None) -> NoReturn:
    """This process is a rank (torchrun's variables): join, run `body` (any number of runs in
    one session: benchmarks, tests), leave, and end the process (`faults.run_and_exit`)."""
    ctx = RankContext.from_env(backend)

    def whole() -> int:
        session = Session.open(ctx)
        body(session)
        RankContext.leave()
        return 0

    run_and_exit(ctx.rank, whole)


def check_run(plan: Plan, algorithm: AlgorithmConfig, options: DistributedOptions, world_size: int) -> None:
    """What can be refused before any rank starts work (the launcher checks it too)."""
    if algorithm_class(algorithm).memory_first:
        raise FerretError(
            f"algorithm {algorithm.name} trains on draws from its memory only, so a datum's training forward holds "
            "no prediction of it — the distributed executor's prediction; run it with --mode replay, or run er with "
            "--freezing adaptive --sampler similarity-aware"
        )
    check_algorithm(algorithm.name, stage_owners(plan, world_size))
    options.validate()
    check_streams(options.streams, torch.cuda.is_available())
    if options.follow_trace is None and get_strategy(plan.strategy).single_device:
        raise FerretError(
            f"strategy {plan.strategy} is a sequential learner (one training step on its batch's rows); the "
            "distributed executor runs it along a trace (--follow-trace), not in real time"
        )


@dataclass
class Session:
    """A joined rank: its context, a gloo group over all ranks for control (clock, reports),
    its clock offset, and its watchdog (watched from the moment it joins). Several runs may
    follow one another in one session (tests)."""

    ctx: RankContext
    control: dist.ProcessGroup | None
    clock: ClockOffset
    watchdog: Watchdog

    @classmethod
    def open(cls, ctx: RankContext) -> Session:
        watchdog = Watchdog(ctx.rank)
        watchdog.start()
        with watchdog.waiting("every rank to join the process group"):
            ctx.join()
            control = dist.new_group(backend="gloo") if ctx.backend != "gloo" else None
            clock = sync_clocks(ctx, group=control)
        return cls(ctx, control, clock, watchdog)

    def run(self, setup: RunSetup, run: RankRun) -> RunResult:
        self.watchdog.limit_s = run.options.watchdog_s
        return _run(self, setup, run)


def _run(session: Session, setup: RunSetup, run: RankRun) -> RunResult:
    ctx, control, clock, watchdog = session.ctx, session.control, session.clock, session.watchdog
    plan = run.plan
    owners = stage_owners(plan, ctx.world_size)
    seed_everything(setup.seed)
    model = setup.model.to(ctx.device)
    if not isinstance(model, LayeredModel):
        raise FerretError("a pipeline runs a LayeredModel (the planner's layers); build the model by name")
    model.train()
    ledger = PipelineLedger()
    algorithm = build_algorithm(setup.algorithm, setup.algorithm_context(ledger))
    mine = [j for j in range(plan.num_stages) if owners[j] == ctx.rank]
    stale = stale_stages(run.rows) if run.rows is not None else set(range(plan.num_stages))
    none = CompensationConfig()
    compensation = [run.compensation if j in stale else none for j in range(plan.num_stages)]
    worker = StageWorker(
        model, plan, mine, setup.optimizer, compensation, algorithm, ledger, stage_flops(setup.profile, plan),
        setup.cost_model, guard_nonfinite=True,
    )  # fmt: skip

    recorder = RankRecorder(ctx.rank, ledger)
    with watchdog.waiting("every rank to open its channels and greet on each"):
        transport: Transport = LocalTransport() if ctx.world_size == 1 else TorchTransport(ctx, on_wire=recorder.wire)
        transport.greet()
    strategy = get_strategy(plan.strategy)
    policy = admission_policy(strategy, plan, strategy.buffer_bound(plan, run.sim_config.input_buffer))
    ready = RankReadyOps(policy, plan.num_workers)
    host = StageHost(ctx.rank, owners, worker, transport, recorder, Streams(ctx.device, run.options.streams))
    book = None
    if run.rows is None:
        host.on_ready = ready.push
        if strategy.batched:  # the book stands in front of the queue (GPipe's barrier)
            book = BatchBook(host, strategy.barrier, plan.num_workers, ready.push)
    source = None
    if run.rows is None and ctx.rank == owners[0]:
        source = StreamSource(setup, plan, policy, host, recorder, run.options.predict_all, book)
    options = run.options
    meta = {"n": len(setup.stream), "world_size": ctx.world_size, "seed": setup.seed,
            "algorithm": asdict(setup.algorithm), "plan": plan.to_json()}  # fmt: skip
    position = 0
    checkpoints, checkpointer = RankCheckpoints(host, source), None
    if options.resume is not None:
        path = latest(options.resume)
        read_meta(path, meta)
        position = checkpoints.load(path)
    tick = None
    if options.checkpoint_every:
        assert options.checkpoint_dir is not None
        root = options.checkpoint_dir
        host.on_checkpoint = lambda at: checkpoints.take(root, at)
        if source is not None:
            checkpointer = Checkpointer(root, options.checkpoint_every, checkpoints, source, meta)
            tick = checkpointer.tick
    first = int(setup.stream.order[position])
    warm_up(worker, torch.from_numpy(setup.stream.dataset.x_train[first : first + 1]).to(ctx.device))
    with watchdog.waiting("every rank to be ready to start"):
        start = start_together(ctx, clock.offset_s, control)
    # A resumed run keeps the stream's time axis: datum `position` is due at the start.
    t0_local = start.start_local - (float(setup.stream.arrival_s[position]) if position else 0.0)
    recorder.start(t0_local)
    idle_s = 0.0
    late_s = start.late_s()
    started, cpu0, threads0 = time.perf_counter(), time.thread_time(), ThreadTimes.take()
    if run.rows is None:
        quiet_s = longest_gap(setup.stream.arrival_s)
        idle_s = run_realtime(host, ready, source, t0_local, watchdog, quiet_s, tick, book)
        summary = {} if source is None else source.summary()
        skipped: dict[int, int] = {}
    else:
        summary, skipped = run_lockstep(host, setup, run.rows, watchdog)
    host.settle_predictions()  # the last batch of argmaxes: still the run's work, inside its time
    if checkpointer is not None:
        checkpointer.finish(watchdog)  # a checkpoint still being written completes first
    checkpoints.wait()  # this rank's `SAVED` goes before its goodbye
    wall_s, loop_cpu_s = time.perf_counter() - started, time.thread_time() - cpu0
    threads = ThreadTimes.take().since(threads0)
    with watchdog.waiting(lambda: f"the other ranks' goodbyes ({_open_peers(transport)})"):
        transport.close()

    report = RankReport(
        rank=ctx.rank,
        stages=tuple(mine),
        rows=recorder.rows,
        updates=[(j, u.version, u.staleness, u.samples, t) for j, u, t in host.updates],
        staleness=host.staleness,
        predicted=host.predicted,
        weights=stage_weights(worker.names, worker.stages),
        final_lambda={j: getattr(r.compensator, "lam", None) for j, r in worker.stages.items()},
        compensated=tuple(j for j in mine if compensation[j].name != "none"),
        efficacy=worker.efficacy(),
        ops=host.ops,
        nonfinite_skipped=host.nonfinite_skipped,
        flops=worker.flops,
        busy_s=host.busy_s,
        ledger_peak=ledger.peak,
        saved_peak=ledger.saved_peak,
        f4_peak=ledger.f4_peak,
        peak_by_category=ledger.peaks(),
        rss_peak_bytes=rss_peak_bytes(),
        cuda_peak_bytes=cuda_peak_bytes(ctx.device),
        clock=clock.to_json(),
        ready_s=start.ready_s,
        start_late_s=late_s,
        wire_bytes_sent=sum(transport.sent_bytes.values()),
        wall_s=wall_s,
        idle_s=idle_s,
        loop_cpu_s=loop_cpu_s,
        ops_cpu_s=worker.cpu_s,
        threads=threads,
        source=summary,
        frozen_backwards=dict(worker.frozen_backwards),
        trace_updates_skipped=skipped,
        algorithm=algorithm.details() if owners[-1] == ctx.rank else {},
    )
    gathered: list[RankReport | None] | None = [None] * ctx.world_size if ctx.rank == 0 else None
    with watchdog.waiting("every rank's report to reach rank 0"):
        dist.gather_object(report, gathered, dst=0, group=control)
    box: list[RunResult | None] = [None]
    if ctx.rank == 0:
        assert gathered is not None
        reports = [r for r in gathered if r is not None]
        box[0] = merge_reports(setup, run, model, reports, owners)
        if run.measured_trace is not None:
            write_trace(run.measured_trace, [r.rows for r in reports])
    with watchdog.waiting("rank 0's merged result"):
        dist.broadcast_object_list(box, src=0, group=control)
    result = box[0]
    assert result is not None
    return result


def longest_gap(arrival_s: np.ndarray) -> float:
    """The longest time the stream is silent: before its first datum, or between two."""
    times = np.asarray(arrival_s, dtype=np.float64)
    return float(np.max(np.diff(times, prepend=0.0))) if len(times) else 0.0


def _open_peers(transport: Transport) -> str:
    peers = sorted(getattr(transport, "open_peers", ()))
    return "ranks " + ", ".join(map(str, peers)) + " have not said goodbye" if peers else "all said goodbye"


def is_output_rank() -> bool:
    """Whether this process writes a distributed run's outputs (rank 0; any process not a rank)."""
    return os.environ.get("RANK", "0") == "0"
