"""Tables the worker chain is built from: S2's accumulation ladders and prime factorisations.

Both depend only on stage counts, so they are computed once per size and cached.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=4096)
def s2_ladder(behind: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The accumulations S2 walks a stage through, with their `⌈K/c^a⌉`, for `K = P-1-j`.

    Starting from `c^a = 1`, each S2 step raises `c^a` to the smallest value that removes at
    least one stored version: `⌈K / (⌈K/c^a⌉ - 1)⌉` (SPEC §4.1). The ladder ends when one
    extra version is left (`⌈K/c^a⌉ = 1`); from there only S3 saves memory.
    """
    acc, m = [1], [behind]
    while m[-1] >= 2:
        a = -(-behind // (m[-1] - 1))
        acc.append(a)
        m.append(-(-behind // a))
    return tuple(acc), tuple(m)


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
