"""The event heap pops in `(time, priority, scheduling order)` order, as heapq over those tuples does."""

from __future__ import annotations

import heapq

from hypothesis import given
from hypothesis import strategies as st

from sim.events import SEQ_BITS, EventQueue, key

# Few distinct times and every priority, so ties at equal times are the common case.
_STEPS = st.lists(
    st.one_of(st.tuples(st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 1e-9]), st.integers(1, 3)), st.none()),
    max_size=300,
)


@given(_STEPS)
def test_pushes_and_pops_in_any_interleaving_come_out_in_tuple_order(steps):
    queue = EventQueue()
    reference: list[tuple[float, int, int]] = []
    got, expected = [], []
    for seq, step in enumerate(steps, start=1):
        if step is None:  # a pop (when anything is queued)
            if len(queue):
                t, k, *_ = queue.pop()
                got.append((t, k >> SEQ_BITS, k & ((1 << SEQ_BITS) - 1)))
                expected.append(heapq.heappop(reference))
            continue
        t, priority = step
        queue.push(t, key(priority, seq), 0, None, None, None, None)
        heapq.heappush(reference, (t, priority, seq))
    while len(queue):
        t, k, *_ = queue.pop()
        got.append((t, k >> SEQ_BITS, k & ((1 << SEQ_BITS) - 1)))
        expected.append(heapq.heappop(reference))
    assert got == expected


def test_a_later_priority_never_overtakes_at_equal_times_whatever_its_order():
    queue = EventQueue()
    for event in [(1.0, key(3, 1), 0, "choice"), (1.0, key(2, 2), 0, "arrival"), (1.0, key(1, 3), 0, "op"),
                  (0.5, key(3, 4), 0, "early")]:  # fmt: skip
        queue.push(*event, None, None, None)
    assert [queue.pop()[3] for _ in range(4)] == ["early", "op", "arrival", "choice"]
    assert not len(queue)
