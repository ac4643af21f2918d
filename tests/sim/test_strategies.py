"""Each strategy's run-time behaviour on small streams worked out by hand."""

from __future__ import annotations

import pytest

from planner.closed_form import memory_bytes, stage_sizes
from planner.errors import FerretError
from planner.plan import REMOVED, Plan, WorkerConfig, default_placement
from planner.profile import LayerProfile, ModelProfile
from sim import MemoryTrace, SimConfig, sequential_plan, simulate
from sim.strategies import sequential_prediction
from tests.sim.builders import balanced_profile, make_plan, plain_workers

ONE_STAGE = ModelProfile("one", (LayerProfile("l0", 1.0, 1.0, 64, 8),), source="synthetic")
THREE = ModelProfile("toy", tuple(LayerProfile(f"l{i}", 0.25, 0.5, 1000, 100) for i in range(3)), source="synthetic")


def _trace(plan, profile, samples, config=None, seed=0):
    trace = MemoryTrace()
    result = simulate(plan, profile, samples, seed=seed, config=config, trace=trace)
    return result, trace.events()


def _updates(events, stage=0):
    return [e.samples for e in events if e.kind == "update" and e.stage == stage]


# ------------------------------------------------------------------ synchronous strategies
def test_gpipe_waits_for_a_full_batch_queues_a_bounded_number_and_flushes_the_rest_at_the_end():
    # One 2 s stage, mini-batches of 2 (4 s each), data every 0.5 s, room for 2 waiting data.
    plan = Plan("gpipe", (0, 1), (WorkerConfig.default(0, 1),), ((0,),), 0.5, minibatch=2)
    result, events = _trace(plan, ONE_STAGE, 10)
    assert sorted(e.sample for e in events if e.kind == "drop") == [4, 5, 6, 7, 8]
    ups = [(e.samples, e.t_end) for e in events if e.kind == "update"]
    assert ups == [((0, 1), 4.5), ((2, 3), 8.5), ((9,), 10.5)]  # the last datum runs alone once the stream ends
    assert result.trained == 5


@pytest.mark.parametrize("strategy", ["gpipe", "1f1b"])
def test_synchronous_batches_update_each_stage_once_per_batch_and_flush(strategy):
    P, B = 3, 4
    plan = make_plan(plain_workers(1, P), P, 0.05, strategy=strategy, minibatch=B)
    result, events = _trace(plan, balanced_profile(P), 3 * B, SimConfig(input_buffer=2 * B))
    for j in range(P):
        assert _updates(events, j) == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11)]
    stage0_updates = [e.t_end for e in events if e.kind == "update" and e.stage == 0]
    first_fwd = {e.sample: e.t_start for e in events if e.kind == "fwd" and e.stage == 0}
    assert first_fwd[4] >= stage0_updates[0] and first_fwd[8] >= stage0_updates[1]
    assert all(e.staleness == 0 for e in events if e.kind in ("bwd", "update"))
    assert result.staleness_histogram == ((3 * B,),) * P


def test_gpipe_runs_every_forward_before_any_backward_and_stores_the_whole_batch():
    P, B = 3, 4
    profile = balanced_profile(P)
    plan = make_plan(plain_workers(1, P), P, 0.05, strategy="gpipe", minibatch=B)
    result, events = _trace(plan, profile, B)
    last_fwd = max(e.t_end for e in events if e.kind == "fwd" and e.stage == P - 1)
    first_bwd = min(e.t_start for e in events if e.kind == "bwd")
    assert first_bwd >= last_fwd
    w, a, _ = stage_sizes(profile, plan.partition)
    assert result.peak_memory_per_device == tuple(int(w[j] + B * a[j]) for j in range(P))


def test_1f1b_flush_stores_at_most_p_minus_j_data_per_stage():
    P, B = 3, 4
    profile = balanced_profile(P)
    plan = make_plan(plain_workers(1, P), P, 0.05, strategy="1f1b", minibatch=B)
    result, _ = _trace(plan, profile, B)
    w, a, _ = stage_sizes(profile, plan.partition)
    assert result.peak_memory_per_device == tuple(int(w[j] + min(P - j, B) * a[j]) for j in range(P))


def test_a_buffer_that_cannot_hold_a_mini_batch_is_refused():
    plan = Plan("gpipe", (0, 1), (WorkerConfig.default(0, 1),), ((0,),), 0.5, minibatch=4)
    with pytest.raises(FerretError, match="cannot hold a mini-batch of 4"):
        simulate(plan, ONE_STAGE, 8, config=SimConfig(input_buffer=2))


