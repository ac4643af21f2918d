"""`StageRuntime`: the math of one pipeline stage, driven op by op, with no transport or clock.

One runtime per stage holds layers `partition[j] .. partition[j+1]-1` of a `LayeredModel` and
the ONE set of parameters every worker updates (SPEC §3.1). The executor calls, per datum,
`forward` on stages 0..P-1 and `backward` on stages P-1..0, in whatever order its schedule
(a sim trace, a real-time scheduler) dictates. docs/executor.md is the contract; in short:

* forward runs on the current version, stashes it (PipeDream weight stashing) and keeps what
  the backward needs — the autograd graph, or only the input under recomputation (T1). A
  worker with latest-weights backward (SPEC §3.2) keeps only the input and stashes nothing;
* backward applies the omission rule (T3), recomputes if T1 — on the stash, or on the latest
  weights — differentiates against that version, compensates a stale gradient (SPEC §5),
  releases the version, and adds the gradient to the worker's accumulation group (T2, averaged);
* a completed group steps the optimizer and creates the next version;
* on every `efficacy_every`-th stale backward the stage also measures how much of the stale
  error the compensator removed (compensation efficacy, SPEC §5) — not counted anywhere else.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import torch

from executor.compensation import CompensationConfig, EfficacyLog, build_compensator, efficacy_sample
from executor.ledger import ByteLedger
from executor.models.base import LayeredModel
from executor.stage.gradients import SecondOrder, all_finite, datum_gradients, per_layer
from executor.stage.layout import ParamLayout
from executor.stage.optim import PLAIN_SGD, OptimizerConfig, StageOptimizer
from executor.stage.probes import gradient_at, hessian_vector
from executor.stage.results import BackwardResult, ForwardResult, UpdateResult
from executor.stage.rules import WorkerRule, stage_rules
from executor.stage.statistics import renew_statistics, running_statistics, statistics_kept
from executor.stage.tally import Tally
from executor.stage.versions import Version, VersionStore
from planner.plan import Plan

ACTIVATIONS = "activations"
ACCUMULATION = "accumulation"
COMPENSATOR = "compensator"
GRADIENTS = "gradients"
BUFFERS = "buffers"


class OpOrderError(RuntimeError):
    """An op asked of a stage out of the order its protocol allows (a second forward of a datum in
    flight, a recomputation or backward with no stored forward): a driver bug — or, for a driver
    that follows a trace file, a trace that is not a schedule of this plan."""


class _Pending:
    __slots__ = ("k", "nbytes", "output", "saved_input", "version")

    def __init__(
        self, version: Version | None, k: int, saved_input: torch.Tensor, output: torch.Tensor | None, nbytes: int
    ) -> None:
        self.version = version  # None: latest weights, chosen when the backward recomputes
        self.k = k
        self.saved_input = saved_input
        self.output = output  # None under recomputation
        self.nbytes = nbytes


class _Group:
    __slots__ = ("firsts", "oldest", "samples", "total")

    def __init__(self, total: torch.Tensor, oldest: int, sample: int, first: int = 0) -> None:
        self.total = total
        self.oldest = oldest
        self.samples = [sample]
        self.firsts = [first]  # per datum, its first parameter with a gradient (a frozen prefix: > 0)


class StageRuntime:
    """The math of one pipeline stage: forward, backward and updates of its layers, with no transport.

    Holds the one set of parameters every worker updates and its stashed versions; callers drive it op
    by op in their schedule's order. docs/executor.md is the contract.
    """

    def __init__(
        self,
        model: LayeredModel,
        plan: Plan,
        stage: int,
        optimizer: OptimizerConfig | None = None,
        compensation: CompensationConfig | None = None,
        ledger: ByteLedger | None = None,
        efficacy_every: int = 0,
    ) -> None:
        plan.validate(model.num_layers)
        self.stage = stage
        self.num_stages = plan.num_stages
        self._rules: tuple[WorkerRule, ...] = stage_rules(plan, stage)
        self.layers = tuple(model.layers[i] for i in plan.stage_layers(stage))
        self.layout = ParamLayout(self.layers)
        self.ledger = ledger if ledger is not None else ByteLedger()
        self._tally = Tally(self.ledger)
        comp = compensation if compensation is not None else CompensationConfig()
        self.compensator = build_compensator(comp, self.layout.numel, self.layout.dtype, self.layout.device)
        self._compensates = comp.name != "none"
        # A flat gradient buffer, made on first need (compensation or accumulation): every
        # version's parameters then have views of it as `.grad`, so a backward writes the whole
        # stage gradient into one tensor, ready for the flat compensator arithmetic.
        self._grad: torch.Tensor | None = None
        self._grad_chunks: list[torch.Tensor] = []
        self.holds_gradients = False  # whether that buffer exists (a backward then allocates no gradient)
        self.versions = VersionStore(
            self.layout, self.layout.pack_initial(), self._tally, keep_chain=self.compensator.needs_chain
        )
        self.optimizer = StageOptimizer(optimizer if optimizer is not None else PLAIN_SGD, self.layout, self._tally)
        self._tally.resize(COMPENSATOR, self.compensator.state_bytes)
        self.compensator.bind(self)
        # hvp compensation, during one backward: the datum's gradients with their graph, the
        # parameters they are of, and the first of those (a frozen prefix takes no curvature).
        self._second_order: SecondOrder | None = None
        self.efficacy = EfficacyLog(efficacy_every)
        # Module buffers (BatchNorm running statistics) are not versioned: one copy, always current.
        self._tally.alloc(BUFFERS, sum(b.numel() * b.element_size() for layer in self.layers for b in layer.buffers()))
        self._statistics = running_statistics(self.layers)
        workers = len(self._rules)
        self._forwards = [0] * workers  # k of the worker's next datum at this stage
        self._pending: dict[tuple[int, int], _Pending] = {}
        self._omitted: list[deque[tuple[int, int, int]]] = [deque() for _ in range(workers)]  # (k, sample, version)
        self._groups: list[_Group | None] = [None] * workers
        # Skip (and count) an update whose gradient has a NaN or inf: set by executors that must
        # survive a bad datum (the distributed one); off by default, where it would only cost.
        self.guard_nonfinite = False
        self.skipped_updates = 0

    # ------------------------------------------------------------------ views
    @property
    def current_version(self) -> int:
        return self.versions.current.id

    @property
    def in_flight(self) -> int:
        """Data whose forward stored something here and whose backward has not come yet."""
        return len(self._pending)

    @property
    def open_groups(self) -> int:
        """Workers whose accumulation group has gradients waiting for its optimizer step."""
        return sum(group is not None for group in self._groups)

    def rule(self, worker: int) -> WorkerRule:
        return self._rules[worker]

    def wholly_frozen(self, frozen_layers: int) -> bool:
        """Whether a datum that freezes this many of the stage's leading layers leaves it nothing
        to train: every layer, or every layer that has parameters (the backward stops here)."""
        return frozen_layers >= len(self.layers) or (
            frozen_layers > 0 and self.layout.offsets[frozen_layers] == len(self.layout.numels)
        )

    def held_bytes(self, category: str | None = None) -> int:
        """What this stage holds now: one category, or everything."""
        if category is None:
            return sum(self._tally.snapshot().values())
        return self._tally.held(category)

    def held_by_category(self) -> dict[str, int]:
        return self._tally.snapshot()

    # ------------------------------------------------------------------ forward
    def forward(self, worker: int, sample: int, x: torch.Tensor) -> ForwardResult:
        """Run the stage on `x` with the current weights for `worker`'s datum `sample`."""
        rule = self._rule_of(worker)
        k = self._forwards[worker]
        self._forwards[worker] = k + 1
        key = (worker, sample)
        if key in self._pending:
            raise OpOrderError(f"stage {self.stage}: sample {sample} of worker {worker} is already in flight")
        version = self.versions.current
        if self._statistics:
            renew_statistics(self._statistics)
        if not rule.runs_backward(k):
            with torch.no_grad():
                out = self._run(x)
            if rule.is_asked(k):
                self._omitted[worker].append((k, sample, version.id))
            return ForwardResult(out, version.id, False, 0)
        if rule.recompute:  # keep the input only; latest weights: and no stash
            with torch.no_grad():
                out = self._run(x)
            saved = x.detach()
            stash = None if rule.latest else self.versions.acquire()
            pending = _Pending(stash, k, saved, None, saved.numel() * saved.element_size())
        else:
            self.versions.acquire()
            inp = x.detach()
            if self.stage > 0:
                inp.requires_grad_()
            out, nbytes = self._run_counting(inp)
            pending = _Pending(version, k, inp, out, nbytes)
            out = out.detach()
        self._tally.alloc(ACTIVATIONS, pending.nbytes)
        self._pending[key] = pending
        return ForwardResult(out, version.id, True, pending.nbytes)

    # ------------------------------------------------------------------ recompute
    def recompute(self, worker: int, sample: int) -> int:
        """Rebuild a recomputing datum's activations (T1) ahead of its backward, as the trace's
        separate `recompute` op, on its stash — or, with latest-weights backward, on the current
        version, which the datum then holds until its backward; returns that version. Optional:
        `backward` recomputes by itself when this was not called."""
        self._rule_of(worker)
        pending = self._pending.get((worker, sample))
        if pending is None or pending.output is not None:
            raise OpOrderError(
                f"stage {self.stage}: sample {sample} of worker {worker} has no stored input awaiting recomputation"
            )
        return self._rebuild(pending).id

    # ------------------------------------------------------------------ backward
    def backward(
        self,
        worker: int,
        sample: int,
        grad_output: torch.Tensor | None = None,
        *,
        loss_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
        frozen_layers: int = 0,
        keep_gradients: bool = False,
    ) -> BackwardResult:
        """Back-propagate `worker`'s datum `sample` through this stage.

        Give `grad_output` (d loss / d stage output, from the stage above) or, at the last
        stage, `loss_fn` (stage output → scalar loss), which saves a separate autograd pass.

        `frozen_layers = m` (aL-SAR freezing, a per-datum omission of a frozen prefix): the
        stage's first `m` layers take no gradient from this datum. Every layer (or every one
        with parameters) frozen: nothing is computed or counted towards accumulation and the
        backward stops here, exactly like an omitted datum (`ran` False). Some: autograd runs
        into the parameters of layers `m..` only — no backward op of the frozen layers, no
        input gradient (the stages below are frozen too) — and only those parameters are
        updated: the frozen ones keep their weights and optimizer state as `torch.optim` keeps
        a parameter without a gradient.

        `keep_gradients`: `BackwardResult.gradients` holds this datum's gradient per layer of
        the stage, before compensation and accumulation (aL-SAR's Fisher traces).
        """
        self._rule_of(worker)
        pending = self._pending.pop((worker, sample), None)
        if pending is None:
            return self._omitted_backward(worker, sample)
        omitted = self._omitted[worker]
        while omitted and omitted[0][0] < pending.k:  # the executor chose not to ask for those
            omitted.popleft()
        if self.wholly_frozen(frozen_layers):
            self._tally.free(ACTIVATIONS, pending.nbytes)
            held = pending.version
            stash_id = self.versions.current.id if held is None else held.id
            if held is not None:
                self.versions.release(held)
            self.versions.trim()
            return BackwardResult(None, False, stash_id, self.versions.current.id - stash_id, None)
        if (grad_output is None) == (loss_fn is None):
            self._pending[(worker, sample)] = pending  # nothing happened: the datum stays in flight
            raise ValueError(f"stage {self.stage}: backward of sample {sample} needs grad_output or loss_fn, not both")
        version = pending.version if pending.output is not None else self._rebuild(pending)
        assert version is not None
        stash_id = version.id  # read now: an in-place update may renumber a released version
        staleness = self.versions.current.id - stash_id
        first = self.layout.offsets[frozen_layers]
        rule = self._rules[worker]
        compensate = staleness > 0 and self._compensates
        # Efficacy compares whole-stage gradients: a datum that froze part of the stage is not sampled.
        measure = staleness > 0 and first == 0 and self.efficacy.due()
        flat = self._grad_buffer() if compensate or rule.accumulation > 1 else None
        second_order = compensate and self.compensator.needs_hvp
        assert pending.output is not None
        grad_input, loss, grads, self._second_order = datum_gradients(
            self.layout, pending.saved_input, pending.output, version.params, grad_output, loss_fn, flat, first,
            self.stage > 0 and frozen_layers == 0, second_order,
        )  # fmt: skip
        stale = (flat.clone() if flat is not None else torch.cat([g.reshape(-1) for g in grads])) if measure else None
        self._tally.free(ACTIVATIONS, pending.nbytes)
        kept = per_layer(self.layout, grads, flat, first, clone=compensate) if keep_gradients else None
        if compensate:
            assert flat is not None
            flat = self._compensate(flat, version, staleness)
        self._second_order = None
        if stale is not None:
            self._measure_efficacy(pending.saved_input, grad_output, loss_fn, stale, flat, staleness, sample)
        self.versions.release(version)
        update = self._accumulate(worker, sample, grads, flat, stash_id, first)
        self.versions.trim()
        return BackwardResult(grad_input, True, stash_id, staleness, update, loss, kept)

    # ------------------------------------------------------------------ flush
    def flush(self, worker: int) -> UpdateResult | None:
        """Apply `worker`'s open accumulation group now, averaged over the gradients it holds.

        For a group that cannot fill: the stream ended mid-group, or a synchronous pipeline's
        last mini-batch was short (the sim's trace then has an `update` row for fewer data than
        `c^a`). Returns None when the worker has no open group.
        """
        self._rule_of(worker)
        group = self._groups[worker]
        if group is None:
            return None
        self._groups[worker] = None
        update = self._apply_group(group)
        self.versions.trim()
        return update

    def stashed_parameters(self, worker: int, sample: int) -> tuple[torch.nn.Parameter, ...]:
        """The parameters of the version `sample`'s forward stashed here — what its backward
        differentiates against — in the stage's parameter order (the model's own order). For a
        loss term on the stage's weights (MAS's penalty) that a `loss_fn` adds: take them before
        calling `backward`."""
        pending = self._pending.get((worker, sample))
        if pending is None:
            raise RuntimeError(f"stage {self.stage}: sample {sample} of worker {worker} stored nothing here")
        return (pending.version or self.versions.current).params

    # ------------------------------------------------------------------ StageProbe (compensators)
    def hvp(self, vector: torch.Tensor) -> torch.Tensor:
        """`H · vector` for the datum being compensated, by double-backward through its graph."""
        if self._second_order is None:
            raise RuntimeError(f"stage {self.stage}: hvp is available only while an hvp compensator runs")
        grads, params, first = self._second_order
        views = self.layout.views(vector)
        product = hessian_vector(grads, params, views[first:], vector)
        if not first:
            return product
        frozen = sum(v.numel() for v in views[:first])
        return torch.cat([vector.new_zeros(frozen), product])

    def second_moment(self) -> torch.Tensor | None:
        return self.optimizer.second_moment()

    @property
    def has_second_moment(self) -> bool:
        return self.optimizer.has_second_moment

    # ------------------------------------------------------------------ internals
    def _rule_of(self, worker: int) -> WorkerRule:
        if not 0 <= worker < len(self._rules):
            raise ValueError(f"stage {self.stage}: worker {worker} is not in the plan ({len(self._rules)} workers)")
        rule = self._rules[worker]
        if not rule.active:
            raise ValueError(f"stage {self.stage}: worker {worker} is removed (offset -1) and trains on nothing")
        return rule

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def _run_counting(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Run the stage, summing the bytes of every layer's output (the profile's `act_bytes`)."""
        nbytes = 0
        for layer in self.layers:
            x = layer(x)
            nbytes += x.numel() * x.element_size()
        return x, nbytes

    def _grad_buffer(self) -> torch.Tensor:
        if self._grad is None:
            self._grad = self.layout.zeros()
            self._grad_chunks = self.layout.chunks(self._grad)
            self._tally.alloc(GRADIENTS, self.layout.nbytes)
            self.holds_gradients = True
            self.versions.attach_gradients(self._grad)
        return self._grad

    def _rebuild(self, pending: _Pending) -> Version:
        """Recompute the stage from the kept input — on the stash, or (latest weights) on the
        current version, which the datum then holds — store the graph, return the version."""
        inp = pending.saved_input
        if self.stage > 0:
            inp.requires_grad_()
        if pending.version is None:  # held so that an update before the backward copies on write
            pending.version = self.versions.acquire()
        version = pending.version
        current = self.versions.current
        if version is not current:
            self.versions.use(version)
        try:
            with statistics_kept(self._statistics), torch.enable_grad():
                out, nbytes = self._run_counting(inp)
        finally:
            if version is not current:
                self.versions.use(current)
        pending.output = out
        pending.nbytes += nbytes
        self._tally.alloc(ACTIVATIONS, nbytes)
        return version

    def _measure_efficacy(
        self,
        inp: torch.Tensor,
        grad_output: torch.Tensor | None,
        loss_fn: Callable[[torch.Tensor], torch.Tensor] | None,
        stale: torch.Tensor,
        compensated: torch.Tensor | None,
        staleness: int,
        sample: int,
    ) -> None:
        """The datum's gradient at the current weights (same input, same gradient from above),
        against the stale and the compensated one. Leaves the run untouched: no ledger, the
        random state and the running statistics are restored."""
        started, cpu = time.perf_counter(), time.thread_time()
        params = self.versions.current.params
        latest = gradient_at(self._run, params, inp, grad_output, loss_fn, self._statistics)
        applied = stale if compensated is None else compensated
        self.efficacy.record(efficacy_sample(stale, applied, latest, staleness, sample))
        self.efficacy.seconds += time.perf_counter() - started
        self.efficacy.cpu_seconds += time.thread_time() - cpu

    def _compensate(self, grad: torch.Tensor, version: Version, staleness: int) -> torch.Tensor:
        if self.compensator.needs_chain:
            flats = [v.flat for v in self.versions.chain(version)]
        else:
            flats = [version.flat, self.versions.current.flat]
        grad = self.compensator.compensate(grad, flats, staleness)
        self._tally.resize(COMPENSATOR, self.compensator.state_bytes)
        return grad

    def _omitted_backward(self, worker: int, sample: int) -> BackwardResult:
        omitted = self._omitted[worker]
        for i, (_, omitted_sample, version_id) in enumerate(omitted):
            if omitted_sample == sample:
                for _ in range(i + 1):  # older tombstones were never asked for: drop them too
                    omitted.popleft()
                return BackwardResult(None, False, version_id, self.versions.current.id - version_id, None)
        raise OpOrderError(
            f"stage {self.stage}: no forward of sample {sample} by worker {worker} is awaiting a backward"
        )

    def _accumulate(
        self,
        worker: int,
        sample: int,
        grads: tuple[torch.Tensor, ...],
        flat: torch.Tensor | None,
        version_id: int,
        first: int = 0,
    ) -> UpdateResult | None:
        every = self._rules[worker].accumulation
        if every == 1:
            return self._update(grads, flat, version_id, (sample,), first)
        assert flat is not None, "accumulation works on the flat gradient"
        group = self._groups[worker]
        if group is None:
            group = _Group(flat.clone() if flat is self._grad else flat, version_id, sample, first)  # buffer reused
            self._tally.alloc(ACCUMULATION, flat.numel() * flat.element_size())
        else:
            group.total.add_(flat)
            group.samples.append(sample)
            group.firsts.append(first)
            group.oldest = min(group.oldest, version_id)
        if len(group.samples) < every:
            self._groups[worker] = group
            return None
        self._groups[worker] = None
        return self._apply_group(group)

    def _apply_group(self, group: _Group) -> UpdateResult:
        """Step with a closed group's gradient: each parameter's sum over the data that gave it
        one, divided by their count (all of them, unless some froze a prefix of the stage)."""
        total = group.total
        self._tally.free(ACCUMULATION, total.numel() * total.element_size())
        first = min(group.firsts)
        if max(group.firsts) == 0:
            total.div_(len(group.samples))
        else:
            counts = [sum(f <= i for f in group.firsts) for i in range(first, len(self.layout.numels))]
            torch._foreach_div_(self.layout.chunks(total)[first:], [float(c) for c in counts])
        return self._update((), total, group.oldest, tuple(group.samples), first)

    def _update(
        self,
        grads: tuple[torch.Tensor, ...],
        flat: torch.Tensor | None,
        oldest: int,
        samples: tuple[int, ...],
        first: int = 0,
    ) -> UpdateResult:
        """Step the optimizer on parameters `first..` with their `grads`, or with the flat gradient."""
        previous = self.versions.current
        applied_to = previous.id  # read now: an in-place step renumbers `previous` itself
        staleness = applied_to - oldest
        if self.guard_nonfinite and not all_finite(grads, flat):
            self.skipped_updates += 1  # a NaN/inf gradient never reaches the weights
            return UpdateResult(applied_to, staleness, samples, skipped=True)
        new, copied = self.versions.advance()
        observes = self.compensator.observes_steps
        before = (previous.flat if copied else new.flat.clone()) if observes else None
        if self.layout.numel:
            if flat is None:
                self.optimizer.step(new.params[first:], grads, chunked=False, first=first)
            else:
                chunks = self._grad_chunks if flat is self._grad else self.layout.chunks(flat)
                self.optimizer.step(new.chunks[first:], chunks[first:], chunked=True, first=first)
        if before is not None:
            self.compensator.observe_step(before, new.flat)
            self._tally.resize(COMPENSATOR, self.compensator.state_bytes)
        return UpdateResult(applied_to, staleness, samples)
