"""The pipeline framework: a plan (Ferret M−/M/M+, PipeDream, PipeDream-2BW, GPipe, 1F1B-flush)
run on the stream, with the same `RunResult` as the sequential frameworks.

`ferret run --plan plan.json --mode replay` (or `--framework pipeline --framework-option
plan=plan.json`). The schedule is the twin's for the stream's own arrival times (or a trace
file, `trace=`); the replay executor follows it with real data and real math. Options (the
`extra` of `FrameworkOptions`): `plan`, `mode`, `compensation` (a name or a
`CompensationConfig`) with `lambda0`, `nu`, `alpha`, `eta_lambda`, `gap_ema`, `trace`,
`measured_trace` (where to write the measured trace), `sim_config` (a `SimConfig`, its JSON
object, or a file), `drain`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from executor.compensation import CompensationConfig
from executor.ocl.frameworks.base import FrameworkOptions, register_framework
from executor.ocl.result import RunResult
from executor.ocl.setup import RunSetup
from planner.errors import FerretError, ValidationError
from planner.plan import Plan
from sim.config import SimConfig

COMPENSATION_FIELDS = ("lambda0", "nu", "alpha", "eta_lambda", "gap_ema")
OPTION_NAMES = ("plan", "mode", "compensation", *COMPENSATION_FIELDS, "trace", "measured_trace", "sim_config", "drain")
# Algorithms whose micro-batch grows by the replayed rows: the twin's ops last that much longer.
REPLAYING = ("er", "mir")


@dataclass(frozen=True)
class PipelineOptions:
    plan: Path
    mode: str = "replay"
    compensation: CompensationConfig = field(default_factory=CompensationConfig)
    sim_config: SimConfig = field(default_factory=SimConfig)
    trace: Path | None = None
    measured_trace: Path | None = None
    drain: bool = False

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> PipelineOptions:
        unknown = sorted(set(extra) - set(OPTION_NAMES))
        if unknown:
            raise FerretError(
                f"framework 'pipeline' takes no option {', '.join(unknown)} (it takes: {', '.join(OPTION_NAMES)})"
            )
        if "plan" not in extra:
            raise FerretError("framework 'pipeline' needs a plan: --plan plan.json (or --framework-option plan=FILE)")
        compensation = extra.get("compensation", "none")
        if not isinstance(compensation, CompensationConfig):
            compensation = CompensationConfig(name=str(compensation))
        overrides: dict[str, Any] = {}
        for k in COMPENSATION_FIELDS:
            if k in extra:
                try:
                    overrides[k] = float(extra[k])
                except (TypeError, ValueError):
                    raise FerretError(f"compensation setting {k} must be a number, got {extra[k]!r}") from None
        try:
            compensation = dataclasses.replace(compensation, **overrides).validate()
        except ValidationError as exc:
            raise FerretError(f"--compensation: {exc}") from None
        mode = str(extra.get("mode", "replay"))
        if mode not in PIPELINE_MODES:
            raise FerretError(f"pipeline mode {mode!r} is not available; choose one of {', '.join(PIPELINE_MODES)}")
        return cls(
            plan=Path(str(extra["plan"])),
            mode=mode,
            compensation=compensation,
            sim_config=_sim_config(extra.get("sim_config")),
            trace=None if extra.get("trace") is None else Path(str(extra["trace"])),
            measured_trace=None if extra.get("measured_trace") is None else Path(str(extra["measured_trace"])),
            drain=bool(extra.get("drain", False)),
        )


def _sim_config(value: Any) -> SimConfig:
    if value is None:
        return SimConfig()
    if isinstance(value, SimConfig):
        return value
    if isinstance(value, dict):
        return SimConfig.from_json(value)
    return SimConfig.load(str(value))


def load_plan(path: Path, num_layers: int, model_name: str) -> Plan:
    """The plan, checked against the model it will run (one line naming the file on mismatch)."""
    plan = Plan.load(path)
    if plan.num_layers != num_layers:
        raise FerretError(
            f"{path}: the plan partitions {plan.num_layers} layers but model {model_name!r} has {num_layers}; "
            "make the plan from this model's profile"
        )
    if not plan.feasible:
        raise FerretError(f"{path}: the plan is marked infeasible for its budget; plan with a larger budget")
    return plan


class PipelineFramework:
    def __init__(self, options: PipelineOptions) -> None:
        self.options = options
        self.name = "pipeline"

    def run(self, setup: RunSetup) -> RunResult:
        return PIPELINE_MODES[self.options.mode](setup, self.options)


def run_replay(setup: RunSetup, options: PipelineOptions) -> RunResult:
    """Simulate (or load) the plan's schedule for this stream and replay it."""
    from executor.replay import ReplayExecutor, execution_plan, load_rows, simulate_rows
    from planner.closed_form import stage_shares
    from planner.strategies import predict
    from sim.trace import FileTrace, TraceSink

    model = setup.model
    plan = load_plan(options.plan, getattr(model, "num_layers", -1), getattr(model, "name", "?"))
    arrival = setup.stream.arrival_s
    sim_config = options.sim_config
    sim_summary: dict[str, Any] = {}
    if options.trace is None:
        if sim_config.update_s:
            raise FerretError(
                "replay applies a stage's update inside the backward that completes its group, so the schedule "
                "needs --update-time 0 (the default)"
            )
        rows_per_datum = 1
        if setup.algorithm.name in REPLAYING:
            rows_per_datum += setup.algorithm.replay_batch or 1
        if rows_per_datum > 1:
            sim_config = dataclasses.replace(sim_config, time_scale=sim_config.time_scale * rows_per_datum)
        rows, sim = simulate_rows(plan, setup.profile, arrival, setup.seed, sim_config)
        sim_summary = {
            "sim_adaptation_rate": sim.adaptation_rate,
            "sim_peak_memory_bytes": sim.peak_memory_bytes,
            "sim_drop_rate": sim.drop_rate,
            "sim_time_scale": sim_config.time_scale,
        }
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
    rate, memory = predict(setup.profile, plan)
    shares = stage_shares(setup.profile, plan.partition)
    result.details.update(
        {
            "mode": options.mode,
            "plan": str(options.plan),
            "strategy": plan.strategy,
            "num_stages": plan.num_stages,
            "partition": list(plan.partition),
            "num_workers": plan.num_workers,
            "active_workers": len(plan.active_workers),
            "minibatch": plan.minibatch,
            "budget_bytes": plan.budget_bytes,
            "compensation": options.compensation.name,
            "compensation_config": dataclasses.asdict(options.compensation),
            "final_lambda": [getattr(stage.compensator, "lam", None) for stage in executor.stages],
            "schedule": "sim" if options.trace is None else str(options.trace),
            "sim_config": sim_config.to_json(),
            **sim_summary,
            "drained": options.drain,
            "dropped": int(sum(1 for r in rows if r.kind == "drop")),
            "partially_trained": int((executor.records.bottom > 0).sum()),
            "stagewise_adaptation_rate": executor.records.stagewise_rate(
                shares, plan.decay_per_s, plan.arrival_interval_s
            ),
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
    )
    return result


PIPELINE_MODES: dict[str, Callable[[RunSetup, PipelineOptions], RunResult]] = {"replay": run_replay}


@register_framework("pipeline")
def build_pipeline(options: FrameworkOptions) -> PipelineFramework:
    return PipelineFramework(PipelineOptions.from_extra(options.extra))
