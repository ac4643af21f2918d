"""What the distributed executor refuses of a batched strategy before any rank starts (`check_run`):
a sequential learner in real time; GPipe and 1F1B-flush run in real time (with checkpoints too)
and along a trace."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor.distributed.options import DistributedOptions
from executor.distributed.rank import check_run
from executor.ocl.algorithms import AlgorithmConfig
from planner.errors import FerretError
from sim.strategies import sequential_plan
from tests.executor.distributed.pipelines import owner_plan
from tests.executor.replay import fixtures

VANILLA = AlgorithmConfig(name="vanilla")


def batched_plan(strategy: str):
    return owner_plan(fixtures.plan((0, 2, 3), strategy=strategy, minibatch=3), (0, 1))


@pytest.mark.parametrize("strategy", ["gpipe", "1f1b"])
def test_gpipe_and_1f1b_flush_run_in_real_time_and_along_a_trace(strategy):
    check_run(batched_plan(strategy), VANILLA, DistributedOptions(), 2)
    check_run(batched_plan(strategy), VANILLA, DistributedOptions(checkpoint_every=5, checkpoint_dir=Path("c")), 2)
    check_run(batched_plan(strategy), VANILLA, DistributedOptions(follow_trace=Path("t.jsonl")), 2)


def test_a_sequential_learner_runs_only_along_a_trace():
    plan = sequential_plan(3, 1.0, "1-skip")
    with pytest.raises(FerretError, match="1-skip is a sequential learner.*--follow-trace"):
        check_run(plan, VANILLA, DistributedOptions(), 1)
    check_run(plan, VANILLA, DistributedOptions(follow_trace=Path("t.jsonl")), 1)