# ------------------------------------------------------------------ sequential learners
def test_one_skip_trains_on_the_next_datum_when_free_and_skips_the_rest():
    # Whole model: 0.75 s forward + 1.5 s backward; data every 0.5 s. Busy [0, 2.25], then 5 at 2.5.
    plan = sequential_plan(3, 0.5, "1-skip")
    result, events = _trace(plan, THREE, 8)
    assert _updates(events) == [(0,), (5,)]
    assert sorted(e.sample for e in events if e.kind == "drop") == [1, 2, 3, 4, 6, 7]
    assert {e.device for e in events if e.kind in ("fwd", "bwd")} == {0}
    assert result.latency_quantile(0.5) == 2.25


def test_last_n_keeps_the_latest_b_data_and_trains_on_the_newest_n():
    plan = sequential_plan(3, 0.5, "last-n", minibatch=2)
    _, events = _trace(plan, THREE, 12, SimConfig(input_buffer=4))
    assert _updates(events) == [(0,), (3, 4), (10, 11), (8, 9)]
    assert sorted(e.sample for e in events if e.kind == "drop") == [1, 2, 5, 6, 7]  # evicted oldest first


def test_random_n_is_seeded_and_draws_from_what_is_waiting():
    plan = sequential_plan(3, 0.25, "random-n", minibatch=3)
    runs = [_updates(_trace(plan, THREE, 40, SimConfig(input_buffer=6), seed=s)[1]) for s in (1, 1, 2)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert all(len(batch) <= 3 for batch in runs[0])
    assert sorted(s for batch in runs[0] for s in batch) == sorted(set(s for batch in runs[0] for s in batch))


def test_sequential_plan_refuses_a_pipeline_strategy():
    with pytest.raises(FerretError, match="not a sequential learner"):
        sequential_plan(3, 0.5, "ferret")


# ------------------------------------------------------------------ asynchronous workers
def test_a_saturated_pipedream_worker_absorbs_one_datum_per_cycle_within_f4():
    P = 4
    profile = balanced_profile(P)
    plan = make_plan(plain_workers(1, P), P, 0.1)  # cycle 0.375 s, data every 0.1 s
    result = simulate(plan, profile, 2000)
    assert result.throughput_per_s == pytest.approx(1 / 0.375, rel=0.02)
    assert result.peak_memory_bytes == memory_bytes(profile, plan)  # the 1F1B windows hold
    assert result.drop_rate == pytest.approx(1 - 0.1 / 0.375, abs=0.02)


def test_data_of_a_removed_worker_are_dropped_and_flagged():
    plan = make_plan([WorkerConfig.default(0, 2), WorkerConfig.default(REMOVED, 2)], 2, 0.25)
    _, events = _trace(plan, balanced_profile(2), 6)
    drops = {e.sample: e.bytes for e in events if e.kind == "drop"}
    assert drops == {1: 1, 3: 1, 5: 1}


def test_unknown_strategy_is_a_user_error():
    plan = make_plan(plain_workers(1, 2), 2, 0.5, strategy="zero-bubble")
    with pytest.raises(FerretError, match="does not know strategy 'zero-bubble'"):
        simulate(plan, balanced_profile(2), 4)


# ------------------------------------------------------------------ timing and memory model
def test_time_scale_overhead_and_update_time_add_up_exactly():
    P = 2
    profile = balanced_profile(P, t_fwd=0.125, t_bwd=0.25)
    plan = make_plan(plain_workers(1, P), P, 1.0)
    base = P * (0.125 + 0.25)
    config = SimConfig(time_scale=2.0, op_overhead_s=0.0625, update_s=0.03125)
    assert simulate(plan, profile, 1).makespan_s == base
    assert simulate(plan, profile, 1, config=config).makespan_s == 2 * base + 2 * P * 0.0625 + P * 0.03125


def test_links_add_latency_and_serialise_bytes():
    P = 2
    profile = balanced_profile(P)
    plan = make_plan(plain_workers(1, P), P, 1.0)
    config = SimConfig(link_latency_s=0.5, link_bandwidth_Bps=1000.0)
    _, events = _trace(plan, profile, 1, config)
    boundary = int(profile.act_bytes[1])  # stage 0's last layer output
    sends = [e for e in events if e.kind == "send"]
    assert [(e.stage, e.bytes) for e in sends] == [(0, boundary), (1, boundary)]
    fwd1 = next(e for e in events if e.kind == "fwd" and e.stage == 1)
    assert fwd1.t_start == pytest.approx(0.125 + boundary / 1000.0 + 0.5)
    recvs = [e for e in events if e.kind == "recv"]
    # The schema: a send row names the sending stage, a recv row the receiving stage (each on its own device).
    assert [(e.stage, e.device, e.t_end) for e in recvs] == [(1, 1, sends[0].t_end), (0, 0, sends[1].t_end)]


def test_concurrent_ops_on_a_device_slow_each_other_down():
    # Both workers' stage 0 share device 0 with two lanes; the second op starts beside the first.
    plan = make_plan(plain_workers(2, 1), 1, 1e-9, layers_per_stage=1, placement=default_placement(2, 1, 1))
    profile = ModelProfile("one", (LayerProfile("l0", 1.0, 1.0, 8, 8),), source="synthetic")
    _, events = _trace(plan, profile, 2, SimConfig(concurrency=2, slowdown=0.5))
    fwd = sorted((e.t_start, e.t_end - e.t_start) for e in events if e.kind == "fwd")
    assert fwd[0][1] == 1.0 and fwd[1][1] == pytest.approx(1.5)


def test_jitter_is_seeded_and_mean_one():
    P = 2
    plan = make_plan(plain_workers(1, P), P, 1.0)
    config = SimConfig(jitter="lognormal", jitter_sigma=0.3)
    durations = []
    for seed in (3, 3, 4):
        _, events = _trace(plan, balanced_profile(P), 600, config, seed=seed)
        durations.append([e.t_end - e.t_start for e in events if e.kind == "fwd"])
    assert durations[0] == durations[1] != durations[2]
    assert sum(durations[0]) / len(durations[0]) == pytest.approx(0.125, rel=0.05)


def test_transient_memory_counts_the_gradient_and_rebuilt_activations():
    # One stage, one datum: live weights w, then a's activations, then a gradient of w in backward.
    profile = ModelProfile("two", (LayerProfile("a", 1, 1, 300, 40), LayerProfile("b", 1, 1, 500, 60)))
    for recompute, expected in ((False, 2 * 800 + 100), (True, 2 * 800 + 40 + 60)):
        plan = Plan("ferret", (0, 2), (WorkerConfig.default(0, 1, recompute),), ((0,),), 1.0)
        plain = simulate(plan, profile, 1)
        assert plain.peak_memory_bytes == 800 + (40 if recompute else 100)
        assert simulate(plan, profile, 1, config=SimConfig(transient_memory=True)).peak_memory_bytes == expected


def test_optimizer_state_and_compensation_buffers_scale_the_baseline():
    profile = balanced_profile(2)
    plan = make_plan(plain_workers(1, 2), 2, 1.0)
    weights = int(profile.param_bytes.sum())
    result = simulate(plan, profile, 3, config=SimConfig(optimizer_state_ratio=2.0, compensation_buffers=2))
    assert result.baseline_memory_bytes == weights * 5
    assert result.final_memory_bytes == weights * 5


def test_memory_rows_follow_each_device_back_to_its_share_of_the_baseline():
    P = 3
    profile = balanced_profile(P)
    plan = make_plan(plain_workers(1, P), P, 0.2)
    result, events = _trace(plan, profile, 20, SimConfig(trace_memory=True))
    w, _, _ = stage_sizes(profile, plan.partition)
    last = {}
    for e in events:
        if e.kind == "mem":
            last[e.device] = e.bytes
    assert last == {j: int(w[j]) for j in range(P)}
    assert max(e.bytes for e in events if e.kind == "mem" and e.device == 0) == result.peak_memory_per_device[0]


def test_placement_of_the_plan_is_used_by_default():
    plan = Plan(
        "ferret",
        (0, 2, 4),
        tuple(WorkerConfig.default(n, 2) for n in range(2)),
        ((5, 3), (3, 5)),
        0.5,
    )
    _, events = _trace(plan, balanced_profile(2), 4)
    placed = {(e.worker, e.stage, e.device) for e in events if e.kind == "fwd"}
    assert placed == {(0, 0, 5), (0, 1, 3), (1, 0, 3), (1, 1, 5)}
    assert default_placement(2, 2) != plan.placement


@pytest.mark.parametrize("interval", [0.5, 0.75, 3.0])
def test_one_skip_closed_form_matches_the_twin(interval):
    plan = sequential_plan(3, interval, "1-skip", decay_per_s=0.4)
    rate, memory = sequential_prediction(THREE, plan)
    result = simulate(plan, THREE, 3000)
    assert result.adaptation_rate == pytest.approx(rate, rel=2e-3)
    assert result.peak_memory_bytes == memory == 3000 + 300
    assert sequential_prediction(THREE, sequential_plan(3, interval, "last-n", minibatch=4)) == (None, 3000 + 4 * 300)
