"""The one mapping from a run's OCL algorithm to the passes the twin charges beyond the training
step (`twin_passes`, applied by the pipeline framework's `twin_config`; sim/algorithm_passes.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from executor.ocl.algorithms import AlgorithmConfig
from executor.ocl.algorithms.base import twin_passes
from executor.ocl.frameworks.oracle import Oracle
from executor.ocl.frameworks.pipeline import PipelineFramework, PipelineOptions, twin_config
from executor.ocl.learner import OptimizerConfig
from sim import SimConfig
from sim.algorithm_passes import NO_PASSES, AlgorithmPasses
from tests.executor.replay import fixtures

TWO_TASKS = np.repeat([0, 1], 10)


def test_vanilla_and_er_charge_nothing():
    for name in ("vanilla", "er"):
        for rows in (1, 3):
            assert twin_passes(AlgorithmConfig(name=name), rows, TWO_TASKS) is NO_PASSES


def test_lwf_runs_its_teacher_with_every_forward_from_its_first_teacher():
    # the first consolidation after datum 0: the second task's first datum, or `consolidate_every`
    assert twin_passes(AlgorithmConfig(name="lwf"), 1, TWO_TASKS) == AlgorithmPasses(with_forward=1.0, from_sample=10)
    every = AlgorithmConfig(name="lwf", consolidate_every=4)
    assert twin_passes(every, 1, TWO_TASKS) == AlgorithmPasses(with_forward=1.0, from_sample=4)
    # one task, no periodic consolidation: never a teacher
    assert twin_passes(AlgorithmConfig(name="lwf"), 1, np.zeros(20, dtype=np.int64)) is NO_PASSES


def test_mas_runs_a_forward_and_backward_of_its_new_row_after_the_backward():
    assert twin_passes(AlgorithmConfig(name="mas"), 1, TWO_TASKS) == AlgorithmPasses(
        after_forwards=1.0, after_backwards=1.0
    )


def test_mir_scores_before_the_forward_in_units_of_the_datums_rows():
    # 3 rows a datum (1 new + 2 replayed); per stage: forwards of 1 new row and twice 8 candidates,
    # the virtual step's backward of the new row
    config = AlgorithmConfig(name="mir", replay_batch=2, mir_candidates=8)
    assert twin_passes(config, 3, TWO_TASKS) == AlgorithmPasses(before_forwards=17 / 3, before_backwards=1 / 3)


def test_twin_config_sets_the_runs_algorithm_whatever_the_sim_config_said():
    given = SimConfig(time_scale=2.0, algorithm_passes=AlgorithmPasses(with_forward=5.0))
    lwf = fixtures.setup(algorithm="lwf", consolidate_every=7)
    assert twin_config(lwf, given) == dataclasses.replace(given, algorithm_passes=AlgorithmPasses(1.0, from_sample=7))
    vanilla = fixtures.setup()
    assert twin_config(vanilla, given) == dataclasses.replace(given, algorithm_passes=NO_PASSES)
    plain = SimConfig()
    assert twin_config(vanilla, plain) is plain  # vanilla, ER: the twin's inputs as they were
    er = fixtures.setup(algorithm="er", replay_batch=3, buffer_samples=8)
    assert twin_config(er, given) == dataclasses.replace(given, time_scale=8.0, algorithm_passes=NO_PASSES)


@pytest.mark.parametrize("algorithm", ["lwf", "mas"])
def test_a_replay_run_with_the_passes_charged_still_is_the_oracle_bit_for_bit(algorithm):
    # `ferret run --plan --mode replay`: one stage, data slower than a step with its passes (3 layers:
    # 3 s forward, 6 s backward, 3 s teacher or 9 s importance pass, < 20 s between arrivals).
    optimizer = OptimizerConfig("adam")
    oracle_setup = fixtures.setup(interval_s=20.0, algorithm=algorithm, optimizer=optimizer, consolidate_every=7)
    oracle = Oracle().run(oracle_setup)
    replay_setup = fixtures.setup(interval_s=20.0, algorithm=algorithm, optimizer=optimizer, consolidate_every=7)
    options = PipelineOptions(plan=fixtures.plan((0, 3), interval_s=20.0), drain=True)
    result = PipelineFramework(options).run(replay_setup)
    a, b = oracle_setup.model.state_dict(), replay_setup.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (result.predicted == oracle.predicted).all()
    # the twin charged the passes: LwF's update comes 3 s later from datum 7 on; MAS's does not move
    passes = result.details["sim_algorithm_passes"]
    assert passes == result.details["sim_config"]["algorithm_passes"]
    if algorithm == "lwf":
        assert passes["with_forward"] == 1.0 and passes["from_sample"] == 7
        assert result.details["sim_latency_p50_s"] == 12.0
    else:
        assert (passes["after_forwards"], passes["after_backwards"]) == (1.0, 1.0)
        assert result.details["sim_latency_p50_s"] == 9.0
