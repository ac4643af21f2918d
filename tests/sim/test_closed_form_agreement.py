"""The twin against (F3)/(F4) in their own regime, and the exact differences where semantics differ.

Regime: balanced stages, arrivals exactly every `td = cycle / N`, one device per (worker,
stage), free links. There the simulated peak memory equals (F4) to the byte and the measured
adaptation rate is within 2 % of (F3) (the residue is the stream's first and last data).
docs/sim.md explains each pinned difference.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from planner.closed_form import adaptation_rate, memory_bytes, stage_shares, stage_sizes
from planner.plan import REMOVED, WorkerConfig, default_placement
from sim import SimConfig, simulate
from tests.sim.builders import balanced_profile, make_plan, plain_workers

P = 4
TF, TB = 0.125, 0.25
CYCLE = TF + TB
PROFILE = balanced_profile(P, t_fwd=TF, t_bwd=TB)
EXCLUSIVE = SimConfig(exclusive_devices=True)
SAMPLES = 2000


def _sim(workers, interval, decay=0.5, samples=SAMPLES):
    plan = make_plan(workers, P, interval, decay_per_s=decay)
    return plan, simulate(plan, PROFILE, samples, config=EXCLUSIVE)


REGIME_CASES = {
    "pipedream, one worker": (plain_workers(1, P), CYCLE),
    "three workers": (plain_workers(3, P), CYCLE / 3),
    "recomputation, two workers": (plain_workers(2, P, recompute=True), (2 * TF + TB) / 2),
    "latest weights, three workers": (
        [WorkerConfig(n, True, (1,) * P, (0,) * P, "latest") for n in range(3)],
        (2 * TF + TB) / 3,
    ),
    "S3 omission on stage 0": ([WorkerConfig(0, False, (1,) * P, (P - 1, 0, 0, 0))], CYCLE),
    "a removed worker": (
        [WorkerConfig.default(0, P), WorkerConfig.default(REMOVED, P), WorkerConfig.default(2, P)],
        CYCLE / 3,
    ),
}


@pytest.mark.parametrize("case", sorted(REGIME_CASES))
def test_memory_equals_f4_and_rate_is_within_two_percent_of_f3(case):
    workers, interval = REGIME_CASES[case]
    plan, result = _sim(workers, interval)
    assert result.peak_memory_bytes == memory_bytes(PROFILE, plan)
    assert result.adaptation_rate == pytest.approx(adaptation_rate(PROFILE, plan), rel=0.02)
    assert result.final_memory_bytes == result.baseline_memory_bytes


def test_removed_worker_share_is_dropped_and_the_rest_is_trained():
    _, result = _sim(*REGIME_CASES["a removed worker"])
    assert result.drop_count == len(range(1, SAMPLES, 3))
    assert result.trained == SAMPLES - result.drop_count


def test_accumulation_keeps_every_in_flight_datum_s_activations_that_f4_does_not_count():
    # F4 multiplies activations by the stored-version count v = 1 + ceil((P-j-1)/c^a); in flight
    # are still P - j data per stage, each with its own activations. Weights match F4 exactly.
    accumulation = (3, 2, 1, 1)
    plan, result = _sim([WorkerConfig(0, False, accumulation, (0,) * P)], CYCLE)
    _, act, _ = stage_sizes(PROFILE, plan.partition)
    versions = [1 + math.ceil((P - j - 1) / accumulation[j]) for j in range(P)]
    uncounted = sum((P - j - versions[j]) * int(act[j]) for j in range(P))
    assert uncounted == 2 * int(act[0]) + int(act[1])
    assert result.peak_memory_bytes == memory_bytes(PROFILE, plan) + uncounted
    assert result.adaptation_rate == pytest.approx(adaptation_rate(PROFILE, plan), rel=0.02)


def test_omission_above_a_stage_means_fewer_stored_data_than_f4_counts():
    # c^o_1 = 2: stage 1 back-propagates every 3rd datum, so stage 0 (LCM 3) stores at most
    # ceil(4/3) = 2 data and two weight copies, where F4 counts v_0 = 4.
    plan, result = _sim([WorkerConfig(0, False, (1,) * P, (0, 2, 0, 0))], CYCLE)
    w, act, _ = stage_sizes(PROFILE, plan.partition)
    assert result.peak_memory_bytes == memory_bytes(PROFILE, plan) - 2 * int(w[0] + act[0])
    assert result.adaptation_rate == pytest.approx(adaptation_rate(PROFILE, plan), rel=0.02)


def test_s3_on_every_stage_never_needs_more_than_f4_counts():
    # With c^o_j = P-1-j everywhere, stage j back-propagates every LCM_j-th datum (LCM_0 = 12):
    # often nothing is stored at all, so the twin stays below (F4)'s one version per stage.
    plan, result = _sim([WorkerConfig(n, False, (1,) * P, (3, 2, 1, 0)) for n in range(2)], CYCLE / 2)
    assert result.baseline_memory_bytes < result.peak_memory_bytes < memory_bytes(PROFILE, plan)
    assert result.adaptation_rate == pytest.approx(adaptation_rate(PROFILE, plan), rel=0.02)
    per_worker = SAMPLES // 2  # worker-local index k: stage j runs the backward iff LCM_j divides k
    assert result.updates_per_stage == tuple(2 * -(-per_worker // lcm) for lcm in (12, 6, 2, 1))


def test_accumulation_under_omission_waits_lcm_cycles_per_group_member():
    # Stage 0 accumulates 2 backwards but only every 2nd datum reaches it (c^o_1 = 1): its group
    # spans 2·LCM = 4 cycles, so the earlier member waits 2 cycles where (F3) assumes 1.
    decay = 0.5
    plan, result = _sim([WorkerConfig(0, False, (2, 1, 1, 1), (0, 1, 0, 0))], CYCLE, decay=decay)
    share0 = stage_shares(PROFILE, plan.partition)[0]
    delay0 = P * TF + P * TB
    lcm = 2
    per_cycle = share0 / (lcm * CYCLE)
    f3 = adaptation_rate(PROFILE, plan)
    expected = f3 - per_cycle * 0.5 * (np.exp(-decay * (delay0 + CYCLE)) - np.exp(-decay * (delay0 + 2 * CYCLE)))
    assert result.adaptation_rate == pytest.approx(expected, rel=2e-3)
    assert abs(result.adaptation_rate - expected) < 0.1 * abs(result.adaptation_rate - f3)


def test_interval_not_dividing_the_cycle_loses_the_unused_capacity_and_some_1f1b_waits():
    # N = ceil(0.375/0.2) = 2 workers get a datum every 0.4 s but can absorb one per 0.375 s:
    # (F3) counts N/cycle data per second, the stream brings 1/td. On top, forwards now meet
    # backwards out of phase and wait for them (a ready backward goes first), so the measured
    # rate falls below even the rescaled closed form.
    plan, result = _sim(plain_workers(2, P), 0.2)
    f3 = adaptation_rate(PROFILE, plan)
    rescaled = f3 * CYCLE / (2 * 0.2)
    assert result.adaptation_rate < rescaled
    assert result.adaptation_rate == pytest.approx(rescaled, rel=0.05)
    assert result.peak_memory_bytes == memory_bytes(PROFILE, plan)
    assert result.drop_rate == 0.0


def test_plan_placement_with_workers_sharing_devices_contends():
    # D = P puts stage j of both workers on device j: one lane each cannot keep up.
    plan = make_plan(plain_workers(2, P), P, CYCLE / 2, placement=default_placement(2, P, P))
    shared = simulate(plan, PROFILE, 400)
    lanes = simulate(plan, PROFILE, 400, config=SimConfig(concurrency=2))
    alone = simulate(plan, PROFILE, 400, config=EXCLUSIVE)
    assert shared.adaptation_rate < 0.7 * alone.adaptation_rate
    assert lanes.adaptation_rate == pytest.approx(alone.adaptation_rate, rel=1e-9)
