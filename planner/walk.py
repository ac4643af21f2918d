"""How N identical workers interleave along one worker chain under Alg. 2's global greedy.

The global greedy applies, at each step, the best step over all workers, ties to the lowest
worker. With every worker on the same chain this order has a closed form: split the chain's
step ratios into *blocks* at each strict new prefix minimum. All workers stand at a block's
start; worker 0 walks the whole block (each of its next ratios is at least the others'
current one), then worker 1, and so on; then the next block. A position in that order is
`Walk(block, done, state)`: workers `[0, done)` at the block's end, worker `done` at `state`,
the rest at the block's start. The very last step (S4 on the last active worker) is not
allowed: a feasible plan keeps at least one worker.

`best_walk` answers one budget: the first position whose total (F4) fits; then — a
**Decision** recorded in docs/planner.md — the best (F3) total among that position and every
later one (all of which fit too). An S3 step can *raise* the rate (it resets the stage's
accumulation while the omission LCM may already hold its factor), so the literal "stop at
the first fit" could let a larger budget end with a lower rate; taking the best of the rest
of the trajectory keeps the best rate non-decreasing in the budget, as SPEC §4.2 demands.
Among positions within `GAIN_SLACK` of that best, the earliest wins, so rounding noise never
moves the choice away from the literal stopping point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from planner import s3_batch
from planner.worker_chain import WorkerChain

GAIN_SLACK = 1e-9

# (block, first walker, last walker, first state, last state): positions sharing one state range
Piece = tuple[int, int, int, int, int]


@dataclass(frozen=True)
class Walk:
    """A position in the global greedy's order (see the module docstring) within one `block`.

    Workers `[0, done)` stand at the block's end, worker `done` at chain state `state`, the rest at the
    block's start.
    """

    block: int
    done: int
    state: int


@dataclass(frozen=True)
class Blocks:
    """Block boundaries of one chain (state indices) and each block's best inner state."""

    chain: WorkerChain

    @cached_property
    def starts(self) -> np.ndarray:
        r = self.chain.ratios
        new_low = np.flatnonzero(r[1:] < np.minimum.accumulate(r)[:-1]) + 1
        return np.concatenate(([0], new_low)).astype(np.intp)

    @cached_property
    def ends(self) -> np.ndarray:
        return np.append(self.starts[1:], self.chain.length)

    def best_state(self, lo: int, hi: int) -> int:
        """The first state in [lo, hi] with the highest worker rate."""
        return lo + int(np.argmax(self.chain.rates[lo : hi + 1]))

    @cached_property
    def block_top(self) -> np.ndarray:
        """Per block: the highest worker rate among states `start+1 .. end`."""
        return np.maximum.reduceat(self.chain.rates, self.starts + 1)

    def last_state(self, block: int, worker: int, num_workers: int) -> int:
        """The last state a walker may reach in a block (the last walker keeps one version)."""
        e = int(self.ends[block])
        K = self.chain.length
        return K - 1 if (e == K and worker == num_workers - 1) else e

    def states(self, walk: Walk, num_workers: int) -> list[int]:
        """The chain state of every worker at a position."""
        e, b = int(self.ends[walk.block]), int(self.starts[walk.block])
        return [e] * walk.done + [walk.state] + [b] * (num_workers - 1 - walk.done)

    def totals(self, walk: Walk, num_workers: int) -> tuple[float, int]:
        """Total (F3) and (F4) of all workers at a position."""
        e, b, k = int(self.ends[walk.block]), int(self.starts[walk.block]), walk.state
        n, rest = walk.done, num_workers - 1 - walk.done
        rates, memory = self.chain.rates, self.chain.memory
        rate = n * rates[e] + rates[k] + rest * rates[b]
        return float(rate), n * int(memory[e]) + int(memory[k]) + rest * int(memory[b])


