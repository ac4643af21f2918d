"""`RunSpec` → a finished run: load the data, build the model, profile it, build the stream, run.

This is what `ferret run` calls; it takes names and numbers only (no argparse), so scripts and
tests can run an experiment the same way. Order matters: the default arrival interval is the
profile's `td = max_l t̂f_l`, so the profile comes before the stream.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from executor.data import Stream, build_stream, load_dataset
from executor.metrics import summarize
from executor.models import build_model
from executor.ocl.algorithms import AlgorithmConfig
from executor.ocl.algorithms.base import BUDGETS_TITLE, algorithm_class
from executor.ocl.budget import ComputeBudget, plan_memory
from executor.ocl.cost import CostModel
from executor.ocl.frameworks import Framework, FrameworkOptions, build_framework, framework_names
from executor.ocl.replay_buffer import capacity_from_bytes
from executor.ocl.result import RunResult
from executor.ocl.setup import RunSetup
from executor.profiler.trace import model_made_from
from executor.seeding import seed_everything
from executor.stage.optim import OptimizerConfig
from planner.config_field import config_field
from planner.errors import FerretError
from planner.limits import check_work
from planner.profile import ModelProfile
from planner.provenance import check_made_for, content_id
from sim.arrivals import make_arrivals
from sim.simulate import ops_per_datum


@dataclass(frozen=True)
class RunSpec:
    """One run, fully named; each field's metadata is its `ferret run` flag.

    `profile_path` wins over `device` for the virtual-time profile; `device` is `cpu`,
    `cuda[:N]` (train and measure there) or `roofline:NAME` (estimate the profile for that
    device, train on the CPU). A measured or estimated profile is also taken at batch
    `cost_batch` (1: not) so that a step's fixed cost is fitted; with `profile_path`, the
    profiles in `batch_profile_paths` (the same model at other batch sizes) play that part.
    `buffer_bytes`, when given, sizes the replay buffer from the data set's stored bytes per
    sample and overrides `algorithm.buffer_samples`; `memory_budget_bytes` (SPEC §10.1) instead
    sizes it from what a byte budget leaves after the model, optimizer, extra state and the
    framework's window (`executor.ocl.budget`). `compute_budget_flops` is the training FLOPs per
    stream sample that the `budgeted` framework spends. Without `arrival_interval_s` data arrive
    every `plan.arrival_interval_s` when the framework runs a plan (what it was made for), else
    every `td`, the profile's slowest forward."""

    framework: str = config_field(
        "oracle",
        help="who trains on what: {names}",
        names=framework_names,
        default_text="oracle; budgeted with --compute-budget; pipeline with --plan",
        group="what runs",
    )
    dataset: str = config_field(
        "digits", help="digits, synthetic, mnist, cifar10, ... (local files)", group="what runs"
    )
    data_root: str | None = config_field(None, help="folder of the data set's local files", group="what runs")
    dataset_options: Mapping[str, Any] = config_field(
        default_factory=dict,
        help="data-set option, repeatable (e.g. num_classes=5 for synthetic, test_fraction=0.3 for digits)",
        unit="key-value",
        flag="dataset-option",
        group="what runs",
    )
    stream: str = config_field("iid", help="iid, class-incremental, blurry, domain-incremental, ...", group="what runs")
    stream_options: Mapping[str, Any] = config_field(
        default_factory=dict,
        help="stream option, repeatable (e.g. tasks=5, sigma=0.25)",
        unit="key-value",
        flag="stream-option",
        group="what runs",
    )
    model: str = config_field("mnistnet", help="model name (see ferret profile --help)", group="what runs")
    samples: int | None = config_field(
        None, help="stream length", unit="int", ge=1, default_text="the training set once", group="what runs"
    )
    seed: int = config_field(
        0, help="one seed for data order, weights and every choice", unit="seed", group="what runs"
    )
    arrival: str = config_field("fixed", help="arrival process: fixed, poisson, bursty or trace:FILE", group="time")
    arrival_interval_s: float | None = config_field(
        None,
        help="mean time between arrivals, e.g. 2ms",
        unit="seconds",
        gt=0,
        flag="arrival-interval",
        default_text="the plan's with --plan, else the slowest layer's forward, Ferret's td",
        group="time",
    )
    profile_path: str | Path | None = config_field(
        None,
        help="profile JSON giving step times",
        unit="path",
        flag="profile",
        default_text="measured on --device",
        group="time",
    )
    batch_profile_paths: tuple[str | Path, ...] = config_field(
        (),
        help="the same model's profile at a larger batch (repeatable; with --profile): a step of B rows then "
        "costs a fitted fixed part + B × a per-row part instead of B one-row steps",
        unit="path",
        repeat=True,
        flag="batch-profile",
        group="time",
    )
    cost_batch: int = config_field(
        16,
        help="without --profile, also profile at this batch to fit a step's fixed cost (1: steps cost B × one row)",
        unit="int",
        ge=1,
        group="time",
    )
    device: str = config_field("cpu", help="cpu, cuda[:N] (train and measure there) or roofline:NAME", group="time")
    threads: int = config_field(
        1, help="torch CPU threads for profiling and training", unit="int", ge=1, le=1024, group="time"
    )
    algorithm: AlgorithmConfig = config_field(
        default_factory=AlgorithmConfig, help="the OCL algorithm", via="AlgorithmConfig's flags"
    )
    buffer_bytes: int | None = config_field(
        None,
        help="replay buffer size in bytes, e.g. 1MiB",
        unit="bytes",
        gt=0,
        flag="buffer",
        group="algorithm",
        exclusive="replay buffer size",
    )
    framework_options: FrameworkOptions = config_field(
        default_factory=FrameworkOptions, help="the framework's options", via="FrameworkOptions' flags"
    )
    optimizer: OptimizerConfig = config_field(
        default_factory=OptimizerConfig, help="the optimizer", via="OptimizerConfig's flags"
    )
    eval_every: int = config_field(
        100, help="test every E arrivals (0: only at the end)", unit="int", ge=0, group="output"
    )
    force: bool = config_field(
        False,
        help="run even when the profile, plan or trace was made for another model, input shape or class count",
        unit="flag",
        group="what runs",
    )
    progress: bool = config_field(False, help="a progress bar", via="on in `ferret run`")
    # Budgeted OCL (aL-SAR, SPEC §10.1).
    memory_budget_bytes: int | None = config_field(
        None,
        help="total stored bytes (model, optimizer, extra state, window, replay at its stored dtype); "
        "the replay memory gets what is left, e.g. 2MiB",
        unit="bytes",
        gt=0,
        flag="memory-budget",
        group="algorithm",
        exclusive="replay buffer size",
    )
    compute_budget_flops: float | None = config_field(
        None,
        help="training FLOPs per stream sample, e.g. 250M, spent by the budgeted framework (the default with it)",
        unit="flops",
        gt=0,
        flag="compute-budget",
        group=BUDGETS_TITLE,
    )
    spend_saved_compute: bool = config_field(
        False,
        help="FLOPs that freezing saves buy further steps within the compute budget",
        unit="flag",
        group=BUDGETS_TITLE,
    )

    @property
    def train_device(self) -> str:
        return self.device if self.device.startswith("cuda") else "cpu"


