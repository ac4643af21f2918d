"""Memory of a replayed pipeline: the stages' ledger equals the twin's, conventions are explicit."""

from __future__ import annotations

import pytest

from executor.compensation import CompensationConfig
from executor.replay import ReplayExecutor, execution_plan, simulate_rows
from planner.plan import Plan
from planner.strategies import make_plan
from sim.config import SimConfig
from tests.executor.replay import fixtures


def replay(plan: Plan, compensation: str = "none", drain: bool = False, **setup_options):
    setup = fixtures.setup(n=40, interval_s=1.0, **setup_options)
    rows, sim = simulate_rows(plan, setup.profile, setup.stream.arrival_s, 0, SimConfig(exclusive_devices=True))
    executor = ReplayExecutor(setup, execution_plan(plan), CompensationConfig(compensation))
    return executor, executor.run(rows, drain=drain), sim


def strategy_plan(strategy: str, **options) -> Plan:
    setup = fixtures.setup()
    return make_plan(strategy, setup.profile, 1.0, partition=(0, 1, 2, 3), **options).plan


@pytest.mark.parametrize(
    "plan",
    [
        pytest.param(strategy_plan("pipedream"), id="pipedream"),
        pytest.param(strategy_plan("pipedream-2bw"), id="pipedream-2bw"),
        pytest.param(strategy_plan("gpipe", minibatch=3), id="gpipe"),
        pytest.param(strategy_plan("1f1b", minibatch=3), id="1f1b"),
        pytest.param(fixtures.plan((0, 1, 2, 3), workers=3, interval_s=1.0), id="ferret-3-workers"),
        pytest.param(fixtures.plan((0, 1, 2, 3), workers=3, interval_s=1.0, omission=(2, 1, 0)), id="ferret-omission"),
    ],
)
def test_weights_and_activations_peak_equals_the_twins(plan):
    # The twin charges what (F4) counts — live weights, stashed versions, stored activations —
    # with the profile's sizes; the StageRuntimes measure the real tensors. Same schedule, same peak.
    executor, result, sim = replay(plan)
    assert executor.ledger.f4_peak == sim.peak_memory_bytes
    assert result.details["measured_weights_activations_peak_bytes"] == sim.peak_memory_bytes


def test_saved_tensor_convention_counts_what_autograd_keeps():
    # mlp (8, 8) on 6 features, one stage per layer. Stage 0: Flatten→Linear→ReLU keeps the
    # ReLU output (the Linear's input is the datum, counted as "inputs"): as its output, Δ 0.
    # Stage 1: Linear→ReLU keeps its input (8 floats) and the ReLU output: Δ = +32 B.
    # Stage 2: Linear keeps its input (8 floats), its output is 3 logits: Δ = 32 − 12 = +20 B.
    executor, result, _ = replay(fixtures.plan((0, 1, 2, 3), workers=3, interval_s=1.0), drain=True)
    assert executor._saved._delta == {(0, 1): 0, (1, 1): 32, (2, 1): 20}
    assert executor.ledger.saved_delta == 0  # drained: every stored datum was back-propagated
    layer_outputs = result.details["measured_peak_memory_layer_outputs_bytes"]
    assert layer_outputs < result.peak_memory_bytes <= layer_outputs + 3 * 3 * 52


def test_inputs_window_and_gradients_are_in_the_ledger():
    executor, result, _ = replay(fixtures.plan((0, 1, 2, 3), workers=3, interval_s=1.0))
    peaks = result.peak_memory_by_category
    assert peaks["inputs"] >= 6 * 4 + 8  # one datum's features (float32) and label (int64)
    assert peaks["gradients"] > 0 and peaks["optimizer"] > 0
    assert executor.ledger.held("gradients") == 0  # autograd's gradients live only inside a backward


def test_only_stages_that_go_stale_hold_compensator_buffers():
    # One worker, three stages: stages 0 and 1 see stale gradients, the last stage never does,
    # so only the first two keep Iter-Fisher's λ-tuning buffers (v_r, v_a: 2 w_j each).
    plan = fixtures.plan((0, 1, 2, 3), workers=1, interval_s=1.0)
    executor, result, _ = replay(plan, compensation="iter-fisher")
    assert executor.compensated_stages == [0, 1]
    assert result.details["compensated_stages"] == [0, 1]
    w = [stage.layout.nbytes for stage in executor.stages]
    assert executor.ledger.held("compensator") == 2 * (w[0] + w[1])
    assert [stage.compensator.name for stage in executor.stages] == ["iter-fisher", "iter-fisher", "none"]
