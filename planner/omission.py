"""Back-propagation omission (SPEC §3.2, T3): which stages a worker's datum trains.

Stage `j` runs the backward of worker-datum `k` (the worker's `k`-th admitted datum) only if
`k mod (c^o_j + 1) == 0`, and a datum skipped at `j` skips every stage below. So datum `k` is
back-propagated through stage `j` iff `k` is a multiple of `LCM({c^o_m + 1 : m ∈ [j, P−1]})`
(`backward_every[j]`), and its backward reaches down to the lowest such stage (`bottom_stage`).
The twin, the StageRuntime's rules and the replay executor all ask these two functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def backward_every(omission: Sequence[int]) -> tuple[int, ...]:
    """Per stage `j`: datum `k` is back-propagated through `j` iff `k % backward_every[j] == 0`."""
    out = [1] * len(omission)
    lcm = 1
    for j in range(len(omission) - 1, -1, -1):
        lcm = math.lcm(lcm, omission[j] + 1)
        out[j] = lcm
    return tuple(out)


def bottom_stage(every: Sequence[int], k: int) -> int:
    """The lowest stage the backward of worker-datum `k` reaches, given `backward_every(omission)`.

    The last stage always back-propagates (`c^o_{P-1} = 0`), so the answer is at most `P - 1`.
    """
    for j, m in enumerate(every):
        if k % m == 0:
            return j
    return len(every) - 1
