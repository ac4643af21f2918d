"""One rank's stages and the data passing through them: ops, where their tensors go next, and
what the messages from other ranks mean.

`StageHost` wraps the rank's `StageWorker` (the op bodies every executor shares) with the
placement: after an op, the datum's tensor goes to the next stage's owner — this rank (it stays
in the datum's `Flight` and the next op is ready at once) or another (a protocol message; the
op becomes ready there when the message arrives). Which ready op runs next is the driver's
choice (`realtime.py`: 1F1B by the shared policy; `lockstep.py`: a trace's order); the host
reports each newly ready op as an `Op` to `on_ready`.

Flights: a rank keeps a datum while it has ops left for it here; the source (stage 0's owner)
keeps it until `DONE`, because the algorithm's `after_update` needs the datum's micro-batch.
Every op and update is written to `recorder` (trace.py) on the run's clock.

MAS's importance pass and MIR's scoring across ranks are passes.py's (`self.passes`): a
datum's MAS pass starts when its backward is over, and it is done (`on_done`) when the pass
is back; MIR's stage-0 forward is ready once its candidates' scores are back.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch

from executor.distributed import protocol
from executor.distributed.passes import AlgorithmPasses
from executor.distributed.protocol import Activation, Columns, Gradient, Kind
from executor.distributed.streams import Streams
from executor.distributed.trace import RankRecorder
from executor.ocl.batch import TrainBatch
from executor.ocl.modes import eval_mode
from executor.pipeline.flight import Flight
from executor.pipeline.stage_worker import StageWorker
from executor.pipeline.transport import Message, Transport
from executor.stage import BackwardResult, ForwardResult, UpdateResult
from sim.policy import BWD, FWD

INFER = FWD + 1  # an inference forward (--predict-all): after the training ops in dispatch order


# Where a newly ready op goes (the driver's): `(kind, sample, stage, worker, stores)` — `kind`
# BWD, FWD or INFER of datum `sample` at `stage` of `worker` (-1: an inference), `stores`: a
# forward whose datum's backward will come back through this stage (its slot's window counts it).
OnReady = Callable[[int, int, int, int, bool], None]

# Last-stage outputs whose prediction (their first row's argmax) is taken in one batch this big.
PREDICT_BATCH = 64


class StageHost:
    """The stages one rank owns, the data in flight through them and the messages they send and handle.

    Runs the op the driver picks, forwards each result to the next stage's owner (this rank or a
    protocol message), reports newly ready ops to `on_ready` and records every op on the run's clock;
    see the module docstring.
    """

    def __init__(
        self,
        rank: int,
        owners: Sequence[int],
        worker: StageWorker,
        transport: Transport,
        recorder: RankRecorder,
        streams: Streams | None = None,
    ) -> None:
        self.rank = rank
        self.owners = list(owners)
        self.P = len(owners)
        self.source = owners[0]
        self.worker = worker
        self._freezes = worker.algorithm.freezes
        partition = worker.partition
        self._own_layers = frozenset(layer for j in worker.stages for layer in range(partition[j], partition[j + 1]))
        self.transport = transport
        self.recorder = recorder
        self.streams = streams if streams is not None else Streams(torch.device("cpu"), 1)
        # With one stream (the CPU) an op needs no stream context or event: the op path skips them.
        self._streamed = self.streams.enabled
        # The highest stage this rank owns, and per stage the highest it owns below it (-1: none):
        # whether a datum has ops left here is then a comparison or two (`_forget`).
        self._own_max = max(worker.stages, default=-1)
        self._own_below = [max((j for j in worker.stages if j < s), default=-1) for s in range(self.P)]
        self._recomputes = worker.recomputes
        self.on_ready: OnReady = _nowhere  # the driver's: where newly ready ops go
        self.flights: dict[int, Flight] = {}
        # Admitted, not started: worker, bottom, x, y, task, and the batch when MIR built it already.
        self.entering: dict[int, tuple[int, int, torch.Tensor, torch.Tensor, int, TrainBatch | None]] = {}
        self.infers: dict[int, tuple[torch.Tensor, Any]] = {}  # inference forwards: input and its event
        self.predicted: dict[int, int] = {}  # sample → class, for the data whose last stage is here
        self._unpredicted: list[tuple[int, torch.Tensor]] = []  # (sample, logits): argmax still to take
        self.on_done: Callable[[int, int, int], None] = _no_source  # (sample, worker, lowest trained stage)
        self.on_predicted: Callable[[int, int], None] = _no_source
        # `CHECKPOINT c`: this rank snapshots, answers and writes (checkpoint.py); on the source,
        # `SAVED c OUTCOME` from rank `src`: `(src, c, outcome)`.
        self.on_checkpoint: Callable[[int], None] = _no_checkpoints
        self.on_saved: Callable[[int, int, int], None] = _no_checkpoints
        # Batched strategies in real time (batches.py): a `BATCH` message, and whether a backward
        # was its batch's last at its stage (then the stage's group is applied there).
        self.on_batch: Callable[[Message], None] = _no_batches
        self.closes_batch: Callable[[int, int], bool] | None = None
        self.updates: list[tuple[int, UpdateResult, float]] = []  # (stage, update, run time) as applied
        self.staleness: dict[int, list[int]] = {j: [0] for j in worker.stages}  # gradients by staleness
        self.ops = 0
        self.nonfinite_skipped = 0
        self.busy_s = 0.0
        self.stopped = False
        # Lockstep: updates happen at the followed trace's times (its row's end), not the wall clock's.
        self.schedule_time: float | None = None
        # Lockstep: a DONE from another rank waits for its place in the trace (ER's buffer order).
        self.defer_done = False
        self.done_arrived: dict[int, tuple[int, Columns | None]] = {}
        self.passes = AlgorithmPasses(self)

    def owns(self, stage: int) -> bool:
        return self.owners[stage] == self.rank

    # ------------------------------------------------------------------ entering
    def admitted(self, sample: int, worker: int, bottom: int, x: torch.Tensor, y: torch.Tensor, task: int) -> None:
        """The source admitted `sample`: its stage-0 forward is ready (its micro-batch is built then)
        — with MIR across ranks, once its candidates are scored."""
        if self.worker.scores_across:
            self.passes.start_scoring(sample, (worker, bottom, x, y, task))
            return
        self.entering[sample] = (worker, bottom, x, y, task, None)
        self.on_ready(FWD, sample, 0, worker, bottom == 0)

    def predict_only(self, sample: int, x: torch.Tensor) -> None:
        """`--predict-all`: a datum no worker trains on still gets a prediction (inference forward)."""
        self.infers[sample] = (x, None)
        self.on_ready(INFER, sample, 0, -1, False)

    # ------------------------------------------------------------------ ops
    def run(self, kind: int, sample: int, stage: int, worker: int) -> None:
        if kind == FWD:
            self.forward(sample, stage)
        elif kind == BWD:
            if self._recomputes[stage][worker]:
                self.recompute(sample, stage)
            self.backward(sample, stage)
        elif kind == INFER:
            self.infer(sample, stage)
        else:
            self.passes.run(kind, sample, stage)

    def forward(self, sample: int, stage: int) -> ForwardResult:
        if stage == 0:
            worker, bottom, x, y, task, batch = self.entering.pop(sample)
            self.flights[sample] = self.worker.admit(worker, bottom, x, y, task, batch)
        flight = self.flights[sample]
        last = stage == self.P - 1
        if self._streamed:
            with self.streams.running(stage, flight.ready):
                result = self.worker.forward(flight, stage, sample)
                if last:
                    self._predict_now(sample, result.output)
            flight.ready = self.streams.mark(stage)
        else:
            result = self.worker.forward(flight, stage, sample)
            if last:  # the datum's own training forward predicts it (docs/distributed.md)
                self._unpredicted.append((sample, result.output))
                if len(self._unpredicted) >= PREDICT_BATCH:
                    self.settle_predictions()
        worker = flight.worker
        self._done_op("fwd", sample, worker, stage, result.version, 0, result.bytes)
        if last:
            self.on_ready(BWD, sample, stage, worker, False)
            return result
        above = stage + 1
        if self.owners[above] == self.rank:
            self.on_ready(FWD, sample, above, worker, above >= flight.bottom)
        else:
            assert flight.carry is not None
            fisher = self._fisher_below(above) if self._freezes else None
            act = protocol.activation(
                sample, worker, above, flight.bottom, flight.batch, flight.carry, fisher, flight.teacher,
                flight.generation,
            )  # fmt: skip
            self.transport.send(self.owners[above], act)
            self.worker.leave(flight)
            flight.carry = flight.teacher = None
            if self._own_max <= stage and self._own_max < flight.bottom:  # no op of the datum is left here
                self._forget(sample)
        return result

    def recompute(self, sample: int, stage: int) -> int:
        flight = self.flights[sample]
        if self._streamed:
            with self.streams.running(stage, flight.ready):
                version = self.worker.recompute(flight, stage, sample)
        else:
            version = self.worker.recompute(flight, stage, sample)
        self._done_op("recompute", sample, flight.worker, stage, version, 0, 0)
        return version

    def backward(self, sample: int, stage: int) -> BackwardResult:
        flight = self.flights[sample]
        if self._streamed:
            with self.streams.running(stage, flight.ready):
                result = self.worker.backward(flight, stage, sample)
            flight.ready = self.streams.mark(stage)
        else:
            result = self.worker.backward(flight, stage, sample)
        worker = flight.worker
        span = self._done_op("bwd", sample, worker, stage, result.version, result.staleness, 0)
        if result.ran:  # not a release of a frozen prefix
            hist = self.staleness[stage]
            if result.staleness >= len(hist):
                hist.extend([0] * (result.staleness + 1 - len(hist)))
            hist[result.staleness] += 1
        if result.update is not None:
            self._applied(stage, worker, span, result.update)
        if self.closes_batch is not None and self.closes_batch(stage, worker) and result.update is None:
            self.flush_stage(stage, worker)  # a short batch's group: the batch's last backward here
        bottom = flight.bottom
        if stage > bottom:
            below = stage - 1
            if self.owners[below] == self.rank:
                self.on_ready(BWD, sample, below, worker, False)
                return result
            grad = protocol.gradient(
                sample, worker, below, result.grad_input, flight.batch.frozen_layers, flight.trained,
                flight.columns, flight.ready,
            )  # fmt: skip
            flight.columns = None
            self.transport.send(self.owners[below], grad)
            flight.carry = None
            if self._own_below[stage] < bottom:  # no stage of the datum's backward is left here
                self._forget(sample)
        elif self.rank == self.source:
            self.datum_done(sample)
        else:
            self.transport.send(self.source, protocol.done(sample, worker, flight.trained, flight.columns))
            self._forget(sample)
        return result

    def _predict_now(self, sample: int, out: torch.Tensor) -> None:
        """The prediction on the op's own stream (`--streams`): row 0 is the datum's."""
        self.predicted[sample] = int((out if out.shape[0] == 1 else out[0]).argmax())

    def settle_predictions(self) -> None:
        """Take the argmax of the last-stage outputs kept since the last call, in one batch (each
        datum's is its output's row 0: with one row the flat argmax is that row's)."""
        pending = self._unpredicted
        if not pending:
            return
        rows = [out if out.shape[0] == 1 else out[:1] for _, out in pending]
        labels = torch.cat(rows).argmax(dim=1).tolist()
        for (sample, _), label in zip(pending, labels, strict=True):
            self.predicted[sample] = label
        pending.clear()

    def infer(self, sample: int, stage: int) -> None:
        """An inference-only forward through one stage on its current weights (`--predict-all`)."""
        x, ready = self.infers.pop(sample)
        layers = self.worker.stages[stage].layers
        # Eval mode: the prediction of a datum that trains nothing moves no statistics.
        with self.streams.running(stage, ready), torch.no_grad(), eval_mode(*layers):
            for layer in layers:
                x = layer(x)
            label = int(x[0].argmax()) if stage == self.P - 1 else -1
        ready = self.streams.mark(stage)
        self._count()
        if stage == self.P - 1:
            if self.rank == self.source:
                self.on_predicted(sample, label)
            else:
                self.transport.send(self.source, protocol.predicted(sample, label))
        elif self.owns(stage + 1):
            self.infers[sample] = (x, ready)
            self.on_ready(INFER, sample, stage + 1, -1, False)
        else:
            self.transport.send(self.owners[stage + 1], protocol.infer(sample, stage + 1, x, ready))

    def flush(self, worker: int) -> None:
        """The stream is over and `worker` drained: apply its open groups at every stage here."""
        for stage in sorted(self.worker.stages):
            self.flush_stage(stage, worker)

    def flush_stage(self, stage: int, worker: int) -> UpdateResult | None:
        with self.streams.running(stage, None):
            update = self.worker.flush(stage, worker)
        if update is not None:
            self._applied(stage, worker, self.worker.span, update)
        return update

    # ------------------------------------------------------------------ messages
    def receive(self, src: int, message: Message) -> None:
        kind = message.kind
        if kind == Kind.ACT:
            act = Activation.parse(message)
            flight = self.flights.get(act.sample)
            if flight is None:
                self.flights[act.sample] = flight = self.worker.enter(
                    act.worker, act.bottom, act.batch, act.teacher, act.generation
                )
            else:  # back on a rank it passed before: LwF's teacher activation comes with it
                flight.teacher = act.teacher
            if act.fisher is not None:
                self._take_fisher(act.fisher)
            flight.carry = act.batch.x
            flight.ready = message.ready
            self.on_ready(FWD, act.sample, act.stage, act.worker, act.stage >= act.bottom)
        elif kind == Kind.GRAD:
            grad = Gradient.parse(message)
            flight = self.flights[grad.sample]
            flight.carry = grad.grad
            flight.batch.frozen_layers = grad.frozen_layers
            flight.trained = grad.trained
            flight.columns = grad.columns
            flight.ready = message.ready
            self.on_ready(BWD, grad.sample, grad.stage, grad.worker, False)
        elif kind == Kind.INFER:
            sample, stage = message.fields[:2]
            self.infers[sample] = (message.tensors[0], message.ready)
            self.on_ready(INFER, sample, stage, -1, False)
        elif kind == Kind.DONE:
            sample, _, trained, columns = protocol.parse_done(message)
            if self.defer_done:
                self.done_arrived[sample] = (trained, columns)
            else:
                self.datum_done(sample, trained, columns)
        elif kind in (Kind.IMPORTANCE, Kind.SCORE):
            self.passes.receive(message)
        elif kind == Kind.PREDICTED:
            self.on_predicted(message.fields[0], message.fields[1])
        elif kind == Kind.BATCH:
            self.on_batch(message)
        elif kind == Kind.FLUSH:
            self.flush(message.fields[0])
        elif kind == Kind.STOP:
            self.stopped = True
        elif kind == Kind.CHECKPOINT:
            self.on_checkpoint(message.fields[0])  # it answers `SAVED` itself (snapshot, then write)
        elif kind == Kind.SAVED:
            self.on_saved(src, message.fields[0], message.fields[1])
        else:
            raise RuntimeError(f"rank {self.rank}: unknown message kind {kind} from rank {src}")

    # ------------------------------------------------------------------ helpers
    def datum_done(self, sample: int, trained: int | None = None, columns: Columns | None = None) -> None:
        """At the source: the datum's backward is over everywhere (`trained`, `columns`: what the
        `DONE` of the rank that ended it says)."""
        flight = self.flights.pop(sample)
        if trained is not None:
            flight.trained, flight.columns = trained, columns
        rows = self.worker.finish(flight)
        if rows is None:
            self.on_done(sample, flight.worker, flight.trained)
        else:  # MAS's importance pass goes through the stages first
            self.passes.start_importance(sample, flight.worker, flight.trained, rows)

    def _fisher_below(self, stage: int) -> torch.Tensor | None:
        """Freezing's Fisher traces of the layers below `stage` as this rank knows them (its own
        layers' are the truth), for the activation going up: the last stage decides on them."""
        freezing = self.worker.algorithm.freezing_state(self.worker.model)
        assert freezing is not None
        return torch.from_numpy(freezing.fisher[: self.worker.partition[stage]].copy())

    def _take_fisher(self, values: torch.Tensor) -> None:
        """Adopt the Fisher traces an activation brought, except those of this rank's own layers."""
        freezing = self.worker.algorithm.freezing_state(self.worker.model)
        if freezing is None:
            return
        own = self._own_layers
        for layer, value in enumerate(values.tolist()):
            if layer not in own:
                freezing.fisher[layer] = value

    def _done_op(
        self, kind: str, sample: int, worker: int, stage: int, version: int, staleness: int, nbytes: int
    ) -> tuple[float, float]:
        """Count the op the worker just ran and record it; its span."""
        span = self.worker.span  # `_count`, inline: every op runs it
        self.ops += 1
        self.busy_s += span[1] - span[0]
        self.recorder.op(kind, sample, worker, stage, span, version, staleness, nbytes)
        return span

    def _count(self) -> tuple[float, float]:
        span = self.worker.span
        self.ops += 1
        self.busy_s += span[1] - span[0]
        return span

    def _applied(self, stage: int, worker: int, span: tuple[float, float], update: UpdateResult) -> None:
        if update.skipped:
            if not self.nonfinite_skipped:
                print(
                    f"ferret run: rank {self.rank}: stage {stage}: a gradient with NaN/inf was not applied "
                    "(later ones are counted in summary.json: nonfinite_updates_skipped)",
                    file=sys.stderr,
                )
            self.nonfinite_skipped += 1
            return
        at = span[1] - self.recorder.t0 if self.schedule_time is None else self.schedule_time
        self.updates.append((stage, update, at))
        self.recorder.update(worker, stage, span, update)

    def _forget(self, sample: int) -> None:
        """No op of the datum is left on this rank (never called on the source, which keeps it)."""
        if self.rank != self.source:
            self.worker.leave(self.flights.pop(sample))


def _nowhere(kind: int, sample: int, stage: int, worker: int, stores: bool) -> None:
    raise RuntimeError("StageHost.on_ready is not set: a driver must take the ready ops")


def _no_checkpoints(*position: int) -> None:
    raise RuntimeError("a checkpoint message in a run without checkpoints")


def _no_batches(message: Message) -> None:
    raise RuntimeError("a BATCH message in a run of an asynchronous strategy")


def _no_source(sample: int, worker: int, *rest: int) -> None:
    raise RuntimeError("only the source rank handles completions")
