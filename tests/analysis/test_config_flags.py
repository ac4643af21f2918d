"""Every config field reaches the CLI: a flag in the command that uses the config, or a KEY of
its KEY=VALUE flag, or a `via` that names the flags setting it. A new field cannot miss it."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from analysis.cli import OneLineParser, discover_commands
from analysis.commands.run import run_spec
from analysis.run_pipeline import pipeline_options
from executor.compensation import CompensationConfig
from executor.ocl.algorithms import AlgorithmConfig
from executor.ocl.experiment import RunSpec
from executor.ocl.frameworks import FrameworkOptions
from executor.ocl.frameworks.pipeline import PipelineOptions
from executor.stage.optim import OptimizerConfig
from planner.config_field import check_bounds, field_spec
from planner.plan import Plan, WorkerConfig, default_placement
from sim.config import SimConfig

USES = [
    ("simulate", SimConfig),
    ("whatif", SimConfig),
    ("run", SimConfig),
    ("run", CompensationConfig),
    ("run", OptimizerConfig),
    ("run", AlgorithmConfig),
    ("run", FrameworkOptions),
    ("run", PipelineOptions),
    ("run", RunSpec),
]


def command_parser(name: str) -> OneLineParser:
    parser = OneLineParser(prog=f"ferret {name}")
    discover_commands()[name].add_arguments(parser)
    return parser


@pytest.mark.parametrize(("command", "cls"), USES, ids=lambda v: getattr(v, "__name__", v))
def test_every_field_has_a_flag_in_the_commands_parser(command, cls):
    parser = command_parser(command)
    actions = {option: action for action in parser._actions for option in action.option_strings}
    for f in dataclasses.fields(cls):
        spec = field_spec(f)
        assert spec is not None, f"{cls.__name__}.{f.name} is declared without config_field (no flag, no help)"
        if spec.via is not None:
            named = re.findall(r"--[a-z][a-z-]*", spec.via)
            assert all(flag in actions for flag in named), (f.name, spec.via)
        elif spec.setting_of is not None:
            action = actions[f"--{spec.setting_of}-option"]
            assert f"{f.name}: {spec.help}" in action.help, f.name
        else:
            assert f"--{spec.flag_for(f.name)}" in actions, f"{cls.__name__}.{f.name}"


def test_flags_build_the_run_spec_with_every_config_typed(tmp_path):
    args = command_parser("run").parse_args(
        ["--framework", "last-n", "--samples", "7", "--arrival-interval", "2ms", "--buffer", "1KiB",
         "--batch-size", "4", "--window", "8", "--algorithm", "er", "--replay-batch", "3", "--optimizer", "sgd",
         "--lr", "0.5", "--momentum", "0.9", "--nesterov", "--weight-decay", "1e-4", "--betas", "0.8,0.9",
         "--stream-option", "tasks=2", "--batch-profile", "b.json", "--out", str(tmp_path)]
    )  # fmt: skip
    assert pipeline_options(args) is None
    spec = run_spec(args)
    assert (spec.framework, spec.samples, spec.arrival_interval_s, spec.buffer_bytes) == ("last-n", 7, 2e-3, 1024)
    assert spec.stream_options == {"tasks": 2} and spec.batch_profile_paths == (Path("b.json"),)
    assert spec.framework_options == FrameworkOptions(batch_size=4, window=8)
    assert spec.algorithm == AlgorithmConfig(name="er", replay_batch=3)
    assert spec.optimizer == OptimizerConfig("sgd", lr=0.5, momentum=0.9, nesterov=True, weight_decay=1e-4,
                                             betas=(0.8, 0.9))  # fmt: skip
    assert spec.progress and spec.eval_every == RunSpec().eval_every


def test_budget_flags_build_the_run_spec_and_pick_the_budgeted_framework(tmp_path):
    args = command_parser("run").parse_args(
        ["--algorithm", "alsar", "--memory-budget", "2MiB", "--compute-budget", "30M", "--spend-saved-compute",
         "--sampler", "class-balanced", "--sampler-temperature", "0.5", "--freezing", "none", "--unfreeze-rate", "1",
         "--out", str(tmp_path)]
    )  # fmt: skip
    assert args.framework is None  # resolved in `run`: budgeted with a compute budget and no plan
    spec = run_spec(args)
    assert (spec.memory_budget_bytes, spec.compute_budget_flops, spec.spend_saved_compute) == (2 * 2**20, 3e7, True)
    assert spec.algorithm == AlgorithmConfig(
        name="alsar", sampler="class-balanced", sampler_temperature=0.5, freezing="none", unfreeze_rate=1.0
    )


def test_pipeline_flags_give_typed_options_with_the_plan_loaded_once(tmp_path):
    plan = Plan("ferret", (0, 2, 4), (WorkerConfig.default(0, 2),), default_placement(1, 2), 0.004)
    plan.save(tmp_path / "plan.json")
    sim_file = tmp_path / "sim.json"
    SimConfig(concurrency=3, op_overhead_s=1e-3).save(sim_file)
    args = command_parser("run").parse_args(
        ["--plan", str(tmp_path / "plan.json"), "--compensation", "iter-fisher", "--compensation-option",
         "eta_lambda=0", "--sim-config", str(sim_file), "--op-overhead", "0", "--jitter", "0.1",
         "--out", str(tmp_path / "out")]
    )  # fmt: skip
    options = pipeline_options(args)
    assert args.framework == "pipeline" and options.plan == plan and options.plan_file == tmp_path / "plan.json"
    assert options.compensation == CompensationConfig("iter-fisher", eta_lambda=0.0)
    # The file's concurrency stays; the flags override single fields (0 is a valid overhead).
    assert options.sim_config == SimConfig(concurrency=3, op_overhead_s=0.0, jitter="lognormal", jitter_sigma=0.1)
    spec = run_spec(args, options)
    assert spec.framework == "pipeline" and spec.framework_options.pipeline is options


@pytest.mark.parametrize(
    "cls", [SimConfig, CompensationConfig, OptimizerConfig, AlgorithmConfig, FrameworkOptions, RunSpec]
)
def test_every_default_is_within_its_declared_bounds(cls):
    check_bounds(cls(), cls.__name__)