@dataclass(frozen=True, eq=False)
class Experiment:
    """A run ready to start: its spec, its built setup, its arrival interval (seconds) and framework.

    Made by `prepare`; `run_experiment` runs it. `made_from` is its provenance
    (planner/provenance.py), `forced` the mismatches `force` let through.
    """

    spec: RunSpec
    setup: RunSetup
    arrival_interval_s: float
    framework: Framework
    made_from: dict[str, Any]
    forced: tuple[str, ...] = ()


def prepare(spec: RunSpec) -> Experiment:
    """Everything but the run itself; raises `FerretError` on any bad name or file. The
    framework is built first, so that a bad name or option fails before any data are loaded;
    the profile, plan and trace are checked against the model built for the data set."""
    if spec.samples is not None and spec.samples < 1:
        raise FerretError(f"--samples must be ≥ 1, got {spec.samples}")
    if spec.profile_path is not None and spec.device.startswith("roofline:"):
        raise FerretError(f"--device {spec.device} estimates the step times that --profile gives; give one of them")
    if spec.device.startswith("cuda"):
        from executor.profiler.measure import resolve_torch_device

        resolve_torch_device(spec.device)
    framework = build_framework(spec.framework, spec.framework_options)
    budget = compute_budget(spec)
    if spec.memory_budget_bytes is not None and spec.buffer_bytes is not None:
        raise FerretError("give --memory-budget or --buffer, not both (the budget sizes the replay memory)")
    algorithm_class(spec.algorithm)  # a bad algorithm name or sampler fails before any data are loaded
    import torch

    torch.set_num_threads(spec.threads)
    seed_everything(spec.seed)
    dataset = load_dataset(spec.dataset, root=spec.data_root, seed=spec.seed, **dict(spec.dataset_options))
    pipeline = spec.framework_options.pipeline
    length = len(dataset) if spec.samples is None else spec.samples
    ops = 1 if pipeline is None else ops_per_datum(pipeline.plan.num_stages)
    check_work("max_events", length * ops, f"a stream of {length} samples", "ops")
    algorithm = spec.algorithm
    if spec.buffer_bytes is not None:
        capacity = capacity_from_bytes(spec.buffer_bytes, dataset.stored_bytes_per_sample)
        algorithm = replace(algorithm, buffer_samples=capacity)
    model = build_model(spec.model, dataset.input_shape, dataset.num_classes, seed=spec.seed)
    profile, batch_profiles = load_profiles(spec, model)
    made_from = model_made_from(model)
    forced = _check_inputs(spec, made_from, profile, batch_profiles)
    interval = spec.arrival_interval_s
    if interval is None and pipeline is not None:
        interval = pipeline.plan.arrival_interval_s
    if interval is None:
        interval = CostModel.from_profile(profile).default_arrival_interval_s
    arrivals = make_arrivals(spec.arrival, interval)
    stream: Stream = build_stream(
        spec.stream, dataset, arrivals, seed=spec.seed, length=spec.samples, **dict(spec.stream_options)
    )
    setup = RunSetup(
        stream=stream,
        model=model,
        profile=profile,
        optimizer=spec.optimizer,
        algorithm=algorithm,
        eval_every=spec.eval_every,
        seed=spec.seed,
        device=spec.train_device,
        progress=spec.progress,
        batch_profiles=batch_profiles,
        compute_budget=budget,
    )
    made_from.update(
        dataset=dataset.name,
        dataset_options=dict(spec.dataset_options),
        stream=stream.name,
        stream_options=dict(spec.stream_options),
        samples=len(stream),
        seed=spec.seed,
        profile=content_id(profile.to_json()),
    )
    if pipeline is not None:
        made_from["plan"] = content_id(pipeline.plan.to_json())
    if spec.memory_budget_bytes is not None:
        setup = apply_memory_budget(spec.memory_budget_bytes, setup, framework)
    return Experiment(spec, setup, interval, framework, made_from, tuple(forced))


