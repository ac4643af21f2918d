"""The per-stage split of MIR's scoring and MAS's importance pass computes the whole model's
numbers bit for bit (the distributed executor runs these per-stage bodies on several ranks, the
replay in one process); the whole-model versions are the sequential learner's."""

from __future__ import annotations

import copy

import torch

from executor.compensation import CompensationConfig
from executor.ocl.algorithms import build_algorithm
from executor.ocl.batch import TrainBatch
from executor.pipeline.accounting import PipelineLedger
from executor.pipeline.flight import Flight
from executor.pipeline.scoring import Labels
from executor.pipeline.stage_worker import StageWorker
from tests.executor.replay import fixtures

PARTITION = (0, 1, 2, 3)  # one layer per stage


def stage_worker(setup, algorithm) -> StageWorker:
    plan = fixtures.plan(PARTITION)
    P = plan.num_stages
    return StageWorker(
        setup.model, plan, range(P), setup.optimizer, [CompensationConfig()] * P, algorithm, PipelineLedger(),
        [1.0] * P,
    )  # fmt: skip


def test_mir_scores_stage_by_stage_as_the_whole_model_does():
    setup = fixtures.setup(algorithm="mir", buffer_samples=8)
    algorithm = build_algorithm(setup.algorithm, setup.algorithm_context(PipelineLedger()))
    whole = copy.deepcopy(setup.model)
    worker = stage_worker(setup, algorithm)
    x = torch.from_numpy(setup.stream.dataset.x_train[:12])
    y = torch.from_numpy(setup.stream.dataset.y_train[:12])
    new_x, new_y, cand_x, cand_y = x[:1], y[:1], x[1:], y[1:]
    staged = worker.scoring.score_here(new_x, cand_x, Labels(new_y, None, cand_y))
    expected = algorithm.interference(whole, new_x, new_y, None, cand_x, cand_y)
    assert torch.equal(staged, expected) and staged.abs().sum() > 0
    # Nothing held: every stage's version was released, no pass left anything behind.
    assert all(r.versions.held == 1 and r.versions.current.refs == 0 for r in worker.stages.values())
    assert not worker.scoring._graphs and not worker.scoring._virtual and not worker.scoring._before


def test_mas_importance_stage_by_stage_is_the_whole_models():
    setup = fixtures.setup(algorithm="mas")
    staged_algo = build_algorithm(setup.algorithm, setup.algorithm_context(PipelineLedger()))
    whole_algo = build_algorithm(setup.algorithm, setup.algorithm_context(PipelineLedger()))
    whole = copy.deepcopy(setup.model)
    worker = stage_worker(setup, staged_algo)
    x = torch.from_numpy(setup.stream.dataset.x_train[:3])
    y = torch.from_numpy(setup.stream.dataset.y_train[:3])
    batch = TrainBatch.fresh(x, y)
    worker.finish(Flight(batch, 0, 0, len(PARTITION) - 1, 0))
    whole_algo.after_update(whole, batch)
    assert staged_algo.importance_sum.keys() == whole_algo.importance_sum.keys()
    for name, value in whole_algo.importance_sum.items():
        assert torch.equal(staged_algo.importance_sum[name], value), name
    assert staged_algo.samples == {0: 3, 1: 3, 2: 3} and whole_algo.samples == {0: 3}
    assert staged_algo.passes == whole_algo.passes == 3
