"""The stages one process owns, op by op: the one body of every pipeline op both executors run.

A `StageWorker` holds a `StageRuntime` for each stage it owns (all of them in the replay
executor; a rank's share in the distributed one), the OCL algorithm, and the byte ledger of
what this process holds. Its ops take a `Flight` — what this process knows of one datum in
the pipeline — and carry the datum's tensor along it (`flight.carry`: the activation going
up, the gradient coming down); where that tensor goes next, and when the op runs, is the
driver's business (a trace's row order, or a real-time scheduler) and the transport's.

* `next_bottom`, `admit` — stage 0: the omission rule (SPEC §3.2) says how deep a worker's
  next datum's backward goes; at its first forward the algorithm builds its micro-batch
  (ER's replayed rows join it).
* `enter` — a datum whose lower stages live elsewhere arrives here with its activation and
  what the loss needs (labels, weights).
* `forward` / `recompute` / `backward` — the StageRuntime's, with the ledger kept: the
  saved-tensor deltas of stored forwards (accounting.py), the gradient a backward holds while
  it runs, the inputs and labels of data in flight. The last stage's backward takes the
  algorithm's loss; every stage adds the algorithm's penalty on its stashed weights (MAS).
* `flush` — a group that cannot fill (the stream ended) is applied with what it holds.
* `finish` — stage 0's process, once the datum's backward reached its lowest stage: the
  algorithm's `after_update` (ER inserts the datum into its buffer).

An algorithm's own work joins the ops at three points, its `StageHooks` (stage_hooks.py): the
micro-batch at `admit` (ER's replay; LwF's and MAS's consolidation, a generation the datum
carries up; MIR's scored replay), before a `forward` of a datum with a generation (LwF's
teacher, MAS's anchor, per stage) and at `finish` (`after_update`; MAS's importance pass).

Budgeted OCL (aL-SAR, docs/ocl.md "In pipelines"): at the last stage's backward the algorithm
decides, from the datum's logits, how many leading layers of the model it freezes
(`batch.frozen_layers`; the learner's decision, made per datum). Each stage's backward then
freezes its share: a stage wholly inside the prefix only releases what the datum holds there
(`frozen_backwards` counts those), the stage the prefix ends in back-propagates into its
unfrozen layers and passes no gradient down. Data that froze nothing feed each stage's layer
gradients to the Fisher traces (`stage_gradients`). A sampler that learns from per-sample
gradients (similarity-aware) captures each stage's forward and backward of the datum and
collects its columns stage by stage; `finish` hands them to it.

`span` is the `perf_counter` interval of the last op's StageRuntime call (the measured
trace's times) less the compensation efficacy measured inside it (every `efficacy_every`-th
stale backward of a stage, SPEC §5: not part of the run's work); `flops` counts the work done
here (SPEC §10.1).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import torch

from executor.compensation import EFFICACY_EVERY, CompensationConfig, EfficacyLog
from executor.ledger import tensor_bytes
from executor.models.base import LayeredModel
from executor.ocl.algorithms.base import OCLAlgorithm
from executor.ocl.batch import TrainBatch
from executor.ocl.cost import ZERO_COST, CostModel
from executor.pipeline.accounting import PipelineLedger, SavedTensorSizes
from executor.pipeline.flight import Flight, stage_loss
from executor.pipeline.importance import StageImportance
from executor.pipeline.scoring import StageScoring
from executor.pipeline.stage_hooks import stage_hooks
from executor.pipeline.stages import parameter_names
from executor.stage import BackwardResult, ForwardResult, OptimizerConfig, StageRuntime, UpdateResult
from planner.errors import FerretError
from planner.omission import backward_every, bottom_stage
from planner.plan import Plan

_T = TypeVar("_T")
_NOTHING = contextlib.nullcontext()  # reusable: an op with no sampler to capture makes no context manager


class StageWorker:
    """The stages one process owns and the op bodies both pipeline executors run on them.

    Holds a `StageRuntime` per owned stage, the OCL algorithm and the process's ledger; which op runs
    when, and where its tensor goes, is the caller's. See the module docstring.
    """

    def __init__(
        self,
        model: LayeredModel,
        plan: Plan,
        stages: Iterable[int],
        optimizer: OptimizerConfig,
        compensation: Sequence[CompensationConfig],
        algorithm: OCLAlgorithm,
        ledger: PipelineLedger,
        stage_flops: Sequence[float],
        cost_model: CostModel | None = None,
        guard_nonfinite: bool = False,
        saved: SavedTensorSizes | None = None,
        efficacy_every: int = EFFICACY_EVERY,
    ) -> None:
        self.model = model
        self.model_device = next((p.device for p in model.parameters()), torch.device("cpu"))
        self.plan = plan
        self.P = plan.num_stages
        self.algorithm = algorithm
        self.ledger = ledger
        self.stage_flops = list(stage_flops)
        self.cost_model = cost_model
        names = parameter_names(model, plan)  # before the runtimes take the parameters over
        sampler = algorithm.sampler
        self._learns = sampler is not None and sampler.learns
        if self._learns:
            # The efficacy's extra forward and backward would run inside the sampler's capture
            # of the datum's backward and feed it gradients the run never took: not measured.
            efficacy_every = 0
        self.stages: dict[int, StageRuntime] = {}
        self.names: dict[int, tuple[str, ...]] = {}
        for j in sorted(set(stages)):
            self.stages[j] = StageRuntime(model, plan, j, optimizer, compensation[j], ledger, efficacy_every)
            self.stages[j].guard_nonfinite = guard_nonfinite
            self.names[j] = names[j]
        self.weight_bytes = {j: runtime.layout.nbytes for j, runtime in self.stages.items()}
        # Per-op constants, read once here rather than on every op (the hot path).
        # Per owned stage and worker: whether its backward rebuilds its activations first (T1).
        self.recomputes = {
            j: tuple(runtime.rule(w).recompute for w in range(plan.num_workers)) for j, runtime in self.stages.items()
        }
        self._freezes = algorithm.freezes
        self.hooks = stage_hooks(self)  # the algorithm's own work in the ops (stage_hooks.py)
        self.scoring: StageScoring | None = self.hooks.scoring  # MIR's passes (the distributed host drives them)
        self.importance: StageImportance | None = self.hooks.importance  # MAS's
        self._every = [backward_every(w.omission) for w in plan.workers]
        self._admitted = [0] * plan.num_workers
        self._saved = saved if saved is not None else SavedTensorSizes()
        self.partition = plan.partition
        self.frozen_backwards = {j: 0 for j in self.stages}  # backwards a frozen prefix skipped, per stage
        self.flops = 0.0
        self.span = (0.0, 0.0)
        self.cpu_s = 0.0  # this thread's CPU time inside StageRuntime calls (overhead benchmarks)

    # ------------------------------------------------------------------ entering the pipeline
    def next_bottom(self, worker: int) -> int:
        """Admit `worker`'s next datum: the lowest stage its backward will reach (SPEC §3.2)."""
        k = self._admitted[worker]
        self._admitted[worker] = k + 1
        return bottom_stage(self._every[worker], k)

    def admit(
        self, worker: int, bottom: int, x: torch.Tensor, y: torch.Tensor, task: int, batch: TrainBatch | None = None
    ) -> Flight:
        """Stage 0, right before the datum's first forward: the algorithm builds its micro-batch
        (then, not at admission, so ER draws from the buffer as it is when the datum enters) —
        unless the caller built it (`batch`: MIR scored across processes, `StageScoring.batch`).
        LwF decides its consolidation here; the teacher runs stage by stage (`forward`)."""
        generation = 0
        if batch is None:
            batch, generation = self.hooks.micro_batch(TrainBatch.fresh(x, y, task=task))
        if (
            self.cost_model is not None and batch.cost is not ZERO_COST and batch.cost != ZERO_COST
        ):  # MIR's passes, a sampler's arithmetic
            self.flops += self.cost_model.flops(batch.cost)
        label_bytes = tensor_bytes(batch.y, batch.teacher_logits)
        input_bytes = tensor_bytes(batch.x)
        self.ledger.alloc("inputs", input_bytes + label_bytes)
        flight = Flight(batch, worker, bottom, self.P, label_bytes, input_bytes)
        flight.generation = generation
        return flight

    def enter(
        self, worker: int, bottom: int, batch: TrainBatch, teacher: torch.Tensor | None = None, generation: int = 0
    ) -> Flight:
        """A datum whose stages below live in another process: `batch.x` is the activation it
        brought; the labels (and weights) ride with it to the last stage's loss, and LwF's
        teacher activation of `generation` (and the classes it distils) beside the student's."""
        label_bytes = tensor_bytes(batch.y, batch.weight, teacher, batch.teacher_classes)
        self.ledger.alloc("inputs", label_bytes)
        flight = Flight(batch, worker, bottom, self.P, label_bytes)
        flight.teacher, flight.generation = teacher, generation
        return flight

    def leave(self, flight: Flight) -> None:
        """The datum goes on to another process (its labels with it): forget its inputs here."""
        if flight.label_bytes:
            self.ledger.free("inputs", flight.label_bytes)
            flight.label_bytes = 0

    # ------------------------------------------------------------------ ops
    def forward(self, flight: Flight, stage: int, sample: int) -> ForwardResult:
        runtime = self.stages[stage]
        worker = flight.worker
        x = flight.carry
        if x is None:
            raise FerretError(f"stage {stage} forward before the datum's stage {stage - 1} forward")
        rows = x.shape[0]  # the micro-batch's rows (the datum's input, or its activation)
        stored = stage >= flight.bottom
        known = self._saved.known(stage, rows) if stored and not self.recomputes[stage][worker] else 0
        c0, t0 = time.thread_time(), time.perf_counter()
        if flight.generation:  # before the student's forward: a new teacher / anchor takes the weights as they are
            self.hooks.before_forward(flight, stage, x)
        if self._learns:
            with self._capture(sample, stored):
                result, delta = self._forward_call(runtime, worker, sample, x, rows, known)
        else:  # no context manager: two Python calls less an op
            result, delta = self._forward_call(runtime, worker, sample, x, rows, known)
        self._spent(c0, t0)
        if result.stored != stored:
            raise FerretError(f"stage {stage} {'stored' if result.stored else 'skipped'} it, against the plan's rule")
        if delta:
            flight.deltas[stage] = delta
            self.ledger.shift_saved(delta)
        flight.carry = result.output if stage < self.P - 1 else None
        if stage == self.P - 1 and self._freezes:
            flight.logits = result.output  # the freezing decision reads them at the backward
        if stage == 0:
            self.ledger.free("inputs", flight.input_bytes)  # the stage keeps what its backward needs
        self.flops += rows * self.stage_flops[stage]
        return result

    def _forward_call(
        self, runtime: StageRuntime, worker: int, sample: int, x: torch.Tensor, rows: int, known: int | None
    ) -> tuple[ForwardResult, int]:
        """The StageRuntime's forward and its saved-tensor delta (`known`: None the first time
        a stored forward has this shape, then measured)."""
        if known is None:
            return self._saved.measure(runtime, worker, sample, x, rows)
        return runtime.forward(worker, sample, x), known

    def recompute(self, flight: Flight, stage: int, sample: int) -> int:
        c0, t0 = time.thread_time(), time.perf_counter()
        with self._capture(sample) if self._learns else _NOTHING:
            version = self.stages[stage].recompute(flight.worker, sample)
        self._spent(c0, t0)
        self.flops += flight.batch.rows * self.stage_flops[stage]
        return version

    def backward(self, flight: Flight, stage: int, sample: int) -> BackwardResult:
        runtime = self.stages[stage]
        batch = flight.batch
        last = stage == self.P - 1
        freezes = self._freezes
        if last and freezes:
            self._decide_freezing(flight)
        frozen = (
            min(max(batch.frozen_layers - self.partition[stage], 0), len(runtime.layers)) if batch.frozen_layers else 0
        )
        if frozen and runtime.wholly_frozen(frozen):
            return self._frozen_backward(flight, stage, sample, frozen)
        grad = flight.carry
        if not last and grad is None:
            raise FerretError(f"stage {stage} backward before the stage above passed a gradient")
        penalty = self.algorithm.has_penalty()
        transient = 0 if runtime.holds_gradients else self.weight_bytes[stage]
        if transient:
            self.ledger.alloc("gradients", transient)  # autograd's gradient, during the op
        keep = freezes and not batch.frozen_layers  # only a datum that froze nothing feeds Fisher
        efficacy = runtime.efficacy
        measured_s, measured_cpu_s = efficacy.seconds, efficacy.cpu_seconds
        c0, t0 = time.thread_time(), time.perf_counter()
        if self._learns:
            with self._capture(sample):
                result = self._backward_call(runtime, flight, stage, sample, grad, penalty, frozen, keep)
        else:  # no context manager: two Python calls less an op
            result = self._backward_call(runtime, flight, stage, sample, grad, penalty, frozen, keep)
        self._spent(c0, t0, efficacy.seconds - measured_s, efficacy.cpu_seconds - measured_cpu_s)
        if transient:
            self.ledger.free("gradients", transient)
        if not result.ran:
            raise FerretError(f"stage {stage} skipped this backward (omission), but the schedule runs it")
        if flight.deltas[stage]:
            self.ledger.shift_saved(-flight.deltas[stage])
        flight.carry = result.grad_input
        flight.trained = stage
        if last:
            self.leave(flight)
        rows = batch.rows
        self.flops += 2.0 * rows * self.stage_flops[stage] - (
            self._frozen_flops(rows, stage, frozen) if frozen else 0.0
        )
        if result.gradients is not None:
            before = batch.cost.flops  # the hooks add their arithmetic to the batch's cost
            self.algorithm.stage_gradients(self.model, batch, self.partition[stage], result.gradients)
            self.flops += batch.cost.flops - before
        if self._learns:
            self._collect_columns(flight, sample, frozen)
        return result

    def _backward_call(
        self,
        runtime: StageRuntime,
        flight: Flight,
        stage: int,
        sample: int,
        grad: torch.Tensor | None,
        penalty: bool,
        frozen: int,
        keep: bool,
    ) -> BackwardResult:
        """The StageRuntime's backward: from the algorithm's loss at the last stage (or with its
        penalty, MAS), else from the gradient the stage above passed."""
        worker = flight.worker
        last = stage == self.P - 1
        if last or penalty:
            penalized = (
                list(zip(self.names[stage], runtime.stashed_parameters(worker, sample), strict=True))
                if penalty
                else None
            )
            loss_fn = stage_loss(self.algorithm, flight.batch, None if last else grad, penalized)
            return runtime.backward(worker, sample, loss_fn=loss_fn, frozen_layers=frozen, keep_gradients=keep)
        return runtime.backward(worker, sample, grad, frozen_layers=frozen, keep_gradients=keep)

    def _decide_freezing(self, flight: Flight) -> None:
        """The last stage, before the datum's backward: how many leading layers it freezes."""
        batch = flight.batch
        if flight.logits is None:
            raise FerretError("the last stage's backward before its forward")
        before = batch.cost.flops
        batch.frozen_layers = self.algorithm.frozen_layers(self.model, flight.logits, batch)
        self.flops += batch.cost.flops - before
        flight.logits = None

    def _frozen_backward(self, flight: Flight, stage: int, sample: int, frozen: int) -> BackwardResult:
        """The datum's frozen prefix leaves the stage nothing to train: release what it holds here."""
        runtime = self.stages[stage]
        c0, t0 = time.thread_time(), time.perf_counter()
        result = runtime.backward(flight.worker, sample, frozen_layers=frozen)
        self._spent(c0, t0)
        if flight.deltas[stage]:
            self.ledger.shift_saved(-flight.deltas[stage])
        flight.carry = None
        if stage == self.P - 1:
            self.leave(flight)
        self.frozen_backwards[stage] += 1
        if self._learns:
            self._collect_columns(flight, sample, frozen)
        return result

    def _frozen_flops(self, rows: int, stage: int, frozen: int) -> float:
        """Backward FLOPs the stage's first `frozen` layers did not run (SPEC §10.1)."""
        if not frozen or self.cost_model is None:
            return 0.0
        start = self.partition[stage]
        model = self.cost_model
        return model.frozen_backward_flops(rows, start + frozen) - model.frozen_backward_flops(rows, start)

    def _capture(self, sample: int, stored: bool = True) -> contextlib.AbstractContextManager[None]:
        """The sampler records what it reads off the datum's backward here (a sampler that
        learns: similarity-aware; the ops ask only then)."""
        sampler = self.algorithm.sampler
        if sampler is None or not stored:
            return _NOTHING
        return sampler.capture(self.model, sample)

    def _collect_columns(self, flight: Flight, sample: int, frozen: int) -> None:
        """A learning sampler's columns of this stage join the datum's (the ops ask only then)."""
        sampler = self.algorithm.sampler
        assert sampler is not None
        flight.add_columns(sampler.stage_columns(sample))
        if frozen:  # the layers below take no backward: what they captured is never read
            sampler.forget(sample)

    def flush(self, stage: int, worker: int) -> UpdateResult | None:
        """Apply `worker`'s open group at `stage` with what it holds (None: nothing open)."""
        c0, t0 = time.thread_time(), time.perf_counter()
        update = self.stages[stage].flush(worker)
        self._spent(c0, t0)
        return update

    def _spent(self, c0: float, t0: float, excluded_s: float = 0.0, excluded_cpu_s: float = 0.0) -> None:
        """The op ran from `t0` (CPU time `c0`) to now, less an efficacy measurement inside it."""
        self.span = (t0, time.perf_counter() - excluded_s)
        self.cpu_s += time.thread_time() - c0 - excluded_cpu_s

    def efficacy(self) -> dict[int, EfficacyLog]:
        """Per owned stage, its compensation efficacy samples."""
        return {j: runtime.efficacy for j, runtime in self.stages.items()}

    def finish(self, flight: Flight) -> torch.Tensor | None:
        """Stage 0's process: the datum's whole backward is done. A sampler that learns from
        per-sample gradients learns from the columns every stage yielded, then the algorithm's
        hooks (`after_update`, the learner's order; MAS's importance pass, whose input rows are
        returned when the caller takes it through other processes' stages)."""
        sampler = self.algorithm.sampler
        if sampler is not None and flight.columns is not None:
            grads, first = flight.columns
            self.flops += sampler.learn(grads, first, flight.batch.y.cpu().numpy())
            flight.columns = None
        return self.hooks.finish(flight)

    def timed(self, op: Callable[..., _T], *args: Any) -> _T:
        """`op(*args)`, a pass of an algorithm's (MAS's importance, MIR's scoring) timed like an op (`span`)."""
        c0, t0 = time.thread_time(), time.perf_counter()
        result = op(*args)
        self._spent(c0, t0)
        return result

    @property
    def importance_passes(self) -> bool:
        """Whether MAS's importance passes go through stages of other processes (the caller's)."""
        return self.importance is not None and len(self.stages) < self.P

    # ------------------------------------------------------------------ MIR's scoring
    @property
    def scores_across(self) -> bool:
        """Whether MIR's scoring passes go through stages of other processes (the caller's)."""
        return self.scoring is not None and len(self.stages) < self.P