def first_fit(blocks: Blocks, num_workers: int, budget: int) -> Walk | None:
    """The first position in greedy order whose total (F4) is within `budget`."""
    chain, N = blocks.chain, num_workers
    memory, K = chain.memory, chain.length
    if N * int(memory[0]) <= budget:
        return Walk(0, 0, 0)
    # Each block's smallest total: every walker at its end (the last keeps its last state).
    ends = blocks.ends
    floors = np.where(ends == K, memory[K - 1], N * memory[np.minimum(ends, K - 1)])
    fits = np.flatnonzero(floors <= budget)
    if not len(fits):
        return None
    t = int(fits[0])
    b, e = int(blocks.starts[t]), int(ends[t])
    Mb, Me = int(memory[b]), int(memory[e])
    # Smallest n with (n+1)·M[e] + (N-1-n)·M[b] ≤ budget: the first walker that gets there.
    n = min(N - 1, max(0, -(-(N * Mb - budget) // (Mb - Me)) - 1))
    room = budget - n * Me - (N - 1 - n) * Mb
    hi = blocks.last_state(t, n, N)
    k = b + 1 + int(np.searchsorted(-memory[b + 1 : hi + 1], -room, side="left"))
    assert k <= hi, f"no state fits although the block floor {int(floors[t])} ≤ budget {budget}"
    return Walk(t, n, k)


def _pieces(blocks: Blocks, block: int, first_worker: int, first_state: int, num_workers: int) -> list[Piece]:
    """Split walkers `first_worker..N-1` of a block into ranges that reach the same states."""
    N = num_workers
    if first_worker > N - 1:
        return []
    e, last = int(blocks.ends[block]), blocks.last_state(block, N - 1, N)
    if last == e:
        return [(block, first_worker, N - 1, first_state, e)]
    head = [(block, first_worker, N - 2, first_state, e)] if first_worker <= N - 2 else []
    return [*head, (block, N - 1, N - 1, first_state, last)]


def best_walk(blocks: Blocks, num_workers: int, budget: int | None) -> Walk | None:
    """The position a budget selects (see the module docstring); None if nothing fits."""
    N = num_workers
    if budget is None:
        return Walk(0, 0, 0)  # no later state rates higher than no technique at all
    start = first_fit(blocks, N, budget)
    if start is None:
        return None
    rates, starts, ends = blocks.chain.rates, blocks.starts, blocks.ends
    rate_at, start_at, end_at = rates.item, starts.item, ends.item

    def total(block: int, worker: int, state: int) -> float:
        # Python numbers: the same IEEE operations as numpy's scalars, at a fraction of the cost.
        return worker * rate_at(end_at(block)) + rate_at(state) + (N - 1 - worker) * rate_at(start_at(block))

    t0, last = start.block, len(starts) - 1
    # Within a piece the total is linear in the walker index for any fixed state, so each
    # piece peaks at one end of its walker range, at its best state.
    pieces = [(t0, start.done, start.done, start.state, blocks.last_state(t0, start.done, N))]
    pieces += _pieces(blocks, t0, start.done + 1, int(starts[t0]) + 1, N)
    inner = slice(t0 + 1, max(t0 + 1, last))  # whole blocks strictly between the first and the last
    top, at_end, at_start = blocks.block_top[inner], rates[ends[inner]], rates[starts[inner]]
    # The same operations, in the same order, as `total` for walker 0 and walker N-1.
    inner_peak = np.maximum(0 * at_end + top + (N - 1) * at_start, (N - 1) * at_end + top + 0 * at_start)
    tail = _pieces(blocks, last, 0, int(starts[last]) + 1, N) if t0 < last else []

    def piece_peak(piece: Piece) -> float:
        block, lo, hi, k_lo, k_hi = piece
        if k_lo > k_hi:
            return -np.inf
        k = blocks.best_state(k_lo, k_hi)
        return max(total(block, lo, k), total(block, hi, k))

    peak = max([piece_peak(p) for p in pieces + tail] + inner_peak.tolist())
    threshold = peak * (1.0 - GAIN_SLACK) if peak > 0 else peak
    for piece in pieces:
        found = _earliest(blocks, piece, threshold, total, N)
        if found is not None:
            return found
    reach = np.flatnonzero(inner_peak >= threshold)
    if len(reach):
        block = t0 + 1 + int(reach[0])
        found = _earliest(blocks, (block, 0, N - 1, int(starts[block]) + 1, int(ends[block])), threshold, total, N)
        assert found is not None, "a block whose peak reaches the threshold must contain that position"
        return found
    for piece in tail:
        found = _earliest(blocks, piece, threshold, total, N)
        if found is not None:
            return found
    raise AssertionError("the highest total rate was not found again")


def best_walk_total(blocks: Blocks, num_workers: int, budget: int) -> tuple[Walk, float] | None:
    """`best_walk` for a budget with that position's total (F3) rate (`Blocks.totals`), in one call
    of the compiled kernel where it is built (bit for bit this module's code, which stays the
    reference and the fallback)."""
    if s3_batch.kernel is not None:
        chain = blocks.chain
        found = s3_batch.kernel.walk(chain.rates, chain.memory, chain.ratios, num_workers, budget, GAIN_SLACK)
        if found is None:
            return None
        block, done, state, rate = found
        return Walk(block, done, state), rate
    walk = best_walk(blocks, num_workers, budget)
    return None if walk is None else (walk, blocks.totals(walk, num_workers)[0])


def _earliest(
    blocks: Blocks, piece: Piece, threshold: float, total: Callable[[int, int, int], float], num_workers: int
) -> Walk | None:
    """The earliest position of a piece whose total rate reaches `threshold`, if any."""
    block, lo, hi, k_lo, k_hi = piece
    if k_lo > k_hi:
        return None
    rates = blocks.chain.rates
    k_best = blocks.best_state(k_lo, k_hi)
    if max(total(block, lo, k_best), total(block, hi, k_best)) < threshold:
        return None
    n = lo
    if total(block, lo, k_best) < threshold:
        # Rising in n: solve n·slope + base ≥ threshold, then settle on the exact index.
        slope = float(rates[blocks.ends[block]] - rates[blocks.starts[block]])
        if slope > 0:
            n = min(hi, max(lo, int(np.ceil((threshold - total(block, 0, k_best)) / slope))))
        while n > lo and total(block, n - 1, k_best) >= threshold:
            n -= 1
        while total(block, n, k_best) < threshold:
            n += 1
    # The same operations, in the same order, as `total`, for every state of the range.
    e, b = blocks.ends[block], blocks.starts[block]
    values = n * rates[e] + rates[k_lo : k_hi + 1] + (num_workers - 1 - n) * rates[b]
    return Walk(block, n, k_lo + int(np.argmax(values >= threshold)))
