"""`check_run`'s checkpoint rule: a run is checkpointed only when the algorithm's `state_dict`
keeps all it learns — adaptive freezing and every sampler now, LwF's teacher and MAS's
importances not (one line naming what would be lost)."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor.distributed.options import DistributedOptions
from executor.distributed.rank import check_run
from executor.ocl.algorithms import AlgorithmConfig
from planner.errors import FerretError
from tests.executor.distributed.pipelines import owner_plan
from tests.executor.replay import fixtures

ONE_OWNER = owner_plan(fixtures.plan((0, 2, 3), workers=2, interval_s=1.0), (0, 0))  # MIR, LwF, MAS may run
CHECKPOINTED = DistributedOptions(checkpoint_every=5, checkpoint_dir=Path("ckpt"))


@pytest.mark.parametrize(
    "config",
    [
        AlgorithmConfig(name="vanilla", freezing="adaptive"),
        AlgorithmConfig(name="er", freezing="adaptive", sampler="similarity-aware"),
        AlgorithmConfig(name="mir", sampler="class-balanced"),
    ],
)
def test_what_state_dict_keeps_is_checkpointed(config):
    check_run(ONE_OWNER, config, CHECKPOINTED, 1)


@pytest.mark.parametrize(("name", "lost"), [("lwf", "LwF's teacher"), ("mas", "MAS's importances and anchor")])
@pytest.mark.parametrize("options", [CHECKPOINTED, DistributedOptions(resume=Path("ckpt"))])
def test_what_it_does_not_keep_is_refused(name, lost, options):
    with pytest.raises(FerretError, match=f"checkpoints of {name} do not keep {lost}$"):
        check_run(ONE_OWNER, AlgorithmConfig(name=name), options, 1)
    check_run(ONE_OWNER, AlgorithmConfig(name=name), DistributedOptions(), 1)  # without checkpoints: runs
