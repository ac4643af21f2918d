"""The admission and dispatch policy, decision by decision (what the twin and executors share)."""

from __future__ import annotations

import numpy as np
import pytest

from planner.plan import Plan, WorkerConfig, default_placement
from sim.policy import BWD, FWD, Arrival, ReadyOps, admission_policy, may_start, route
from sim.strategies import get_strategy


def policy(strategy: str, bound: int, stages: int = 3, minibatch: int = 1):
    plan = Plan(
        strategy,
        tuple(range(stages + 1)),
        (WorkerConfig.default(0, stages),),
        default_placement(1, stages),
        0.1,
        minibatch=minibatch,
    )
    return admission_policy(get_strategy(strategy), plan, bound)


def test_async_workers_admit_up_to_p_then_keep_the_freshest_waiting():
    p = policy("ferret", bound=1)
    assert p.on_arrival(in_flight=2, waiting=0, busy=False) is Arrival.START
    assert p.on_arrival(in_flight=3, waiting=0, busy=False) is Arrival.WAIT  # P = 3 in flight
    assert p.on_arrival(in_flight=3, waiting=1, busy=False) is Arrival.EVICT  # the oldest waiting goes
    assert p.on_arrival(in_flight=1, waiting=1, busy=False) is Arrival.EVICT  # FIFO: no overtaking
    assert policy("ferret", bound=0).on_arrival(3, 0, False) is Arrival.DROP
    assert p.admit_after_done(in_flight=2, waiting=1) == 1 and p.admit_after_done(3, 1) == 0
    assert [p.stage_window(j, 1) for j in range(3)] == [3, 2, 1]
    assert not p.select_later


def test_full_batch_pipelines_start_a_batch_when_it_is_complete_and_drop_the_arriving_datum():
    p = policy("gpipe", bound=4, minibatch=3)
    assert p.on_arrival(0, waiting=1, busy=False) is Arrival.WAIT
    assert p.on_arrival(0, waiting=2, busy=False) is Arrival.START
    assert p.on_arrival(0, waiting=2, busy=True) is Arrival.WAIT
    assert p.on_arrival(0, waiting=4, busy=True) is Arrival.DROP
    assert p.batch_size(2, stream_over=False) == 0 and p.batch_size(2, stream_over=True) == 2
    assert p.batch_size(5, stream_over=False) == 3
    assert p.choose([4, 5, 6, 7], 3, np.random.default_rng(0)) == ([4, 5, 6], [7])
    assert [p.stage_window(j, 3) for j in range(3)] == [3, 3, 3]
    assert [policy("1f1b", 4, minibatch=3).stage_window(j, 3) for j in range(3)] == [3, 2, 1]


def test_one_skip_takes_the_first_arrival_to_a_free_learner_and_drops_the_rest():
    p = policy("1-skip", bound=0, stages=1)
    assert p.on_arrival(0, 0, busy=False) is Arrival.START
    assert p.on_arrival(0, 0, busy=True) is Arrival.DROP
    assert not p.select_later


def test_window_learners_keep_the_latest_b_and_choose_after_the_instant():
    p = policy("last-n", bound=3, stages=1, minibatch=2)
    assert p.select_later
    assert p.on_arrival(0, 0, busy=False) is Arrival.WAIT  # chosen at the end of the instant
    assert p.on_arrival(0, 3, busy=True) is Arrival.EVICT
    assert policy("last-n", bound=0, stages=1).on_arrival(0, 0, busy=False) is Arrival.WAIT
    assert p.batch_size(1, stream_over=False) == 1 and p.batch_size(3, stream_over=False) == 2
    assert p.choose([4, 5, 6], 2, np.random.default_rng(0)) == ([5, 6], [4])
    random = policy("random-n", bound=6, stages=1, minibatch=2)
    chosen, rest = random.choose([1, 2, 3, 4, 5], 2, np.random.default_rng(1))
    assert len(chosen) == 2 and sorted(chosen + rest) == [1, 2, 3, 4, 5] and chosen == sorted(chosen)


def test_route_drops_data_of_removed_workers():
    workers = {0: "w0", 2: "w2"}
    assert [route(i, workers, 3) for i in range(4)] == ["w0", None, "w2", "w0"]


def test_may_start_one_op_per_slot_and_the_forward_window():
    assert may_start(FWD, slot_busy=False, stores=True, outstanding=1, window=2)
    assert not may_start(FWD, slot_busy=False, stores=True, outstanding=2, window=2)
    assert may_start(FWD, slot_busy=False, stores=False, outstanding=2, window=2)  # omitted: stores nothing
    assert may_start(BWD, slot_busy=False, stores=True, outstanding=2, window=2)
    assert not may_start(BWD, slot_busy=True, stores=True, outstanding=0, window=2)


def test_ready_ops_go_backward_first_then_older_datum_then_readiness():
    ready = ReadyOps()
    for kind, sample, op in [(FWD, 1, "f1"), (FWD, 0, "f0"), (BWD, 5, "b5"), (BWD, 2, "b2"), (FWD, 0, "f0'")]:
        ready.push(kind, sample, op)
    order = []
    while ready:
        found = ready.next_startable(lambda kind, op: True)
        assert found is not None
        order.append(found[1])
    assert order == ["b2", "b5", "f0", "f0'", "f1"]


def test_ready_ops_passed_over_stay_queued_in_order():
    ready = ReadyOps()
    for kind, sample, op in [(BWD, 1, "b1"), (FWD, 0, "f0"), (FWD, 2, "f2")]:
        ready.push(kind, sample, op)
    assert ready.next_startable(lambda kind, op: op == "f2") == (FWD, "f2")
    assert ready.next_startable(lambda kind, op: False) is None
    assert len(ready) == 2
    assert ready.next_startable(lambda kind, op: True) == (BWD, "b1")


@pytest.mark.parametrize("strategy", ["ferret", "gpipe", "1-skip", "last-n"])
def test_a_full_queue_never_grows(strategy):
    p = policy(strategy, bound=2, stages=1, minibatch=2)
    for busy in (False, True):
        assert p.on_arrival(in_flight=1, waiting=2, busy=busy) in (Arrival.START, Arrival.EVICT, Arrival.DROP)
