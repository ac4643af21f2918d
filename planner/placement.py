"""Owner placement: every stage lives on ONE device (its owner) for all workers.

DESIGN.md §Devices: a stage's weights are one set that every worker updates, so a distributed
executor keeps each stage on exactly one rank and runs every worker's ops on that stage there.
`owner_placement` gives stages to `D` owner devices in contiguous blocks (device `d` owns
stages `[c_d, c_{d+1})`, consecutive stages stay together so only block boundaries send), with
the blocks balanced by stage time: the cut minimises the busiest device's time per datum,
`max_d Σ_{j in block d} (tf_j + tb_j)` (exact, by dynamic programming; ties go to the earliest
cut). With `D ≥ P` every stage gets its own device and the other devices stay idle.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from planner.errors import ValidationError
from planner.profile import ModelProfile


def owner_blocks(stage_seconds: Sequence[float], num_devices: int) -> tuple[int, ...]:
    """The owner device of each stage: `min(D, P)` contiguous blocks minimising the largest block time."""
    P = len(stage_seconds)
    if num_devices < 1:
        raise ValidationError(f"number of devices must be ≥ 1, got {num_devices}")
    blocks = min(num_devices, P)
    prefix = np.concatenate(([0.0], np.cumsum(np.asarray(stage_seconds, dtype=np.float64))))
    # best[k][j]: the smallest possible largest-block time of stages [0, j) in k blocks; cut[k][j]
    # where its last block starts.
    best = np.full((blocks + 1, P + 1), np.inf)
    cut = np.zeros((blocks + 1, P + 1), dtype=np.intp)
    best[0][0] = 0.0
    for k in range(1, blocks + 1):
        for j in range(k, P + 1):
            for i in range(k - 1, j):
                value = max(best[k - 1][i], prefix[j] - prefix[i])
                if value < best[k][j]:
                    best[k][j], cut[k][j] = value, i
    owners = [0] * P
    end = P
    for k in range(blocks, 0, -1):
        start = int(cut[k][end])
        owners[start:end] = [k - 1] * (end - start)
        end = start
    return tuple(owners)


def owner_placement(
    profile: ModelProfile, partition: Sequence[int], num_workers: int, num_devices: int
) -> tuple[tuple[int, ...], ...]:
    """`plan.placement` with each stage on its owner (`owner_blocks` of the stages' `tf + tb`)
    for every worker."""
    starts = np.asarray(partition[:-1], dtype=np.intp)
    seconds = np.add.reduceat(profile.t_fwd, starts) + np.add.reduceat(profile.t_bwd, starts)
    owners = owner_blocks(seconds.tolist(), num_devices)
    return tuple(owners for _ in range(num_workers))
