"""Tables the worker chain is built from: S2's increment and ladders, and prime factorisations.

Both depend only on stage counts, so they are computed once per size and cached.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from planner.closed_form import versions_behind


def s2_increment(num_stages: int, stage: int, accumulation: int) -> int | None:
    """`Δc^a = ⌈(P-j-1) / (⌈(P-j-1)/c^a⌉ - 1)⌉ - c^a`, or None when it is +∞ (SPEC §4.1).

    The smallest increase of `c^a` that removes at least one stored version (it can remove
    more: `P = 6, j = 0, c^a = 1 → 2` takes `⌈5/c^a⌉` from 5 to 3).
    """
    behind = num_stages - stage - 1
    left = versions_behind(behind, accumulation)
    if left - 1 <= 0:
        return None
    return -(-behind // (left - 1)) - accumulation


@lru_cache(maxsize=4096)
def s2_ladder(behind: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The accumulations S2 walks a stage through, with their `⌈K/c^a⌉`, for `K = P-1-j`.

    Starting from `c^a = 1`, each S2 step raises `c^a` by `s2_increment`. The ladder ends when
    one extra version is left (`⌈K/c^a⌉ = 1`); from there only S3 saves memory.
    """
    acc = [1]
    while (delta := s2_increment(behind + 1, 0, acc[-1])) is not None:
        acc.append(acc[-1] + delta)
    return tuple(acc), tuple(versions_behind(behind, a) for a in acc)


@lru_cache(maxsize=32)
def factor_table(max_m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Prime factorisations of 1..max_m: `(pidx, kexp, logp, plog)` padded to the widest row.

    `pidx[m, t]`, `kexp[m, t]`: index (into the prime list) and exponent of m's t-th prime;
    `logp[m, t]` its logarithm (0 for padding); `plog` the logarithm of every prime.
    """
    sieve = np.ones(max_m + 1, dtype=bool)
    sieve[:2] = False
    for p in range(2, math.isqrt(max_m) + 1):
        if sieve[p]:
            sieve[p * p :: p] = False
    primes = np.flatnonzero(sieve)
    index = {int(p): i for i, p in enumerate(primes)}
    rows: list[list[tuple[int, int]]] = [[] for _ in range(max_m + 1)]
    for m in range(2, max_m + 1):
        rest = m
        for p in primes.tolist():
            if p * p > rest:
                break
            k = 0
            while rest % p == 0:
                rest //= p
                k += 1
            if k:
                rows[m].append((index[p], k))
        if rest > 1:
            rows[m].append((index[rest], 1))
    width = max(1, max(len(r) for r in rows))
    pidx = np.zeros((max_m + 1, width), dtype=np.intp)
    kexp = np.zeros((max_m + 1, width), dtype=np.int64)
    for m, row in enumerate(rows):
        for t, (i, k) in enumerate(row):
            pidx[m, t], kexp[m, t] = i, k
    plog = np.log(primes.astype(np.float64)) if len(primes) else np.zeros(1)
    logp = np.where(kexp > 0, plog[pidx] if len(primes) else 0.0, 0.0)
    return pidx, kexp, logp, plog


@lru_cache(maxsize=8)
def flat_divisor_tables(max_m: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """`(width, gcd, lcm, share_loss)` over 0..n ≥ max_m, flattened: `table[x·width + y]`, for
    LCMs seen through the numbers they meet.

    An LCM enters the share loss of S3 at a stage only through `d = gcd(LCM, m)` with
    `m = P - k ≤ P`, and `gcd(lcm(L, a), m) = lcm(gcd(L, m), gcd(a, m))`, so tracking `d` per
    (stage, m) needs only small integers. `share_loss[m, d] = 1 - d/m` (the share of a stage's
    term lost when its LCM, meeting m in d, gains the factor m), computed as
    `-expm1(-log(m/d))` from prime exponents.

    The tables of a smaller size are the corners of a larger one, so the size doubles from 64
    and every batch of chains looks numbers up in one table.
    """
    size = 64
    while size < max_m:
        size *= 2
    return size + 1, *(t.ravel() for t in _divisor_tables(size))  # type: ignore[return-value]


@lru_cache(maxsize=8)
def _divisor_tables(max_m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = np.arange(max_m + 1)
    gcd = np.gcd.outer(n, n)
    lcm = np.lcm.outer(n, n)
    pidx, kexp, logp, _ = factor_table(max(max_m, 2))
    pidx, kexp, logp = pidx[: max_m + 1], kexp[: max_m + 1], logp[: max_m + 1]
    # exponent of each of m's primes in d: (m, d, width)
    primes = np.zeros(int(pidx.max(initial=0)) + 1, dtype=np.int64)
    exponent = np.zeros((max_m + 1, len(primes)), dtype=np.int64)
    for d in range(1, max_m + 1):
        for i, k in zip(pidx[d], kexp[d], strict=True):
            if k:
                exponent[d, i] = k
    have = exponent[:, pidx].transpose(1, 0, 2)  # have[m, d, t] = exponent in d of m's t-th prime
    extra = (np.maximum(kexp[:, None, :] - have, 0) * logp[:, None, :]).sum(axis=2)
    return gcd, lcm, -np.expm1(-extra)