def _check_inputs(
    spec: RunSpec, made_from: dict[str, Any], profile: ModelProfile, batch_profiles: tuple[ModelProfile, ...]
) -> list[str]:
    """The profile(s), plan and trace must have been made for the model this run builds."""
    against = f"model {spec.model} built for {spec.dataset}"
    forced: list[str] = []
    if spec.profile_path is not None:
        for path, given in zip((spec.profile_path, *spec.batch_profile_paths), (profile, *batch_profiles), strict=True):
            forced += check_made_for(given.made_from(), made_from, f"profile {path}", against, force=spec.force)
    pipeline = spec.framework_options.pipeline
    if pipeline is not None:
        plan = pipeline.plan
        forced += check_made_for(plan.provenance, made_from, pipeline.plan_name, against, force=spec.force)
        for trace in (pipeline.trace, pipeline.distributed.follow_trace):
            recorded = None if trace is None else _folder_provenance(trace.parent)
            if recorded is not None and recorded.get("plan") not in (None, content_id(plan.to_json())):
                if not spec.force:
                    raise FerretError(
                        f"trace {trace} was made from another plan than {pipeline.plan_name} (--force to go on anyway)"
                    )
                forced.append("a trace of another plan")
    return forced


def _folder_provenance(folder: Path) -> dict[str, Any] | None:
    """The provenance recorded in a sim or run folder's summary.json, if any."""
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    recorded = summary.get("provenance") if isinstance(summary, dict) else None
    return recorded if isinstance(recorded, dict) else None


