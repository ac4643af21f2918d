"""The pipeline framework: a plan (Ferret M−/M/M+, PipeDream, PipeDream-2BW, GPipe, 1F1B-flush)
run on the stream, with the same `RunResult` as the sequential frameworks.

`ferret run --plan plan.json --mode replay`, or in a library
`FrameworkOptions(pipeline=PipelineOptions(plan=Plan.load(path), ...))` with framework
`pipeline`. The schedule is the twin's for the stream's own arrival times (or a trace file,
`trace`); the replay executor follows it with real data and real math.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from executor.compensation import CompensationConfig
from executor.distributed.options import DistributedOptions
from executor.ocl.frameworks.base import FrameworkOptions, register_framework
from executor.ocl.result import RunResult
from executor.ocl.setup import RunSetup
from planner.config_field import config_field
from planner.errors import FerretError, ValidationError
from planner.plan import Plan
from planner.registry import Registry
from sim.config import SimConfig
from sim.costs import OpCosts
from sim.fitted_costs import LayerCosts


def mode_names() -> list[str]:
    return list(PIPELINE_MODES)


@dataclass(frozen=True)
class PipelineOptions:
    """Everything the pipeline framework runs: the plan (loaded once, by whoever builds these;
    `plan_file` names it in errors and reports), how it runs (`mode`), the compensation of every
    stage, the twin's model that schedules it (`sim_config`) or a schedule to follow instead
    (`trace`), where to write the measured op trace, and whether to run the schedule past the
    last arrival (`drain`)."""

    plan: Plan = config_field(help="the plan to run", via="--plan FILE (loaded once)")
    plan_file: Path | None = config_field(
        None, help="plan JSON from `ferret plan`: run its pipeline", unit="path", flag="plan"
    )
    mode: str = config_field(
        "replay",
        help="how the pipeline runs, one of: {names} (replay follows the twin's schedule in one process)",
        names=mode_names,
    )
    compensation: CompensationConfig = config_field(
        default_factory=CompensationConfig, help="compensation", via="--compensation, --compensation-option"
    )
    sim_config: SimConfig = config_field(
        default_factory=SimConfig, help="the twin's model", via="the simulator flags and --sim-config"
    )
    costs: LayerCosts | None = config_field(
        None, help="the twin's fitted cost model", via="--costs FILE (costs.json from `ferret calibrate`)"
    )
    trace: Path | None = config_field(
        None,
        help="follow this trace file (jsonl/csv, e.g. from ferret simulate) instead of simulating",
        unit="path",
    )
    measured_trace: Path | None = config_field(
        None, help="where the measured op trace goes", via="`ferret run` writes trace.jsonl into --out"
    )
    drain: bool = config_field(
        False, help="run the whole schedule, past the last arrival", via="library only (tests compare final weights)"
    )
    distributed: DistributedOptions = config_field(
        default_factory=DistributedOptions, help="settings of --mode distributed", via="the distributed flags"
    )

    def validate(self) -> PipelineOptions:
        if self.mode not in PIPELINE_MODES:
            raise FerretError(
                f"pipeline mode {self.mode!r} is not available; choose one of {', '.join(PIPELINE_MODES)}"
            )
        try:
            self.compensation.validate()
        except ValidationError as exc:
            raise FerretError(f"--compensation: {exc}") from None
        self.distributed.validate()
        return self

    @property
    def plan_name(self) -> str:
        return "plan" if self.plan_file is None else str(self.plan_file)


def check_plan(options: PipelineOptions, num_layers: int, model_name: str) -> Plan:
    """The plan, checked against the model it will run (one line naming the file on mismatch)."""
    plan = options.plan
    if plan.num_layers != num_layers:
        raise FerretError(
            f"{options.plan_name}: the plan partitions {plan.num_layers} layers but model {model_name!r} has "
            f"{num_layers}; make the plan from this model's profile"
        )
    if not plan.feasible:
        raise FerretError(
            f"{options.plan_name}: the plan is marked infeasible for its budget; plan with a larger budget"
        )
    return plan


class PipelineFramework:
    """`pipeline`: runs a plan on the stream in its `mode` (`replay` or `distributed`, `PIPELINE_MODES`).

    Returns the same `RunResult` as the sequential frameworks.
    """

    def __init__(self, options: PipelineOptions) -> None:
        self.options = options
        self.name = "pipeline"

    def run(self, setup: RunSetup) -> RunResult:
        return PIPELINE_MODES[self.options.mode](setup, self.options)


def run_replay(setup: RunSetup, options: PipelineOptions) -> RunResult:
    """Simulate (or load) the plan's schedule for this stream and replay it."""
    from executor.replay import ReplayExecutor, execution_plan, load_rows, simulate_rows
    from sim.trace import FileTrace, TraceSink

    model = setup.model
    plan = check_plan(options, getattr(model, "num_layers", -1), getattr(model, "name", "?"))
    arrival = setup.stream.arrival_s
    sim_config = options.sim_config
    sim_summary: dict[str, Any] = {}
    if options.trace is None:
        if sim_config.update_s:
            raise FerretError(
                "replay applies a stage's update inside the backward that completes its group, so the schedule "
                "needs --update-time 0 (the default)"
            )
        sim_config = twin_config(setup, sim_config)
        rows, sim = simulate_rows(plan, setup.profile, arrival, setup.seed, sim_config, twin_costs(setup, options))
        sim_summary = twin_summary(sim, sim_config)
    else:
        rows = load_rows(options.trace, arrival, plan)
    recorder: TraceSink | None = None
    if options.measured_trace is not None:
        recorder = FileTrace(options.measured_trace)  # the format its suffix names
    try:
        executor = ReplayExecutor(setup, execution_plan(plan), options.compensation, recorder, framework=plan.strategy)
        result = executor.run(rows, drain=options.drain)
    finally:
        if recorder is not None:
            recorder.close()
    result.details.update(
        {
            **plan_report(setup, options, plan),
            "schedule": "sim" if options.trace is None else str(options.trace),
            "sim_config": sim_config.to_json(),
            **sim_summary,
            "drained": options.drain,
        }
    )
    return result


