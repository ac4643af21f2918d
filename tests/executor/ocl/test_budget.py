"""Byte and FLOP budgets (SPEC §10.1): the split adds up, capacity follows it, runs stay inside it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.ledger import module_bytes, optimizer_state_bytes
from executor.models import build_model
from executor.ocl.algorithms import AlgorithmConfig
from executor.ocl.budget import StoredLedger, plan_memory
from executor.ocl.experiment import RunSpec, experiment_summary, prepare, run_experiment
from executor.ocl.frameworks import FrameworkOptions
from executor.ocl.learner import Learner, OptimizerConfig
from executor.ocl.samplers import SimilarityAwareSampler
from planner.errors import FerretError

DIGIT_BYTES = 64


def mlp(hidden: int) -> torch.nn.Module:
    return build_model("mlp", (1, 8, 8), 10, seed=0, hidden=(hidden,))


def plan(budget: int, model: torch.nn.Module, name: str = "er", sampler: str | None = None, held: int = 1, **kw):
    return plan_memory(
        budget,
        model=model,
        optimizer=OptimizerConfig(),
        algorithm=AlgorithmConfig(name=name, sampler=sampler),
        num_classes=10,
        bytes_per_sample=DIGIT_BYTES,
        held_samples=held,
        **kw,
    )


def adam_bytes_after_one_step(model: torch.nn.Module) -> int:
    learner = Learner(model, OptimizerConfig(), AlgorithmConfig(), num_classes=10, bytes_per_sample=64, rng=None)  # type: ignore[arg-type]
    learner.apply(learner.prepare(torch.zeros(2, 1, 8, 8), torch.tensor([0, 1])))
    return optimizer_state_bytes(learner.optimizer)


def test_the_total_is_the_sum_of_its_parts_and_each_part_is_what_the_run_stores():
    model = mlp(16)
    split = plan(200_000, model, held=3)
    parts = split.parts
    assert split.total_bytes == sum(parts.values()) <= 200_000
    assert split.to_json()["unused_bytes"] == 200_000 - split.total_bytes < DIGIT_BYTES
    assert parts["weights"] == module_bytes(model)
    assert parts["optimizer"] == adam_bytes_after_one_step(mlp(16))
    assert parts["window"] == 3 * DIGIT_BYTES
    assert parts["replay"] == split.replay_capacity * DIGIT_BYTES
    lwf = plan(200_000, model, "lwf").parts
    assert lwf["teacher"] == module_bytes(model) and "replay" not in lwf
    mas = plan(200_000, model, "mas").parts
    assert mas["importance"] == 3 * sum(p.numel() * 4 for p in model.parameters())


def test_replay_capacity_shrinks_exactly_as_the_model_or_the_extra_state_grows():
    budget = 300_000
    small, large = mlp(16), mlp(32)

    def fixed(model: torch.nn.Module) -> int:
        return module_bytes(model) + adam_bytes_after_one_step(model) + DIGIT_BYTES  # + the window

    for model in (small, large):
        assert plan(budget, model).replay_capacity == (budget - fixed(model)) // DIGIT_BYTES
    grown = module_bytes(large) - module_bytes(small)
    assert grown > 0 and plan(budget, large).replay_capacity < plan(budget, small).replay_capacity
    # Extra state: the similarity-aware sampler's statistics (fixed) and one use count per slot.
    state_fixed, per_slot = SimilarityAwareSampler.state_bytes(small, 10)
    assert per_slot == 4 and state_fixed > 0
    aware = plan(budget, small, sampler="similarity-aware")
    assert aware.replay_capacity == (budget - fixed(small) - state_fixed) // (DIGIT_BYTES + per_slot)
    assert aware.parts["sampler"] == state_fixed + per_slot * aware.replay_capacity
    # Camel's own memory shares what is left, one capacity for both.
    both = plan(budget, small, framework_memories=1)
    assert both.replay_capacity == (budget - fixed(small)) // (2 * DIGIT_BYTES)
    assert both.parts["camel_replay"] == both.parts["replay"]


def test_impossible_budgets_are_one_clear_line():
    model = mlp(16)
    with pytest.raises(FerretError, match=r"less than the model itself \(\d+ B\)"):
        plan(1000, model)
    with pytest.raises(FerretError, match="cannot hold the run's fixed state"):
        plan(module_bytes(model) + 10, model)
    with pytest.raises(FerretError, match="less than one sample"):
        plan(module_bytes(model) + adam_bytes_after_one_step(model) + DIGIT_BYTES + 10, model)
    assert plan(module_bytes(model) + adam_bytes_after_one_step(model) + DIGIT_BYTES, model, "vanilla").total_bytes


def test_the_stored_ledger_refuses_to_exceed_its_limit():
    ledger = StoredLedger(limit=100)
    ledger.alloc("weights", 60)
    ledger.alloc("activations", 500)  # transient: not stored state
    ledger.set("replay", 40)
    assert ledger.stored == ledger.stored_peak == 100
    with pytest.raises(RuntimeError, match="exceeds the memory budget of 100 B"):
        ledger.alloc("sampler", 1)


def budget_run(framework: str, algorithm: str, slots: int, slack: int):
    spec = RunSpec(
        framework=framework,
        algorithm=AlgorithmConfig(name=algorithm, mir_candidates=6),
        framework_options=FrameworkOptions(batch_size=4, window=8),
        dataset="digits",
        stream="blurry",
        model="mlp",
        samples=60,
        eval_every=30,
        cost_batch=1,
        memory_budget_bytes=0,
    )
    # The budget: the run's own fixed state, `slots` replay slots and `slack` bytes.
    probe = prepare(RunSpec(**{**spec.__dict__, "memory_budget_bytes": 10**9}))
    assert probe.setup.memory_budget is not None
    split = probe.setup.memory_budget
    budget = split.fixed_bytes + slots * split.slot_bytes + slack % max(split.slot_bytes, 1)
    experiment = prepare(RunSpec(**{**spec.__dict__, "memory_budget_bytes": budget}))
    return experiment, experiment_summary(experiment, run_experiment(experiment), decay_per_s=1.0)


@settings(max_examples=12, deadline=None)
@given(
    framework=st.sampled_from(["oracle", "budgeted", "random-n", "camel"]),
    algorithm=st.sampled_from(["er", "mir", "alsar", "lwf", "mas"]),
    slots=st.integers(1, 40),
    slack=st.integers(0, 200),
)
def test_memory_never_exceeds_the_byte_budget(framework, algorithm, slots, slack):
    experiment, summary = budget_run(framework, algorithm, slots, slack)
    split = experiment.setup.memory_budget
    assert split is not None
    assert split.replay_capacity == (slots if split.slot_bytes else 0)
    # StoredLedger raised inside the run if the stored state ever passed the budget; and:
    assert summary["stored_peak_bytes"] <= split.budget_bytes
    for category, peak in summary["peak_memory_by_category"].items():
        if category in split.parts:
            assert peak <= split.parts[category], category
    assert summary["memory_budget"]["total_bytes"] == sum(split.parts.values()) <= split.budget_bytes


def test_budgeted_framework_spends_iterations_per_sample_exactly():
    spec = RunSpec(
        framework="budgeted",
        algorithm=AlgorithmConfig(name="er", buffer_samples=100),
        framework_options=FrameworkOptions(batch_size=4),
        dataset="digits",
        model="mlp",
        samples=40,
        cost_batch=1,
    )
    nominal = None
    for ratio, steps in ((1, 40), (0.25, 10), (2.5, 100)):
        base = prepare(spec)
        nominal = 3 * 4 * base.setup.cost_model.forward_flops  # a 4-row ER step
        experiment = prepare(RunSpec(**{**spec.__dict__, "compute_budget_flops": ratio * nominal}))
        summary = experiment_summary(experiment, run_experiment(experiment), decay_per_s=1.0)
        assert summary["steps"] == steps and summary["iterations_per_sample"] == pytest.approx(ratio)
        assert summary["trained"] == 40
        # Pending data never exceed ceil(1/ips) (the framework's window in a memory budget).
        assert summary["peak_memory_by_category"]["window"] == math.ceil(1 / ratio) * DIGIT_BYTES
    assert nominal is not None
    with pytest.raises(FerretError, match="spent by the budgeted framework"):
        prepare(RunSpec(**{**spec.__dict__, "framework": "oracle", "compute_budget_flops": 1e6}))


def test_saved_compute_buys_more_steps_only_when_asked():
    runs = {}
    for spend in (False, True):
        spec = RunSpec(
            framework="budgeted",
            algorithm=AlgorithmConfig(name="alsar", buffer_samples=200, unfreeze_rate=0.0),
            framework_options=FrameworkOptions(batch_size=8),
            dataset="digits",
            stream="blurry",
            model="mnistnet",
            samples=200,
            cost_batch=1,
            compute_budget_flops=1.0,  # replaced below
            spend_saved_compute=spend,
        )
        probe = prepare(RunSpec(**{**spec.__dict__, "compute_budget_flops": None, "spend_saved_compute": False}))
        nominal = 3 * 8 * probe.setup.cost_model.forward_flops
        experiment = prepare(RunSpec(**{**spec.__dict__, "compute_budget_flops": nominal}))
        runs[spend] = experiment_summary(experiment, run_experiment(experiment), decay_per_s=1.0)
    plain, spent = runs[False], runs[True]
    assert plain["steps"] == 200 and plain["frozen_step_fraction"] > 0
    assert plain["train_flops_per_sample"] < plain["compute_budget_flops_per_sample"]  # freezing saved some
    assert spent["steps"] > plain["steps"]
    # Reinvested, the budget is spent (up to the bookkeeping and the last unfinished iteration).
    assert spent["train_flops"] == pytest.approx(200 * spent["compute_budget_flops_per_sample"], rel=0.05)


def test_switching_freezing_on_does_not_shift_the_replay_draws():
    from executor.ledger import ByteLedger
    from executor.ocl.algorithms import AlgorithmContext, build_algorithm

    draws = []
    for freezing in ("none", "adaptive"):
        context = AlgorithmContext(10, 64, ByteLedger(), np.random.default_rng(0), 1e-3)
        algo = build_algorithm(AlgorithmConfig(name="er", freezing=freezing, buffer_samples=5), context)
        algo.after_update(None, algo.observe(None, torch.zeros(20, 1), torch.arange(20) % 10))  # type: ignore[arg-type]
        draws.append((algo.buffer.labels.tolist(), algo.buffer.sample_indices(3).tolist()))
    assert draws[0] == draws[1]
