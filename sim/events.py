"""The engine's clock: a binary heap of events, the earliest first.

An event is a plain tuple `(t, key, what, a, b, c, e)`: its time, its place among events of
the same time, what it is and its four fields (`sim.engine` says what they mean). `key` is
`priority << SEQ_BITS | seq` — ops and transfers (priority 1) before arrivals (2) before
choices (3), then scheduling order — so events pop in the order of `(t, priority, seq)`, every
key distinct.

Compiled (mypyc; docs/sim.md §6), `push` and `pop` sift by hand and compare two events as one
C `double` and, on a tie, one C integer: CPython's `heapq` compares tuples item by item through
`PyObject_RichCompare` (an equality test, then an order test, each a call), which was a
quarter of the compiled run. Interpreted, a Python-level sift would be slower than `heapq`'s C
loop, so there they are `heapq`'s own; both give the same order, since no two keys are equal.
"""

from __future__ import annotations

from heapq import heappop, heappush
from typing import Any, Final

COMPILED: Final = not __file__.endswith(".py")  # this module runs compiled (mypyc)
SEQ_BITS: Final = 40  # scheduling order below the priority: 10^12 events before they overlap

Event = tuple[float, int, int, Any, Any, Any, Any]
# The heap's entries: `Event`s, typed as tuples of any length so that compiled code moves them as
# the objects they are (a fixed-length tuple type would be unboxed into its seven fields and boxed
# again at every move) and reads only the fields it compares.
Heap = list[tuple[Any, ...]]


def key(priority: int, seq: int) -> int:
    """The tie-break of an event scheduled `seq`-th with `priority` (lower first)."""
    return (priority << SEQ_BITS) | seq


def push(heap: Heap, event: Event) -> None:
    """Add `event` to `heap`."""
    if not COMPILED:
        heappush(heap, event)
        return
    entry: tuple[Any, ...] = event
    heap.append(entry)
    _rise(heap, len(heap) - 1, entry)


def pop(heap: Heap) -> Event:
    """Remove and return the earliest event of a non-empty `heap`."""
    if not COMPILED:
        return heappop(heap)
    last = heap.pop()
    n = len(heap)
    if not n:
        return last
    top = heap[0]
    # heapq's order of work: the hole at the root goes down the earlier child to a leaf, then
    # `last` rises from there (fewer comparisons than sifting `last` down).
    pos = 0
    child = 1
    while child < n:
        right = child + 1
        if right < n and not _before(heap[child], heap[right]):
            child = right
        heap[pos] = heap[child]
        pos = child
        child = 2 * pos + 1
    _rise(heap, pos, last)
    return top


def _rise(heap: Heap, pos: int, entry: tuple[Any, ...]) -> None:
    """Put `entry` in the hole at `pos`, moving it up past every parent that comes later."""
    while pos > 0:
        up = (pos - 1) >> 1
        parent = heap[up]
        if not _before(entry, parent):
            break
        heap[pos] = parent
        pos = up
    heap[pos] = entry


def _before(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """`a` pops before `b`: the earlier time, or at equal times the smaller key (one C compare each)."""
    ta: float = a[0]
    tb: float = b[0]
    if ta != tb:
        return ta < tb
    ka: int = a[1]
    kb: int = b[1]
    return ka < kb
