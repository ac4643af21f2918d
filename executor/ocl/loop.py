"""The sequential test-then-train loop in virtual time (SPEC §7, §9).

Virtual time: datum `i` arrives at `stream.arrival_s[i]`; one learner is busy for the profiled
duration of each step (`CostModel`); wall-clock time never enters, so a run is a deterministic
function of its seed. Rules:

- Every datum is predicted on arrival by the model as it is then: the updates of all steps
  that *ended* at or before its arrival are visible, no others.
- A free learner asks the `SchedulingPolicy` what to train on; arrivals at exactly the moment
  a step ends are admitted (after the update) before that question is asked.
- A step is prepared (the algorithm assembles its batch and the cost is known) when it starts
  and applied when it ends; nothing touches the model in between, so this equals running it
  at its start with a delayed visibility.
- The run ends at the last arrival `T`; a step still running then is discarded (its data
  never updated the model within the stream and count as not trained).

`run_zero_delay` is Oracle's loop: every datum is trained on the moment it arrives, as if
compute were free; its prediction is made before its own update.

Test accuracy is measured every `eval_every` arrivals and after the last one, on the model as
it is at that arrival.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from executor.ocl.batch import TrainBatch
from executor.ocl.budget import StoredLedger
from executor.ocl.cost import ZERO_COST, StepCost
from executor.ocl.evaluation import Evaluator
from executor.ocl.frameworks.base import PolicyContext, PolicyFactory, Selection
from executor.ocl.learner import Learner
from executor.ocl.modes import mode_invariant
from executor.ocl.result import RunResult
from executor.ocl.setup import RunSetup
from executor.seeding import numpy_rng, seed_everything


@dataclass
class _Step:
    selection: Selection
    batch: TrainBatch
    end: float
    charged: StepCost


class _Run:
    """State shared by both loops: data on the device, the learner, per-datum records."""

    def __init__(self, setup: RunSetup, framework: str) -> None:
        seed_everything(setup.seed)
        self.setup = setup
        self.framework = framework
        stream, dataset = setup.stream, setup.stream.dataset
        device = setup.torch_device
        self.model = setup.model.to(device)
        self.cost_model = setup.cost_model
        budget = setup.memory_budget
        self.ledger = StoredLedger(None if budget is None else budget.budget_bytes)
        self.learner = Learner(
            self.model,
            setup.optimizer,
            setup.algorithm,
            num_classes=dataset.num_classes,
            bytes_per_sample=dataset.stored_bytes_per_sample,
            rng=numpy_rng(setup.seed, "algorithm", setup.algorithm.name),
            ledger=self.ledger,
            layer_flops=self.cost_model.layer_forward_flops,
        )
        self.bytes_per_sample = dataset.stored_bytes_per_sample
        self.x = torch.from_numpy(dataset.x_train).to(device)
        self.y = torch.from_numpy(dataset.y_train).to(device)
        self.order = stream.order
        self.order_t = torch.from_numpy(stream.order).to(device)
        self.task = stream.task
        self.arrival = stream.arrival_s
        self.labels = stream.labels
        n = len(stream)
        self.n = n
        self.predicted = np.full(n, -1, dtype=np.int64)
        self.trained_at = np.full(n, np.inf)
        self.evaluator = Evaluator(stream, device)
        every = setup.eval_every
        points = set(range(every, n + 1, every)) if every > 0 else set()
        self.checkpoints = np.array(sorted(points | {n}), dtype=np.int64)
        self.group_correct = np.zeros((len(self.checkpoints), self.evaluator.num_groups), dtype=np.int64)
        self.seen = np.zeros_like(self.group_correct, dtype=bool)
        self.checkpoint_index = 0
        self.steps = 0
        self.flops = 0.0
        self.busy_s = 0.0
        self.cuda = device.type == "cuda"
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(device)
        quiet = not setup.progress or not sys.stderr.isatty() or bool(os.environ.get("CI"))
        self.progress = tqdm(total=n, unit="datum", disable=quiet)
        self.started = time.perf_counter()

    # --- data access (the StreamView a policy sees) ---
    def inputs(self, positions: np.ndarray) -> torch.Tensor:
        return self.x.index_select(0, self.order_t[torch.from_numpy(positions)])

    def targets(self, positions: np.ndarray) -> torch.Tensor:
        return self.y.index_select(0, self.order_t[torch.from_numpy(positions)])

    def features(self, positions: np.ndarray) -> torch.Tensor:
        return self.learner.features(self.inputs(positions))

    # --- records ---
    def record_arrivals(self, lo: int, hi: int) -> None:
        """Positions `lo..hi-1` arrived and are predicted, in one batch, by the model as it is now."""
        if hi <= lo:
            return
        self.predicted[lo:hi] = self.learner.predict(self.inputs(np.arange(lo, hi))).cpu().numpy()
        self.progress.update(hi - lo)

    def evaluate_due(self, arrived: int) -> None:
        """Evaluate at every checkpoint count ≤ `arrived` not yet evaluated (model as it is now)."""
        while self.checkpoint_index < len(self.checkpoints) and self.checkpoints[self.checkpoint_index] <= arrived:
            k = self.checkpoint_index
            count = int(self.checkpoints[k])
            self.group_correct[k] = self.evaluator.group_correct(self.learner)
            self.seen[k] = self.evaluator.seen_after(count)
            self.checkpoint_index += 1

    def charge(self, batch: TrainBatch, framework_cost: StepCost = ZERO_COST) -> float:
        """Count the step's work (the batch's, the algorithm's, the framework's); return its duration."""
        model = self.cost_model
        rows = batch.x.shape[0]
        seconds = model.step_s(rows)
        # The hot path of Oracle: most steps carry no extra work, so skip the arithmetic on zero.
        for extra in (batch.cost, framework_cost):
            if extra is not ZERO_COST:
                seconds += model.seconds(extra)
        self.flops += self.step_flops(batch, framework_cost)
        self.busy_s += seconds
        self.steps += 1
        return seconds

    def step_flops(self, batch: TrainBatch, framework_cost: StepCost = ZERO_COST) -> float:
        """FLOPs of a step as it stands: every row's forward and backward, less a frozen prefix's
        backward (once applied), plus the extra work."""
        model = self.cost_model
        rows = batch.x.shape[0]
        flops = rows * model.sample_step_flops
        if batch.frozen_layers:
            flops -= model.frozen_backward_flops(rows, batch.frozen_layers)
        for extra in (batch.cost, framework_cost):
            if extra is not ZERO_COST:
                flops += model.flops(extra)
        return flops

    def settle(self, batch: TrainBatch, charged: StepCost) -> None:
        """A step charged at its start (`charged` its cost then) was applied: count what it
        learned while running — a frozen prefix's saving, an algorithm's bookkeeping. Its
        duration stays the one charged (the freezing decision needs the step's own forward)."""
        model = self.cost_model
        if batch.cost is not charged:
            self.flops += model.flops(batch.cost) - model.flops(charged)
        if batch.frozen_layers:
            self.flops -= model.frozen_backward_flops(batch.x.shape[0], batch.frozen_layers)

    def result(self) -> RunResult:
        self.progress.close()
        return RunResult(
            framework=self.framework,
            algorithm=self.setup.algorithm.name,
            arrival_s=self.arrival,
            labels=self.labels,
            predicted=self.predicted,
            trained_at_s=self.trained_at,
            checkpoint_samples=self.checkpoints,
            checkpoint_time_s=self.arrival[self.checkpoints - 1],
            group_correct=self.group_correct,
            group_total=self.evaluator.group_total,
            seen=self.seen,
            steps=self.steps,
            train_flops=self.flops,
            busy_s=self.busy_s,
            peak_memory_bytes=self.ledger.peak,
            peak_memory_by_category=self.ledger.peaks(),
            cuda_peak_memory_bytes=int(torch.cuda.max_memory_allocated(self.setup.torch_device)) if self.cuda else None,
            wall_s=time.perf_counter() - self.started,
            stored_peak_bytes=self.ledger.stored_peak,
            details=self.learner.algorithm.details(),
        )


def run_zero_delay(setup: RunSetup, framework: str = "oracle") -> RunResult:
    """Oracle: train on every datum at its arrival, in order, with zero delay."""
    run = _Run(setup, framework)
    learner, x, y = run.learner, run.x, run.y
    # When train and eval mode agree, the training forward's logits are the arrival prediction
    # (unless the step trains on memory only: then they hold no prediction of the datum).
    predict_from_logits = mode_invariant(run.model) and not learner.algorithm.memory_first
    run.ledger.set("window", run.bytes_per_sample)
    predicted = np.empty(run.n, dtype=np.int64)
    next_checkpoint = int(run.checkpoints[0])
    for i, (o, task) in enumerate(zip(run.order.tolist(), run.task.tolist(), strict=True)):
        xi, yi = x[o : o + 1], y[o : o + 1]
        if predict_from_logits:
            batch = learner.prepare(xi, yi, task=task)
            predicted[i] = learner.apply(batch).argmax().item()
        else:
            predicted[i] = learner.predict(xi).item()
            batch = learner.prepare(xi, yi, task=task)
            learner.apply(batch)
        run.charge(batch)
        if i + 1 == next_checkpoint:
            run.evaluate_due(i + 1)
            next_checkpoint = int(run.checkpoints[min(run.checkpoint_index, len(run.checkpoints) - 1)])
            run.progress.update(i + 1 - run.progress.n)
    run.predicted[:] = predicted
    run.trained_at[:] = run.arrival  # zero delay: each update is visible at its datum's arrival
    return run.result()


def run_sequential(setup: RunSetup, policy_factory: PolicyFactory, framework: str) -> RunResult:
    """One learner, steps costed in virtual time, choices made by a policy (see module doc)."""
    run = _Run(setup, framework)
    policy = policy_factory(PolicyContext(setup, run.ledger, numpy_rng(setup.seed, "framework", framework)))
    arrival, n = run.arrival, run.n
    arrived = 0
    in_flight: _Step | None = None
    now = 0.0

    def admit(until: int, busy: bool) -> None:
        nonlocal arrived
        run.record_arrivals(arrived, until)
        for position in range(arrived, until):
            policy.on_arrival(position, busy)
        arrived = until
        run.ledger.set("window", policy.held * run.bytes_per_sample)
        run.evaluate_due(arrived)

    while True:
        if in_flight is not None:
            admit(int(np.searchsorted(arrival, in_flight.end, side="left")), busy=True)
            if in_flight.end > arrival[-1]:
                break
            now = in_flight.end
            run.learner.apply(in_flight.batch)
            run.settle(in_flight.batch, in_flight.charged)
            run.trained_at[in_flight.selection.positions] = now
            policy.after_step(in_flight.selection, run)
            in_flight = None
            admit(int(np.searchsorted(arrival, now, side="right")), busy=False)
        else:
            if arrived == n:
                break
            now = float(arrival[arrived])
            admit(int(np.searchsorted(arrival, now, side="right")), busy=False)
        selection = policy.select(now, run)
        if selection is not None:
            batch = _prepare(run, selection)
            duration = run.charge(batch, selection.cost)
            in_flight = _Step(selection, batch, now + duration, batch.cost)
            run.ledger.set("window", policy.held * run.bytes_per_sample)
    return run.result()


def _prepare(run: _Run, selection: Selection) -> TrainBatch:
    positions = selection.positions
    x, y = run.inputs(positions), run.targets(positions)
    num_new = len(positions)
    weight = None if selection.weight is None else torch.as_tensor(selection.weight, dtype=x.dtype, device=x.device)
    if selection.extra is not None and selection.extra[0].shape[0]:
        extra_x, extra_y = selection.extra
        x, y = torch.cat([x, extra_x.to(x.device)]), torch.cat([y, extra_y.to(y.device)])
        if weight is not None:
            weight = torch.cat([weight, torch.ones(extra_x.shape[0], dtype=x.dtype, device=x.device)])
    task = int(run.task[positions].max())
    return run.learner.prepare(x, y, weight=weight, num_new=num_new, task=task)
