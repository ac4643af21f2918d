"""The replay executor: one process follows a trace op by op against the StageRuntimes.

Rows come in the order the schedule completes them (sim/trace.py). Per row:

* `arrive` — the datum is predicted (eval mode) by the model as it is at that row: every
  update of an earlier row is visible, none later (test-then-train). Predictions are batched
  until the next row that can change the weights.
* `fwd` — stage 0 first asks the OCL algorithm for the datum's micro-batch (ER's replayed
  rows join it, LwF takes its teacher's logits); every stage runs its StageRuntime forward and
  carries the output to the stage above.
* `recompute`, `bwd` — the StageRuntime rebuilds (T1) and back-propagates; the last stage
  takes the algorithm's loss (and MAS's penalty, at every stage, on the stashed weights); the
  input gradient goes to the stage below. When a datum's backward has reached the lowest stage
  it reaches (SPEC §3.2), the algorithm's `after_update` runs.
* `update` — the StageRuntime applied it inside the backward that closed the group; the row
  is checked against it (or flushes a group that cannot fill: the stream ended, or a
  synchronous pipeline's last mini-batch was short).
* `drop`, `send`, `recv`, `mem` — nothing to compute here.

Every version a fwd/recompute/bwd ran on, every backward's staleness and every update's
samples are checked against the trace (`executor.pipeline.trace_checks`): a trace that does not
belong to the plan stops the run with a `FerretError` naming the row, and so does a datum's op
out of its order (`executor.replay.op_order`) or one its stage's protocol refuses (`OpOrderError`). Adaptive layer freezing
(aL-SAR) changes the schedule with the data; the replay tolerates it: a stage inside a datum's
frozen prefix runs its `bwd` row as a release, an update row applies what its group still holds
(nothing: the stage's versions run one behind the trace from then on), and the checks allow
for it (trace_checks.py says exactly how). The run ends at the last arrival (the sequential loop's
rule: an update that lands later never served the stream) unless `drain` is set. Each executed
op is written to `recorder` in the trace schema with the wall-clock time it took here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch

from executor.compensation import EFFICACY_EVERY, CompensationConfig, compensation_efficacy
from executor.models.base import LayeredModel
from executor.ocl.algorithms import build_algorithm
from executor.ocl.modes import eval_mode, mode_invariant
from executor.ocl.result import RunResult
from executor.ocl.setup import RunSetup
from executor.pipeline.accounting import PipelineLedger, SavedTensorSizes
from executor.pipeline.flight import Flight
from executor.pipeline.stage_worker import StageWorker
from executor.pipeline.stages import stage_flops
from executor.pipeline.summary import PipelineSummary
from executor.pipeline.trace_checks import TraceChecks
from executor.replay.op_order import OpOrder
from executor.replay.recorder import Recorder
from executor.replay.records import ModelView, ReplayRecords
from executor.replay.trace_source import closing_backwards, execution_order
from executor.seeding import seed_everything
from executor.stage import OpOrderError, StageRuntime
from planner.errors import FerretError
from planner.plan import Plan
from sim.trace import TraceRow, TraceSink

COMPUTE = ("fwd", "recompute", "bwd")


class ReplayExecutor:
    """Runs a plan by following a trace op by op in one process against the stages' `StageRuntime`s.

    Checks every row against what ran (`FerretError` on a mismatch) and returns a `RunResult`; see the
    module docstring for what each row kind does.
    """

    def __init__(
        self,
        setup: RunSetup,
        plan: Plan,
        compensation: CompensationConfig | None = None,
        recorder: TraceSink | None = None,
        framework: str | None = None,
        efficacy_every: int = EFFICACY_EVERY,
    ) -> None:
        seed_everything(setup.seed)
        self.setup = setup
        self.plan = plan
        self.framework = framework or plan.strategy
        self.P = plan.num_stages
        stream, dataset = setup.stream, setup.stream.dataset
        device = setup.torch_device
        if not isinstance(setup.model, LayeredModel):
            raise FerretError("a pipeline runs a LayeredModel (the planner's layers); build the model by name")
        self.model: LayeredModel = setup.model.to(device)
        self.model.train()
        self.ledger = PipelineLedger()
        self.compensation = compensation if compensation is not None else CompensationConfig()
        self.efficacy_every = efficacy_every
        self.worker: StageWorker | None = None  # built by `run`, once the schedule says which stages go stale
        self.stages: list[StageRuntime] = []
        self.compensated_stages: list[int] = []
        self.algorithm = build_algorithm(setup.algorithm, setup.algorithm_context(self.ledger))
        self.stage_flops = stage_flops(setup.profile, plan)
        self.bytes_per_sample = dataset.stored_bytes_per_sample
        self.x = torch.from_numpy(dataset.x_train).to(device)
        self.y = torch.from_numpy(dataset.y_train).to(device)
        self.order = stream.order.tolist()
        self.order_t = torch.from_numpy(stream.order).to(device)
        self.task = stream.task.tolist()
        self.records = ReplayRecords(stream, self.P, setup.eval_every, device)
        self.view = ModelView(self.model)
        self.mode_dependent = not mode_invariant(self.model)
        self.recorder = Recorder(recorder)
        self._flights: dict[int, Flight] = {}
        self._waiting: set[int] = set()
        self._pending: list[int] = []  # arrived, not yet predicted
        self._applied: dict[tuple[int, int], Any] = {}  # (worker, stage) → UpdateResult not yet matched by a row
        self._closes: set[tuple[int, int, int]] = set()
        self._saved = SavedTensorSizes()
        self.checks = TraceChecks(self.P)
        self.op_order = OpOrder(self.P)
        self._arrived = 0
        self.discarded_flops = 0.0  # work of ops still running when the stream ended
        self.busy_s = 0.0
        self.ops = 0
        self.updates = [0] * self.P

    # ------------------------------------------------------------------ run
    def run(self, trace_rows: Sequence[TraceRow], drain: bool = False) -> RunResult:
        """Execute `trace_rows` (any order: they are put in execution order here)."""
        n = self.records.n
        rows = execution_order(trace_rows, self.plan)
        self._build_stages({row.stage for row in rows if row.kind == "bwd" and row.staleness > 0})
        last_arrival = _last_arrival(rows, n)
        end = len(rows) if drain else last_arrival + 1
        # A backward that closes a gradient group changes the weights: pending predictions go first.
        self._closes = closing_backwards(rows)
        handlers = {
            "arrive": self._arrive,
            "fwd": self._forward,
            "recompute": self._recompute,
            "bwd": self._backward,
            "update": self._update,
            "drop": self._drop,
        }
        started = time.perf_counter()
        self.recorder.start()
        for index in range(end):
            row = rows[index]
            handler = handlers.get(row.kind, _ignore)
            try:
                handler(row)
            except (FerretError, OpOrderError) as exc:  # a trace file that is not a schedule of this plan
                raise FerretError(f"replay, trace row {index + 1} ({row.kind} of sample {row.sample}): {exc}") from None
        self._predict_pending()
        if not drain:
            self._charge_discarded(rows, end, float(rows[last_arrival].t_end))
        self.recorder.flush()
        return self._result(time.perf_counter() - started, sum(1 for row in rows if row.kind == "drop"))

    def _build_stages(self, stale: set[int]) -> None:
        """One StageRuntime per stage. A stage the schedule never hands a stale gradient gets no
        compensator: the math is the same (compensation acts only on stale gradients) and it
        holds none of the compensator's buffers (Iter-Fisher's λ tuning keeps two per stage)."""
        if self.stages:
            raise RuntimeError("a ReplayExecutor runs one trace; build another for the next")
        none = CompensationConfig()
        configs = [self.compensation if j in stale else none for j in range(self.P)]
        self.compensated_stages = [j for j in range(self.P) if j in stale and self.compensation.name != "none"]
        self.worker = StageWorker(
            self.model, self.plan, range(self.P), self.setup.optimizer, configs, self.algorithm, self.ledger,
            self.stage_flops, self.setup.cost_model, saved=self._saved, efficacy_every=self.efficacy_every,
        )  # fmt: skip
        self.stages = [self.worker.stages[j] for j in range(self.P)]

    # ------------------------------------------------------------------ rows
    def _arrive(self, row: TraceRow) -> None:
        sample = row.sample
        if sample != self._arrived:
            raise FerretError(f"arrivals out of order: expected sample {self._arrived}")
        self._arrived += 1
        self._pending.append(sample)
        if sample not in self._flights and self.records.bottom[sample] < 0:  # not admitted at this instant
            self._waiting.add(sample)
            self.ledger.set("window", len(self._waiting) * self.bytes_per_sample)
        self.recorder.instant("arrive", sample, row.worker)
        if self._arrived == self.records.next_checkpoint:
            self._predict_pending()
            self.records.evaluate(self.view, self._arrived)

    def _drop(self, row: TraceRow) -> None:
        if row.sample in self._waiting:
            self._waiting.discard(row.sample)
            self.ledger.set("window", len(self._waiting) * self.bytes_per_sample)
        self.recorder.instant("drop", row.sample, row.worker, row.bytes)

    def _forward(self, row: TraceRow) -> None:
        sample, stage = row.sample, row.stage
        flight = self._admit(sample, row.worker) if stage == 0 else self._flight(sample, stage)
        self.op_order.take(row)
        if self.mode_dependent:
            self._predict_pending()  # BatchNorm statistics move with every forward
            self.view.version += 1
        assert self.worker is not None
        result = self.worker.forward(flight, stage, sample)
        self.checks.forward(row, result.version, result.stored)
        self._op_done(row, result.version, 0, result.bytes)

    def _recompute(self, row: TraceRow) -> None:
        assert self.worker is not None
        flight = self._flight(row.sample, row.stage)
        self.op_order.take(row)
        version = self.worker.recompute(flight, row.stage, row.sample)
        self.checks.recompute(row, version)
        self._op_done(row, version, 0, 0)

    def _backward(self, row: TraceRow) -> None:
        sample, worker, stage = row.sample, row.worker, row.stage
        flight = self._flight(sample, stage)
        self.op_order.take(row)
        if self._pending and (sample, worker, stage) in self._closes:
            self._predict_pending()
        assert self.worker is not None
        result = self.worker.backward(flight, stage, sample)
        self.checks.backward(row, result)
        if result.ran:
            self.records.applied_staleness(stage, result.staleness)
        if result.update is not None:
            if (sample, worker, stage) not in self._closes:
                raise FerretError(f"stage {stage} applied an update the trace does not have here")
            self._applied[(worker, stage)] = result.update
            self.view.version += 1
        self._op_done(row, result.version, result.staleness, 0)
        if stage == flight.bottom:
            del self._flights[sample]
            self.op_order.finish(sample)
            self.records.bottom[sample] = flight.trained  # a frozen prefix trains fewer stages
            self.worker.finish(flight)

    def _update(self, row: TraceRow) -> None:
        worker, stage = row.worker, row.stage
        applied = self._applied.pop((worker, stage), None)
        assert self.worker is not None
        t0 = t1 = time.perf_counter()  # applied inside the backward that closed the group: an instant
        if applied is None:  # a group the trace closes early (stream end, short mini-batch, frozen data)
            self._predict_pending()
            applied = self.worker.flush(stage, worker)
            t0, t1 = self.worker.span
            if applied is not None:
                self.view.version += 1
        if not self.checks.update(row, applied):
            return  # every datum of the group froze this stage: nothing to apply
        assert applied is not None
        self.updates[stage] += 1
        self.records.updated(applied.samples, stage, float(row.t_end))
        self.recorder.update(worker, stage, row.device, t0, t1, applied.version, applied.staleness, applied.samples)

    # ------------------------------------------------------------------ helpers
    def _admit(self, sample: int, worker: int) -> Flight:
        if sample in self._flights:
            raise FerretError("a second stage-0 forward of the same datum")
        assert self.worker is not None
        bottom = self.worker.next_bottom(worker)
        position = self.order[sample]
        x, y = self.x[position : position + 1], self.y[position : position + 1]
        flight = self.worker.admit(worker, bottom, x, y, self.task[sample])
        if sample in self._waiting:
            self._waiting.discard(sample)
            self.ledger.set("window", len(self._waiting) * self.bytes_per_sample)
        self._flights[sample] = flight
        self.records.bottom[sample] = bottom
        return flight

    def _flight(self, sample: int, stage: int) -> Flight:
        flight = self._flights.get(sample)
        if flight is None:
            raise FerretError(f"stage {stage} op on a datum that is not in the pipeline")
        return flight

    def _predict_pending(self) -> None:
        pending = self._pending
        if not pending:
            return
        t0 = time.perf_counter()
        index = torch.tensor(pending, dtype=torch.int64)
        x = self.x.index_select(0, self.order_t[index])
        with torch.no_grad():
            if self.mode_dependent:
                with eval_mode(self.model):
                    logits = self.model(x)
            else:  # train and eval mode compute the same function: no switching the modules
                logits = self.model(x)
        self.records.predicted[pending] = logits.argmax(dim=1).cpu().numpy()
        self.recorder.predictions(pending, t0, time.perf_counter())
        self._pending = []

    def _op_done(self, row: TraceRow, version: int, staleness: int, nbytes: int) -> None:
        assert self.worker is not None
        self.ops += 1
        self.busy_s += row.t_end - row.t_start
        t0, t1 = self.worker.span
        self.recorder.op(row, t0, t1, version, staleness, nbytes)

    def _charge_discarded(self, rows: Sequence[TraceRow], end: int, stream_end: float) -> None:
        """Ops already running when the stream ended are discarded but their work is counted
        (the sequential loop's rule for a step still running at the last arrival)."""
        for row in rows[end:]:
            if row.kind in COMPUTE and row.t_start < stream_end and row.sample in self._flights:
                passes = 2.0 if row.kind == "bwd" else 1.0
                self.discarded_flops += passes * self._flights[row.sample].batch.rows * self.stage_flops[row.stage]
                self.busy_s += row.t_end - row.t_start

    def _result(self, wall_s: float, dropped: int) -> RunResult:
        ledger = self.ledger
        summary = PipelineSummary.from_records(
            self.records,
            self.setup.profile,
            self.plan,
            dropped,
            ops_executed=self.ops,
            updates_per_stage=list(self.updates),
            frozen_backwards_per_stage=[
                0 if self.worker is None else self.worker.frozen_backwards[j] for j in range(self.P)
            ],
            final_lambda=[getattr(stage.compensator, "lam", None) for stage in self.stages],
            compensated_stages=self.compensated_stages,
            compensation_efficacy=compensation_efficacy([s.efficacy for s in self.stages], self.records.n),
            measured_peak_memory_layer_outputs_bytes=ledger.peak,
            measured_weights_activations_peak_bytes=ledger.f4_peak,
            measured={
                "replay_wall_us_per_op": 1e6 * wall_s / self.ops if self.ops else None,
                "trace_updates_skipped_per_stage": list(self.checks.skipped),
            },
        )
        return self.records.result(
            self.framework,
            self.setup.algorithm.name,
            steps=self.updates[-1],
            train_flops=(0.0 if self.worker is None else self.worker.flops) + self.discarded_flops,
            busy_s=self.busy_s,
            peak_memory_bytes=ledger.saved_peak,
            peak_memory_by_category=ledger.peaks(),
            wall_s=wall_s,
            details={**summary.details(), **self.algorithm.details()},
        )


def _ignore(row: TraceRow) -> None:
    return None


def _last_arrival(rows: Sequence[TraceRow], n: int) -> int:
    for index in range(len(rows) - 1, -1, -1):
        if rows[index].kind == "arrive":
            return index
    raise FerretError(f"the trace has no arrive row (the stream has {n} data)")
