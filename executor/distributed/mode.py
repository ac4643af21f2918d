"""`--mode distributed` of the pipeline framework: this process is one rank of the run.

Every rank of `ferret run --mode distributed` (started by `launch_local` or by torchrun) gets
here with the same `RunSetup` and options: it runs its stages (rank.py) and returns the merged
`RunResult`, to which the output rank adds what every pipeline mode reports about its plan and
the twin's predictions for the same plan, placement and arrivals (`sim_*`), beside what was
measured. `check_launch` is what the launcher refuses before starting any rank.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from executor.distributed.rank import RankRun, check_run, is_output_rank, run_rank
from executor.ocl.result import RunResult
from executor.ocl.setup import RunSetup
from executor.replay.trace_source import GivenArrivals, execution_order, execution_plan, load_rows
from sim.simulate import simulate
from sim.trace import NullTrace

if TYPE_CHECKING:
    from executor.ocl.algorithms import AlgorithmConfig
    from executor.ocl.frameworks.pipeline import PipelineOptions


def run_distributed(setup: RunSetup, options: PipelineOptions) -> RunResult:
    from executor.ocl.frameworks.pipeline import check_plan, plan_report, twin_config, twin_costs, twin_summary

    plan = check_plan(options, getattr(setup.model, "num_layers", -1), getattr(setup.model, "name", "?"))
    costs = twin_costs(setup, options)  # refused here, before the run, not after it
    settings = options.distributed
    rows = None
    if settings.follow_trace is not None:
        rows = execution_order(load_rows(settings.follow_trace, setup.stream.arrival_s, plan), plan)
    run = RankRun(
        execution_plan(plan), options.compensation, options.sim_config, settings, options.measured_trace, rows
    )
    result = run_rank(setup, run)
    if not is_output_rank():
        return result
    details = {**plan_report(setup, options, plan), "sim_config": options.sim_config.to_json()}
    if rows is None:  # the twin's prediction of this run, beside the measurement
        sim_config = twin_config(setup, options.sim_config)
        arrival = setup.stream.arrival_s
        sim = simulate(
            plan, setup.profile, len(arrival), GivenArrivals(arrival), setup.seed, sim_config, NullTrace(), costs
        )
        details.update(twin_summary(sim, sim_config))
    result.details.update(details)
    return result


def check_launch(options: PipelineOptions, algorithm: AlgorithmConfig, nproc: int) -> None:
    """What the launcher can refuse before starting a rank (every rank checks it again)."""
    check_run(options.plan, algorithm, options.distributed, nproc)
