"""Adaptive layer freezing in a replayed pipeline (aL-SAR, docs/ocl.md "In pipelines").

A frozen prefix reduces the lower stages' backwards to releases; the replay tolerates the
schedule it changes (trace_checks.py) and still checks every row; one stage trains exactly like
the sequential learner, freezing and all.
"""

from __future__ import annotations

import numpy as np
import pytest

from executor.compensation import CompensationConfig
from executor.ocl.frameworks.oracle import Oracle
from executor.ocl.freezing import AdaptiveFreezing
from executor.ocl.learner import OptimizerConfig
from executor.replay import ReplayExecutor, simulate_rows
from sim.config import SimConfig
from sim.trace import MemoryTrace
from tests.executor.replay import fixtures
from tests.executor.replay.test_oracle_equivalence import assert_same_weights

CYCLE = (0, 0, 0, 1, 2, 0, 2, 1, 2, 0, 1)  # layers frozen, datum by datum (3 layers: at most 2)
PIPELINED = fixtures.plan((0, 1, 2, 3), workers=2, interval_s=1.5)
TECHNIQUES = fixtures.plan(
    (0, 1, 2, 3), workers=2, interval_s=1.5, accumulation=(2, 1, 1), omission=(1, 0, 0), recompute=True
)


@pytest.fixture
def scripted(monkeypatch):
    """Freezing decides by `CYCLE` (the decision itself is tested in tests/executor/ocl); returns
    the decisions in the order they were made."""
    made: list[int] = []

    def choose(self, logits, labels, classifier):
        frozen = CYCLE[self.batches % len(CYCLE)]  # each run's own cycle
        made.append(frozen)
        self.batches += 1
        self.frozen_batches += frozen > 0
        self.frozen_layers_total += frozen
        return frozen

    monkeypatch.setattr(AdaptiveFreezing, "choose", choose)
    return made


def replay(plan, n=40, interval_s=1.5, compensation="none", **algorithm):
    setup = fixtures.setup(n=n, interval_s=interval_s, **algorithm)
    rows, _ = simulate_rows(plan, setup.profile, setup.stream.arrival_s, setup.seed, SimConfig(exclusive_devices=True))
    recorder = MemoryTrace()
    executor = ReplayExecutor(setup, plan, CompensationConfig(compensation), recorder)
    return executor, executor.run(rows, drain=True), rows, recorder.events()


def test_a_frozen_prefix_skips_the_lower_backwards_and_the_replay_passes_its_checks(scripted):
    executor, result, rows, measured = replay(PIPELINED, freezing="adaptive")
    frozen = np.asarray(scripted)  # in the order the last stage decided, one per datum
    assert len(frozen) == 40
    # Stage j (layer j) is released, not back-propagated, by every datum that froze ≥ j+1 layers.
    released = [int((frozen >= 1).sum()), int((frozen >= 2).sum()), 0]
    details = result.details
    assert details["frozen_backwards_per_stage"] == released
    # One datum per update here: each release leaves its update row with nothing to apply.
    assert details["trace_updates_skipped_per_stage"] == released
    assert executor.updates == [40 - k for k in released]
    # Every row of the trace still ran once (a release is the bwd row's op), and every datum trained
    # down to the highest stage its prefix left it.
    assert sum(1 for r in measured if r.kind == "bwd") == sum(1 for r in rows if r.kind == "bwd")
    assert result.trained.all() and details["partially_trained"] == released[0]
    assert details["frozen_step_fraction"] == pytest.approx(np.mean(frozen > 0))
    # The staleness histogram counts the gradients applied: releases are not among them.
    assert sum(sum(h) for h in details["staleness_histogram"]) == 3 * 40 - sum(released)


def test_groups_that_lost_gradients_apply_what_they_hold_and_versions_run_behind(scripted):
    """Accumulation (stage 0 steps every two data), omission, recomputation and compensation: an
    update row applies what its group still holds, none when both data froze stage 0."""
    executor, result, rows, _ = replay(TECHNIQUES, compensation="iter-fisher", freezing="adaptive")
    details = result.details
    traced = [sum(1 for r in rows if r.kind == "update" and r.stage == j) for j in range(3)]
    skipped = details["trace_updates_skipped_per_stage"]
    assert [u + s for u, s in zip(executor.updates, skipped, strict=True)] == traced
    assert details["frozen_backwards_per_stage"][0] > 0 and skipped[1:] == details["frozen_backwards_per_stage"][1:]
    admitted = executor.records.bottom >= 0  # the schedule drops some data
    assert admitted.sum() > 30 and result.trained[admitted].all()


@pytest.mark.parametrize(
    ("algorithm", "options"),
    [
        ("vanilla", {"freezing": "adaptive"}),
        ("er", {"freezing": "adaptive", "buffer_samples": 8}),
        # Past the sampler's 50-sample warm-up: similarity-aware draws from statistics fed stage by stage.
        ("alsar", {"buffer_samples": 12, "n": 70}),
    ],
)
@pytest.mark.parametrize("decisions", ["scripted", "adaptive"])
def test_one_stage_with_freezing_trains_bit_for_bit_like_the_sequential_learner(algorithm, options, decisions, request):
    if decisions == "scripted":
        request.getfixturevalue("scripted")
    optimizer = OptimizerConfig("adam", lr=0.05)
    oracle_setup = fixtures.setup(algorithm=algorithm, optimizer=optimizer, unfreeze_rate=0.0, **options)
    oracle = Oracle().run(oracle_setup)
    replay_setup = fixtures.setup(algorithm=algorithm, optimizer=optimizer, unfreeze_rate=0.0, **options)
    plan = fixtures.plan((0, 3))
    rows, _ = simulate_rows(plan, replay_setup.profile, replay_setup.stream.arrival_s, 0, SimConfig())
    executor = ReplayExecutor(replay_setup, plan)
    result = executor.run(rows, drain=True)
    assert_same_weights(oracle_setup.model, replay_setup.model)
    assert (result.predicted == oracle.predicted).all()
    assert result.train_flops == pytest.approx(oracle.train_flops, rel=1e-12)
    assert result.details["frozen_step_fraction"] == oracle.details["frozen_step_fraction"]
    assert oracle.details["frozen_step_fraction"] > (0.5 if decisions == "scripted" else 0.3)
    if algorithm == "alsar":
        similarity = executor.algorithm.sampler.similarity
        assert similarity is not None and similarity.bias.all() and np.abs(similarity.matrix()).sum() > 0
