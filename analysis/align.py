"""Pair the ops of two traces of one plan and stream: the same op in the predicted and the
measured run.

An op is named by what it did, not when: `(kind, sample, stage)` for `fwd`, `recompute`,
`bwd` (a datum passes each stage once), `(update, stage, version)` for an optimizer step (one
version counter per stage, SPEC §3.2), and `(kind, sample, stage, k)` for the `k`-th
`send`/`recv` of a datum at a stage in time order (the schema's stage: the sending one on a
`send`, the receiving one on a `recv`; a stage sends a datum's activation up before its
gradient down, in both runs of one plan). Transfers of no datum's training (`worker` -1, e.g.
a prediction's input) are not paired.
Ops present on one side only (a run that stopped at the last arrival, a schedule that
differed) are counted, not paired.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from analysis.trace_table import COMPUTE_KINDS, KIND_CODES, KIND_NAMES, LINK_KINDS, TraceTable

ALIGNED_KINDS = COMPUTE_KINDS + LINK_KINDS
_UPDATE = KIND_CODES["update"]


@dataclass(frozen=True)
class AlignedOps:
    """The ops two traces share, paired by name (see the module docstring): one entry per pair.

    `predicted[i]` and `measured[i]` are row indices of pair `i` in the two tables; the `only_*` counts,
    by kind, are ops found on one side only.
    """

    kind: np.ndarray  # kind code of each pair
    predicted: np.ndarray  # row index in the predicted table
    measured: np.ndarray  # row index in the measured table
    only_predicted: dict[str, int]
    only_measured: dict[str, int]

    def __len__(self) -> int:
        return len(self.kind)


def op_keys(table: TraceTable) -> dict[tuple[int, int, int, int], int]:
    """Key → row index for every aligned op of `table`."""
    rows = np.flatnonzero(table.mask(*ALIGNED_KINDS) & ~(table.mask(*LINK_KINDS) & (table.worker < 0)))
    rows = rows[np.argsort(table.t_start[rows], kind="stable")]
    seen: Counter[tuple[int, int, int]] = Counter()
    keys: dict[tuple[int, int, int, int], int] = {}
    kinds, samples, stages, versions = (table.kind[rows], table.sample[rows], table.stage[rows], table.version[rows])
    for i, kind, sample, stage, version in zip(
        rows.tolist(), kinds.tolist(), samples.tolist(), stages.tolist(), versions.tolist(), strict=True
    ):
        base = (kind, version if kind == _UPDATE else sample, stage)
        keys[(*base, seen[base])] = i
        seen[base] += 1
    return keys


def align(predicted: TraceTable, measured: TraceTable) -> AlignedOps:
    pred, meas = op_keys(predicted), op_keys(measured)
    common = [k for k in pred if k in meas]
    only_p = Counter(KIND_NAMES[k[0]] for k in pred if k not in meas)
    only_m = Counter(KIND_NAMES[k[0]] for k in meas if k not in pred)
    return AlignedOps(
        kind=np.asarray([k[0] for k in common], dtype=np.int8),
        predicted=np.asarray([pred[k] for k in common], dtype=np.int64),
        measured=np.asarray([meas[k] for k in common], dtype=np.int64),
        only_predicted=dict(only_p),
        only_measured=dict(only_m),
    )
