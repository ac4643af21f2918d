"""`budgeted` (aL-SAR's protocol, SPEC §10.1): a compute budget in FLOPs per sample, spent at once.

Time is not the limit here, compute is: every arrival adds `ips = C / N` iterations of credit
(`C` = `--compute-budget`, `N` = the algorithm's nominal step FLOPs on `--batch-size` rows,
`executor.ocl.budget`; without a budget, `ips = 1`). Per arrival, in order:

1. the datum is predicted by the model as it is (test-then-train) and joins the pending data;
2. while the credit holds a whole iteration, a step runs at once: the first after an arrival
   trains on the pending data as its new rows (the algorithm fills the step to `--batch-size`
   rows from its memory; aL-SAR first stores them and draws every row from memory), further
   ones — when `ips > 1` — on memory alone. Each step costs one iteration of credit; with
   `spend_saved` it costs its real FLOPs over `N` (at most 1), so the backward a frozen prefix
   did not run buys further steps (the paper's Fig. 1 idea, which its code never does). A step
   with nothing to train on (no pending data and no memory) is not taken and the iteration
   is dropped;
3. test accuracy is measured when a checkpoint falls due.

The credit is kept as an exact fraction, so that a run is a deterministic function of its
seed and the pending data never exceed `ceil(1/ips)` (`max_held`, the framework's window in a
memory budget). Every step is timed (`time.perf_counter` and `time.thread_time` around the
algorithm's `observe` and the learner's step); `summary.json` gets `train_wall_s`,
`train_cpu_s`, `iterations_per_sample`, `compute_budget_flops_per_sample`,
`train_flops_per_sample` (what was really spent) and `spend_saved_compute`.
"""

from __future__ import annotations

import math
import time
from fractions import Fraction

import numpy as np

from executor.ocl.budget import ComputeBudget, iterations_per_sample, nominal_step_flops
from executor.ocl.frameworks.base import FrameworkOptions, register_framework, reject_extra_options
from executor.ocl.loop import _Run
from executor.ocl.result import RunResult
from executor.ocl.setup import RunSetup
from planner.limits import check_work


class BudgetedFramework:
    """`budgeted`: steps paid for by a compute budget in FLOPs per sample, run at each arrival.

    Time plays no part; the credit is an exact fraction, so a run is deterministic in its seed and at
    most `max_held` data are pending (see the module docstring).
    """

    name = "budgeted"
    replay_memories = 0

    def __init__(self, options: FrameworkOptions) -> None:
        self.batch_rows = options.batch_size

    def max_held(self, setup: RunSetup) -> int:
        """Most stream data pending at once: an iteration needs `ceil(1/ips)` arrivals of credit."""
        return max(1, math.ceil(1 / Fraction(self.iterations_per_sample(setup))))

    def iterations_per_sample(self, setup: RunSetup) -> float:
        cost_model = setup.cost_model
        budget = setup.compute_budget
        if budget is None:
            budget = ComputeBudget(nominal_step_flops(setup.algorithm, cost_model, self.batch_rows))
        return iterations_per_sample(budget, setup.algorithm, cost_model, self.batch_rows)

    def run(self, setup: RunSetup) -> RunResult:
        run = _Run(setup, self.name)
        learner, cost_model = run.learner, run.cost_model
        ips = self.iterations_per_sample(setup)
        check_work("max_events", run.n * ips, f"{ips:.3g} training steps per sample over {run.n} samples", "steps")
        step_share = Fraction(ips)
        nominal = nominal_step_flops(setup.algorithm, cost_model, self.batch_rows)
        spend_saved = setup.compute_budget is not None and setup.compute_budget.spend_saved
        credit = Fraction(0)
        pending: list[int] = []
        wall = cpu = 0.0
        for i in range(run.n):
            run.record_arrivals(i, i + 1)
            pending.append(i)
            run.ledger.set("window", len(pending) * run.bytes_per_sample)
            credit += step_share
            while credit >= 1:
                positions = np.asarray(pending, dtype=np.int64)
                started, started_cpu = time.perf_counter(), time.thread_time()
                batch = learner.prepare(
                    run.inputs(positions),
                    run.targets(positions),
                    num_new=len(positions),
                    task=int(run.task[positions].max()) if len(positions) else int(run.task[i]),
                    batch_rows=self.batch_rows,
                )
                if batch.rows == 0:
                    credit -= math.floor(credit)
                    break
                learner.apply(batch)
                wall += time.perf_counter() - started
                cpu += time.thread_time() - started_cpu
                run.charge(batch)
                run.trained_at[positions] = run.arrival[i]
                spent = run.step_flops(batch)
                credit -= min(Fraction(1), Fraction(spent) / Fraction(nominal)) if spend_saved else 1
                if pending:
                    pending.clear()
                    run.ledger.set("window", 0)
            run.evaluate_due(i + 1)
        result = run.result()
        result.details.update(
            {
                "iterations_per_sample": ips,
                "compute_budget_flops_per_sample": ips * nominal,
                "nominal_step_flops": nominal,
                "train_flops_per_sample": result.train_flops / run.n,
                "spend_saved_compute": spend_saved,
                "train_wall_s": wall,
                "train_cpu_s": cpu,
            }
        )
        return result


@register_framework("budgeted")
def build_budgeted(options: FrameworkOptions) -> BudgetedFramework:
    reject_extra_options("budgeted", options)
    return BudgetedFramework(options)
