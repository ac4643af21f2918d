"""GPipe / 1F1B-flush replayed: one update per stage per mini-batch, the batch's mean gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from executor.replay import ReplayExecutor, execution_plan, simulate_rows
from sim.config import SimConfig
from tests.executor.replay import fixtures


@pytest.mark.parametrize("strategy", ["gpipe", "1f1b"])
def test_a_synchronous_pipeline_steps_with_each_mini_batch_mean(strategy):
    # Mini-batches of 3 consecutive data; a pass (3 + 2 − 1 stages) × 9 s = 36 s is shorter than
    # the 3 × 20 s a batch takes to fill, so nothing is dropped and batches run in order.
    plan = fixtures.plan((0, 1, 3), interval_s=20.0, strategy=strategy, minibatch=3)
    setup = fixtures.setup(n=30, interval_s=20.0)
    reference = fixtures.setup(n=30, interval_s=20.0).model
    rows, sim = simulate_rows(plan, setup.profile, setup.stream.arrival_s, 0, SimConfig())
    assert sim.drop_count == 0
    executor = ReplayExecutor(setup, execution_plan(plan))
    executor.run(rows, drain=True)
    assert executor.updates == [10, 10]
    assert executor.records.staleness == [[30], [30]]  # synchronous: never stale

    optimizer = torch.optim.Adam(reference.parameters(), lr=1e-3)
    data = setup.stream.dataset
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    for start in range(0, 30, 3):
        optimizer.zero_grad()
        F.cross_entropy(reference(x[start : start + 3]), y[start : start + 3]).backward()
        optimizer.step()
    for name, expected in reference.state_dict().items():
        torch.testing.assert_close(setup.model.state_dict()[name], expected, rtol=1e-5, atol=1e-6, msg=name)


def test_a_short_last_mini_batch_is_flushed_with_its_own_mean():
    plan = fixtures.plan((0, 3), interval_s=20.0, strategy="gpipe", minibatch=4)
    setup = fixtures.setup(n=10, interval_s=20.0)
    rows, _ = simulate_rows(plan, setup.profile, setup.stream.arrival_s, 0, SimConfig())
    executor = ReplayExecutor(setup, execution_plan(plan))
    executor.run(rows, drain=True)
    assert executor.updates == [3]  # 4 + 4 + a last batch of 2 at the end of the stream
    assert executor.records.trained_at().size == 10 and (executor.records.update_s[:, 0] > 0).all()
