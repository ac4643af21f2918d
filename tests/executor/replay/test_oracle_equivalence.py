"""One stage, one worker, data slower than a step: the replay is the sequential Oracle, exactly."""

from __future__ import annotations

import pytest
import torch

from executor.ocl.frameworks.oracle import Oracle
from executor.ocl.learner import OptimizerConfig
from executor.replay import ReplayExecutor, simulate_rows
from sim.config import SimConfig
from tests.executor.replay import fixtures


def replay(run_setup, plan, drain=True, **kwargs):
    rows, _ = simulate_rows(plan, run_setup.profile, run_setup.stream.arrival_s, run_setup.seed, SimConfig())
    executor = ReplayExecutor(run_setup, plan, **kwargs)
    return executor, executor.run(rows, drain=drain)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize(
    ("algorithm", "optimizer"),
    [
        ("vanilla", OptimizerConfig("adam")),
        ("vanilla", OptimizerConfig("sgd", lr=0.05, momentum=0.9)),
        ("er", OptimizerConfig("adam")),
        ("lwf", OptimizerConfig("adam")),
        ("mas", OptimizerConfig("sgd", lr=0.05)),
    ],
)
def test_one_stage_replay_reproduces_the_oracle_bit_for_bit(algorithm, optimizer):
    # A step takes 3 layers × 3 s = 9 s < the 10 s between arrivals: every datum is trained, in
    # order, before the next arrives — the Oracle's schedule, with delays the Oracle ignores.
    options = {"buffer_samples": 8} if algorithm == "er" else {}
    if algorithm in ("lwf", "mas"):
        options["consolidate_every"] = 7
    oracle_setup = fixtures.setup(algorithm=algorithm, optimizer=optimizer, **options)
    oracle = Oracle().run(oracle_setup)
    replay_setup = fixtures.setup(algorithm=algorithm, optimizer=optimizer, **options)
    executor, result = replay(replay_setup, fixtures.plan((0, 3)))
    assert_same_weights(oracle_setup.model, replay_setup.model)
    assert (result.predicted == oracle.predicted).all()
    assert result.train_flops == oracle.train_flops
    assert executor.updates == [30]


def test_without_drain_the_last_update_lands_after_the_stream_and_is_not_applied():
    replay_setup = fixtures.setup(n=30)
    executor, result = replay(replay_setup, fixtures.plan((0, 3)), drain=False)
    assert executor.updates == [29]  # datum 29's step ends 9 s after the last arrival
    assert result.trained.sum() == 29 and not result.trained[29]
    short = fixtures.setup(n=29)
    Oracle().run(short)
    assert_same_weights(short.model, replay_setup.model)


def test_two_stages_without_overlap_train_like_the_oracle():
    # Stages hand the gradient down through ⟨out, grad⟩ and MAS's penalty is taken per stage on
    # the stashed weights: the same math as one model, up to float summation order.
    for algorithm in ("vanilla", "mas"):
        options = {"consolidate_every": 5} if algorithm == "mas" else {}
        oracle_setup = fixtures.setup(algorithm=algorithm, **options)
        Oracle().run(oracle_setup)
        replay_setup = fixtures.setup(algorithm=algorithm, **options)
        executor, _ = replay(replay_setup, fixtures.plan((0, 1, 3)))
        assert executor.updates == [30, 30]
        expected, got = oracle_setup.model.state_dict(), replay_setup.model.state_dict()
        for name in expected:
            torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-6, msg=f"{algorithm}: {name}")
