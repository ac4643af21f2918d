"""A trace as columns: what `validate` and `calibrate` compute on, read through `sim.trace`.

Rows come from `sim.trace.read_trace` (the only trace reader) and are read by field name, so a
change of the row type keeps this module working. Columns are numpy arrays in file order;
`kind` is a small integer code (`KIND_CODES`) so that masks are cheap. `update_samples[i]` is
the sample list of row `i` when it is an `update` row (else empty).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from planner.errors import FerretError
from sim.trace import KINDS, read_trace

KIND_CODES = {kind: code for code, kind in enumerate(KINDS)}
KIND_NAMES = dict(enumerate(KINDS))  # code → kind
COMPUTE_KINDS = ("fwd", "recompute", "bwd", "update")
LINK_KINDS = ("send", "recv")


@dataclass(frozen=True, eq=False)
class TraceTable:
    """One trace's rows as parallel columns (seconds, bytes, indices as in the trace schema)."""

    kind: np.ndarray  # int8 codes into sim.trace.KINDS
    sample: np.ndarray
    worker: np.ndarray
    stage: np.ndarray
    device: np.ndarray
    t_start: np.ndarray
    t_end: np.ndarray
    version: np.ndarray
    staleness: np.ndarray
    bytes: np.ndarray
    update_samples: tuple[tuple[int, ...], ...]
    source: str = "trace"

    def __len__(self) -> int:
        return len(self.kind)

    @property
    def duration(self) -> np.ndarray:
        return self.t_end - self.t_start

    def mask(self, *kinds: str) -> np.ndarray:
        return np.isin(self.kind, [KIND_CODES[k] for k in kinds])

    @property
    def num_stages(self) -> int:
        ops = self.mask(*COMPUTE_KINDS)
        return int(self.stage[ops].max()) + 1 if ops.any() else 0

    @classmethod
    def from_rows(cls, rows: Iterable[Any], source: str = "trace") -> TraceTable:
        names = ("sample", "worker", "stage", "device", "version", "staleness", "bytes")
        ints: dict[str, list[int]] = {name: [] for name in names}
        kinds: list[int] = []
        starts: list[float] = []
        ends: list[float] = []
        samples: list[tuple[int, ...]] = []
        for row in rows:
            code = KIND_CODES.get(row.kind)
            if code is None:
                raise FerretError(f"{source}: unknown trace row kind {row.kind!r}; known: {', '.join(KINDS)}")
            kinds.append(code)
            for name in names:
                ints[name].append(getattr(row, name))
            starts.append(row.t_start)
            ends.append(row.t_end)
            samples.append(tuple(row.samples) if row.kind == "update" else ())
        return cls(
            kind=np.asarray(kinds, dtype=np.int8),
            **{name: np.asarray(values, dtype=np.int64) for name, values in ints.items()},
            t_start=np.asarray(starts, dtype=np.float64),
            t_end=np.asarray(ends, dtype=np.float64),
            update_samples=tuple(samples),
            source=source,
        )


def load_table(path: str | os.PathLike[str]) -> TraceTable:
    """Read a trace file (JSON Lines or CSV); an empty one is a user error."""
    p = Path(path)
    table = TraceTable.from_rows(read_trace(p), source=str(p))
    if len(table) == 0:
        raise FerretError(f"trace {p} is empty")
    return table
