"""The twin against each strategy's closed form from the planner (docs/planner.md §5).

Balanced stages (`tf = 0.125 s`, `tb = 0.25 s` per stage, P = 4), one device per (worker,
stage), periodic arrivals. Agreements are exact or within a stated tolerance; every
difference is pinned to its cause (docs/sim.md, "Where the twin and the closed forms differ").
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from planner.closed_form import stage_shares, stage_sizes
from planner.strategies import make_plan
from sim import SimConfig, simulate
from sim.result import measured_adaptation_rate, stream_horizon
from tests.sim.builders import balanced_profile, even_partition

P = 4
TF, TB = 0.125, 0.25
PROFILE = balanced_profile(P, t_fwd=TF, t_bwd=TB)
PARTITION = even_partition(P)
DECAY = 0.5
EXCLUSIVE = SimConfig(exclusive_devices=True)


def _plan(strategy, interval, **options):
    return make_plan(strategy, PROFILE, interval, decay_per_s=DECAY, partition=PARTITION, **options)


def test_pipedream_saturated_matches_its_closed_form_within_its_wait_for_a_free_slot():
    # One worker, data every 0.1 s, one datum absorbed per 0.375 s cycle. The planner counts the
    # absorbed data at the bare pipeline delay; in the twin each waits up to one gap in front of
    # the full worker, and 1F1B phases drift, so it keeps a few percent less.
    planned = _plan("pipedream", 0.1)
    result = simulate(planned.plan, PROFILE, 4000, config=EXCLUSIVE)
    assert result.peak_memory_bytes == planned.memory_bytes
    assert 0.95 * planned.adaptation_rate < result.adaptation_rate < planned.adaptation_rate
    assert result.throughput_per_s == pytest.approx(1 / (TF + TB), rel=0.01)


def test_pipedream_2bw_keeps_the_activations_f4_does_not_count():
    planned = _plan("pipedream-2bw", 0.1)
    assert all(w.accumulation == (P - 1,) * P for w in planned.plan.workers)
    result = simulate(planned.plan, PROFILE, 4000, config=EXCLUSIVE)
    _, act, _ = stage_sizes(PROFILE, PARTITION)
    versions = [1 + math.ceil((P - 1 - j) / (P - 1)) for j in range(P)]  # 2, 2, 2, 1
    uncounted = sum((P - j - versions[j]) * int(act[j]) for j in range(P))
    assert result.peak_memory_bytes == planned.memory_bytes + uncounted
    assert 0.95 * planned.adaptation_rate < result.adaptation_rate < planned.adaptation_rate


@pytest.mark.parametrize("strategy", ["gpipe", "1f1b"])
def test_synchronous_stages_step_after_their_own_last_backward_not_at_the_flush(strategy):
    # Mini-batches of 4 every 2.8 s, a pass of (B+P-1)(tf+tb) = 2.625 s: nobody waits but for the
    # batch. The planner steps every stage at the flush; in the twin stage j steps after its own
    # last backward, j·tb earlier, so each stage's term gains exactly exp(c·j·tb).
    planned = _plan(strategy, 0.7, minibatch=4)
    result = simulate(planned.plan, PROFILE, 4000, config=EXCLUSIVE)
    shares = stage_shares(PROFILE, PARTITION)
    earlier = float((shares * np.exp(DECAY * TB * np.arange(P))).sum())
    assert result.adaptation_rate == pytest.approx(planned.adaptation_rate * earlier, rel=2e-3)
    assert result.peak_memory_bytes == planned.memory_bytes
    assert result.drop_rate == 0.0


def _fifo_batches(arrivals, batch, queue_bound, pass_s):
    """Reference: a FIFO queue of `queue_bound` feeding back-to-back passes; returns (pass end, samples)."""
    passes, queue, free_at = [], [], 0.0
    for i, t in enumerate(arrivals):
        while len(queue) >= batch and free_at <= t:  # the pipeline freed before this arrival: next pass
            passes.append((free_at + pass_s, queue[:batch]))
            queue, free_at = queue[batch:], free_at + pass_s
        if free_at <= t and len(queue) + 1 >= batch:
            members = [*queue, i][:batch]
            passes.append((t + pass_s, members))
            queue, free_at = [], t + pass_s
        elif len(queue) < queue_bound:
            queue.append(i)
    while queue:  # the stream's end flushes what is left, a smaller batch last
        passes.append((free_at + pass_s, queue[:batch]))
        queue, free_at = queue[batch:], free_at + pass_s
    return passes


def test_gpipe_slower_than_its_batches_serves_the_queue_in_order_and_the_queue_waits():
    # Batches of 4 arrive every 0.8 s but a pass takes 2.625 s. The twin's queue (bound 4) keeps the
    # first data to arrive and drops later ones: queued data wait for the running pass. The
    # planner's form assumes the batch's newest datum waits nothing, so it overrates R here.
    B, interval, samples = 4, 0.2, 600
    planned = _plan("gpipe", interval, minibatch=B)
    result = simulate(planned.plan, PROFILE, samples, config=EXCLUSIVE)
    arrivals = np.arange(samples) * interval
    update = np.full((samples, P), np.nan)
    for end, members in _fifo_batches(arrivals.tolist(), B, B, (B + P - 1) * (TF + TB)):
        for s in members:
            update[s] = end - TB * np.arange(P)  # stage j steps j·tb before the flush
    expected = measured_adaptation_rate(
        update, arrivals, stage_shares(PROFILE, PARTITION), DECAY, stream_horizon(arrivals, interval)
    )
    assert result.adaptation_rate == pytest.approx(expected, rel=1e-9)
    assert result.drop_count == int(np.isnan(update[:, 0]).sum())
    assert result.adaptation_rate < 0.6 * planned.adaptation_rate


def test_ferret_matches_f3_rescaled_to_the_data_the_stream_brings():
    for interval, workers in ((0.125, 3), (0.2, 2)):
        planned = _plan("ferret", interval)
        assert len(planned.plan.active_workers) == workers
        result = simulate(planned.plan, PROFILE, 4000, config=EXCLUSIVE)
        delivered = planned.adaptation_rate * (TF + TB) / (workers * interval)
        assert 0.95 * delivered <= result.adaptation_rate <= delivered * (1 + 1e-3)
        assert result.peak_memory_bytes == planned.memory_bytes
