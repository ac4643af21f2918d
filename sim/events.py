"""The engine's clock: a priority queue of events, the earliest first.

An event is a plain tuple `(t, key, what, a, b, c, e)`: its time, its place among events of
the same time, what it is and its four fields (`sim.engine` says what they mean). `key` is
`priority << SEQ_BITS | seq` — ops and transfers (priority 1) before arrivals (2) before
choices (3), then scheduling order — so events pop in the order of `(t, priority, seq)`, every
key distinct.

Compiled (mypyc; docs/sim.md §6), `EventQueue` is a binary heap sifted by hand over three
parallel arrays: the times and keys unboxed (`librt.vecs`: C arrays of doubles and int64s) and
the events themselves, so that a comparison is one C `double` compare (and, on a tie, one
int64 compare) with no object touched. CPython's `heapq` compares tuples item by item through
`PyObject_RichCompare` (an equality test, then an order test, each a call), which was a
quarter of the compiled run. Interpreted, a Python-level sift would be slower than `heapq`'s C
loop, so there the queue is `heapq` over the event tuples; both pop the same order, since no
two keys are equal.
"""

from __future__ import annotations

from heapq import heappop, heappush
from typing import Any, Final

from librt.vecs import append, vec
from librt.vecs import pop as vec_pop
from mypy_extensions import i64

COMPILED: Final = not __file__.endswith(".py")  # this module runs compiled (mypyc)
SEQ_BITS: Final = 40  # scheduling order below the priority: 10^12 events before they overlap

Event = tuple[float, int, int, Any, Any, Any, Any]
# How the queue holds an event: compiled, `(what, a, b, c, e)` (its time and key are in the
# queue's arrays; no float or int object is made for them), typed as a tuple of any length so
# that compiled code moves it as the object it is (a fixed-length tuple type is unboxed into its
# fields, and boxed again to be stored, at every move); interpreted, the whole `Event`.
Entry = tuple[Any, ...]


def key(priority: int, seq: int) -> int:
    """The tie-break of an event scheduled `seq`-th with `priority` (lower first)."""
    return (priority << SEQ_BITS) | seq


class EventQueue:
    """Events by `(t, key)`, the earliest first (module docstring)."""

    def __init__(self) -> None:
        self.times: vec[float] = vec[float]()  # compiled: heap order, parallel to `keys` and `events`
        self.keys: vec[i64] = vec[i64]()
        self.events: list[Entry] = []  # compiled: heap order; interpreted: heapq's heap

    def __len__(self) -> int:
        return len(self.events)

    def push(self, t: float, k: int, what: int, a: Any, b: Any, c: Any, e: Any) -> None:
        """Add the event `(t, k, what, a, b, c, e)`."""
        if not COMPILED:
            heappush(self.events, (t, k, what, a, b, c, e))
            return
        entry: Entry = (what, a, b, c, e)  # its time and key live in `times` and `keys` only
        self.times = append(self.times, t)
        self.keys = append(self.keys, k)
        self.events.append(entry)
        self._rise(len(self.events) - 1, t, k, entry)

    def pop(self) -> Event:
        """Remove and return the earliest event (the queue must not be empty)."""
        events = self.events
        if not COMPILED:
            return heappop(events)
        last = events.pop()
        self.times, t = vec_pop(self.times)
        self.keys, k = vec_pop(self.keys)
        n = len(events)
        if not n:
            return (t, k, last[0], last[1], last[2], last[3], last[4])
        top, top_t, top_k = events[0], self.times[0], self.keys[0]
        times, keys = self.times, self.keys
        # heapq's order of work: the hole at the root goes down the earlier child to a leaf, then
        # `last` rises from there (fewer comparisons than sifting `last` down).
        pos: i64 = 0
        child: i64 = 1
        while child < n:
            right = child + 1
            if right < n:
                tc, tr = times[child], times[right]
                if not (tc < tr or (tc == tr and keys[child] < keys[right])):
                    child = right
            times[pos] = times[child]
            keys[pos] = keys[child]
            events[pos] = events[child]
            pos = child
            child = 2 * pos + 1
        self._rise(pos, t, k, last)
        return (top_t, top_k, top[0], top[1], top[2], top[3], top[4])

    def _rise(self, pos: i64, t: float, k: i64, entry: Entry) -> None:
        """Put `entry` (time `t`, key `k`) in the hole at `pos`, moving it up past every parent that comes later."""
        times, keys, events = self.times, self.keys, self.events
        while pos > 0:
            up = (pos - 1) >> 1
            tp = times[up]
            if not (t < tp or (t == tp and k < keys[up])):
                break
            times[pos] = tp
            keys[pos] = keys[up]
            events[pos] = events[up]
            pos = up
        times[pos] = t
        keys[pos] = k
        events[pos] = entry