def plan_report(setup: RunSetup, options: PipelineOptions, plan: Plan) -> dict[str, Any]:
    """What every pipeline mode reports about the plan it ran and what the closed forms say."""
    from planner.strategies import predict

    rate, memory = predict(setup.profile, plan)
    return {
        "mode": options.mode,
        "plan": options.plan_name,
        "strategy": plan.strategy,
        "num_stages": plan.num_stages,
        "partition": list(plan.partition),
        "num_workers": plan.num_workers,
        "active_workers": len(plan.active_workers),
        "minibatch": plan.minibatch,
        "budget_bytes": plan.budget_bytes,
        "compensation": options.compensation.name,
        "compensation_config": dataclasses.asdict(options.compensation),
        "stagewise_decay_per_s": plan.decay_per_s,
        "plan_predicted_adaptation_rate": None if plan.predicted is None else plan.predicted.adaptation_rate,
        "plan_predicted_memory_bytes": None if plan.predicted is None else plan.predicted.memory_bytes,
        "predicted_adaptation_rate": rate,
        "predicted_memory_bytes": memory,
        "memory_convention": (
            "measured_peak_memory_bytes counts activations as the tensors autograd saves (the sequential "
            "frameworks' convention); measured_peak_memory_layer_outputs_bytes counts each layer's output "
            "(the profile's act_bytes, F4's convention); measured_weights_activations_peak_bytes is the part "
            "F4 predicts (predicted_memory_bytes, from the run's profile)"
        ),
    }


def twin_config(setup: RunSetup, sim_config: SimConfig) -> SimConfig:
    """The twin's settings for this run: with a replay memory (ER, MIR, aL-SAR) a micro-batch has
    `1 + replay_batch` rows, so its ops last that much longer; the algorithm's passes beyond the
    training step (LwF's teacher, MAS's importance pass, MIR's scoring) are charged as
    `algorithm_passes` (`twin_passes`; the run's algorithm decides them, whatever `sim_config` said)."""
    from executor.ocl.algorithms.base import algorithm_class, twin_passes

    rows_per_datum = 1
    if algorithm_class(setup.algorithm).replay_memory:
        rows_per_datum += setup.algorithm.replay_batch or 1
    passes = twin_passes(setup.algorithm, rows_per_datum, setup.stream.task)
    if rows_per_datum == 1 and passes == sim_config.algorithm_passes:
        return sim_config
    return dataclasses.replace(sim_config, time_scale=sim_config.time_scale * rows_per_datum, algorithm_passes=passes)


def twin_costs(setup: RunSetup, options: PipelineOptions) -> OpCosts | None:
    """The twin's cost model for this run: `--costs` for the plan's partition, checked against the
    run's model (None: the profile's times and the SimConfig's timing fields)."""
    if options.costs is None:
        return None
    try:
        return options.costs.check(setup.profile).for_partition(options.plan.partition)
    except ValidationError as exc:
        raise FerretError(f"--costs: {exc}") from None


def twin_summary(sim: Any, sim_config: SimConfig) -> dict[str, Any]:
    """The twin's predictions for the schedule it made (`sim_*` beside what was measured)."""
    return {
        "sim_adaptation_rate": sim.adaptation_rate,
        "sim_peak_memory_bytes": sim.peak_memory_bytes,
        "sim_drop_rate": sim.drop_rate,
        "sim_predicted_share": 1.0 - sim.drop_rate,
        "sim_throughput_per_s": sim.throughput_per_s,
        "sim_latency_p50_s": sim.latency_quantile(0.5),
        "sim_latency_p99_s": sim.latency_quantile(0.99),
        "sim_time_scale": sim_config.time_scale,
        "sim_algorithm_passes": sim_config.algorithm_passes.to_json(),
    }


def run_distributed(setup: RunSetup, options: PipelineOptions) -> RunResult:
    """The plan on real ranks, in real time (or along a trace): executor/distributed."""
    from executor.distributed.mode import run_distributed as run

    return run(setup, options)


PIPELINE_MODES: Registry[Callable[[RunSetup, PipelineOptions], RunResult]] = Registry(
    "pipeline mode", {"replay": run_replay, "distributed": run_distributed}
)


@register_framework("pipeline")
def build_pipeline(options: FrameworkOptions) -> PipelineFramework:
    if options.extra:
        raise FerretError(
            f"framework 'pipeline' takes no --framework-option (got {', '.join(sorted(options.extra))}); "
            "its settings are --plan, --mode, --compensation, --trace and the simulator flags"
        )
    if options.pipeline is None:
        raise FerretError("framework 'pipeline' needs a plan: --plan plan.json")
    return PipelineFramework(options.pipeline.validate())