def compute_budget(spec: RunSpec) -> ComputeBudget | None:
    if spec.compute_budget_flops is None:
        if spec.spend_saved_compute:
            raise FerretError("--spend-saved-compute needs --compute-budget")
        return None
    if spec.framework != "budgeted":
        raise FerretError(
            f"--compute-budget is spent by the budgeted framework; framework {spec.framework!r} is limited by time"
        )
    return ComputeBudget(spec.compute_budget_flops, spec.spend_saved_compute)


def apply_memory_budget(budget_bytes: int, setup: RunSetup, framework: Framework) -> RunSetup:
    """Size the replay memory from the byte budget (SPEC §10.1) and attach the split."""
    max_held = getattr(framework, "max_held", None)
    if max_held is None:
        raise FerretError(f"--memory-budget: framework {framework.name!r} does not say what it stores")
    dataset = setup.stream.dataset
    plan = plan_memory(
        budget_bytes,
        model=setup.model,
        optimizer=setup.optimizer,
        algorithm=setup.algorithm,
        num_classes=dataset.num_classes,
        bytes_per_sample=dataset.stored_bytes_per_sample,
        held_samples=max_held(setup),
        framework_memories=getattr(framework, "replay_memories", 0),
    )
    algorithm = setup.algorithm
    if plan.replay_capacity:
        algorithm = replace(algorithm, buffer_samples=plan.replay_capacity)
    return replace(setup, algorithm=algorithm, memory_budget=plan)


def load_profiles(spec: RunSpec, model: Any) -> tuple[ModelProfile, tuple[ModelProfile, ...]]:
    """The run's batch-1 profile and the same model's profiles at larger batches (cost fit)."""
    if spec.cost_batch < 1:
        raise FerretError(f"--cost-batch must be ≥ 1, got {spec.cost_batch}")
    if spec.profile_path is not None:
        return (
            ModelProfile.load(Path(spec.profile_path)),
            tuple(ModelProfile.load(Path(p)) for p in spec.batch_profile_paths),
        )
    if spec.batch_profile_paths:
        raise FerretError("--batch-profile needs --profile (the batch-1 profile it goes with)")
    from executor.profiler import profile_model, roofline_profile

    batches = (1, spec.cost_batch) if spec.cost_batch > 1 else (1,)
    if spec.device.startswith("roofline:"):
        device = spec.device.removeprefix("roofline:")
        profiles = [roofline_profile(model, device, batch_size=b) for b in batches]
    else:
        profiles = [profile_model(model, batch_size=b, device=spec.device, seed=spec.seed) for b in batches]
    return profiles[0], tuple(profiles[1:])


def run_experiment(experiment: Experiment) -> RunResult:
    return experiment.framework.run(experiment.setup)


def experiment_summary(experiment: Experiment, result: RunResult, decay_per_s: float) -> dict[str, Any]:
    spec, setup = experiment.spec, experiment.setup
    cost = setup.cost_model
    return {
        **summarize(result, decay_per_s=decay_per_s),
        "dataset": setup.stream.dataset.name,
        "stream": setup.stream.name,
        "model": spec.model,
        "arrival": spec.arrival,
        "arrival_interval_s": experiment.arrival_interval_s,
        "sample_step_s": cost.sample_step_s,
        "step_fixed_s": cost.step_fixed_s,
        "row_step_s": cost.forward_s + cost.backward_s,
        "profile_source": setup.profile.source,
        "profile_device": setup.profile.device,
        "seed": spec.seed,
        "buffer_samples": setup.algorithm.buffer_samples,
        "provenance": experiment.made_from,
        "memory_budget": None if setup.memory_budget is None else setup.memory_budget.to_json(),
    }
