"""The op-level trace shared by the twin and both executors (DESIGN.md §Trace schema).

One row per event, in the order events end (rows are sorted by `t_end`; rows with equal
`t_end` keep the order in which the schedule produced them). Fields:

| field | meaning |
| --- | --- |
| `kind` | `arrive`, `drop`, `fwd`, `recompute`, `bwd`, `update`, `send`, `recv`, `mem` (`predict` is reserved for executors) |
| `sample` | global arrival index of the datum (-1 for rows not about one datum: `update`, `mem`) |
| `worker`, `stage`, `device` | where the op ran (-1 where it does not apply); a transfer's two rows each name their own end: `send` the sending stage and its device, `recv` the receiving stage and its device |
| `t_start`, `t_end` | seconds from the start of the stream |
| `version` | weight version of `stage` the op used: the stashed version a `fwd`/`recompute`/`bwd` ran against; for an `update`, the version it was applied to (it produces `version + 1`) |
| `staleness` | `bwd`: updates the stage received between this datum's forward and this backward; `update`: the largest staleness among the gradients it applies |
| `bytes` | `fwd`: activation bytes stored for the backward; `send`/`recv`: payload; `mem`: the device's bytes after the change; `drop`: 1 if the datum fell on a removed worker, else 0 |
| `samples` | `update` rows only: the samples whose gradients this step applies (an accumulation group or mini-batch), in backward order |

Replaying a trace op by op needs only these rows: every datum is predicted at its `arrive` row
with the weights as of that row; `fwd`/`recompute`/`bwd` name the version to run against;
`update` rows say which accumulated gradients to apply and when.

One type: `TraceRow` (a NamedTuple with the fields above, `samples` a tuple of ints) is what
every reader (`read_trace`) and every sink (`MemoryTrace.events()`) hands out; code reads rows
by field name, never by index.

Writing: a sink collects rows as packed bytes (`ROW`: the fields but `samples`, with the kind
as its index in `KINDS` and, last, the number of samples) in `rows` (a `BytesWriter`), and an
update's samples in `samples`. The engine writes them on its hot path (`sim.rows.write_row`);
everyone else calls `sink.add(row)`. Every `chunk_rows` rows become one chunk — a numpy
structured array of `ROW_DTYPE` (zero-copy from the packed bytes) and an int64 array of the
samples — which the sink writes (`sim.trace_files`: the binary `ftrace` file by default, JSON
Lines or CSV on request), so a run of millions of ops holds one chunk at a time.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from librt.strings import BytesWriter

KINDS = ("arrive", "predict", "fwd", "recompute", "bwd", "update", "send", "recv", "drop", "mem")
KIND_CODE = {kind: code for code, kind in enumerate(KINDS)}
FIELDS = ("kind", "sample", "worker", "stage", "device", "t_start", "t_end", "version", "staleness", "bytes", "samples")

ROW = struct.Struct("<BqiiiddqiqI")
ROW_DTYPE = np.dtype(
    [
        ("kind", "u1"),
        ("sample", "<i8"),
        ("worker", "<i4"),
        ("stage", "<i4"),
        ("device", "<i4"),
        ("t_start", "<f8"),
        ("t_end", "<f8"),
        ("version", "<i8"),
        ("staleness", "<i4"),
        ("bytes", "<i8"),
        ("nsamples", "<u4"),
    ]
)
assert ROW.size == ROW_DTYPE.itemsize


class TraceRow(NamedTuple):
    """One row of the trace: the type every reader and sink hands out (fields: the table above)."""

    kind: str
    sample: int
    worker: int
    stage: int
    device: int
    t_start: float
    t_end: float
    version: int = -1
    staleness: int = 0
    bytes: int = 0
    samples: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in FIELDS[:-1]}
        if self.kind == "update":
            out["samples"] = list(self.samples)
        return out


class Chunk(NamedTuple):
    """Rows as a structured array of `ROW_DTYPE` and the samples of its update rows, in order."""

    rows: np.ndarray
    samples: np.ndarray

    def typed(self) -> Iterator[TraceRow]:
        samples = self.samples.tolist()
        at = 0
        for kind, *fields, n in self.rows.tolist():
            yield TraceRow._make((KINDS[kind], *fields, tuple(samples[at : at + n]) if n else ()))
            at += n


class TraceSink:
    """Collects packed rows; subclasses decide where each chunk goes. `count`: rows written."""

    chunk_rows = 16384
    keeps_rows = True  # False: the engine skips building rows at all (NullTrace)

    def __init__(self) -> None:
        self.rows = BytesWriter()  # packed `ROW`s
        self.samples: list[int] = []
        self.count = 0

    def add(self, row: TraceRow) -> None:
        """Append a typed row (writers off the engine's hot path: the replay's recorder)."""
        self.rows.write(
            ROW.pack(
                KIND_CODE[row.kind],
                row.sample,
                row.worker,
                row.stage,
                row.device,
                row.t_start,
                row.t_end,
                row.version,
                row.staleness,
                row.bytes,
                len(row.samples),
            )
        )
        self.samples.extend(row.samples)

    def maybe_flush(self) -> None:
        if len(self.rows) >= self.chunk_rows * ROW.size:
            self.flush()

    def flush(self) -> None:
        if not len(self.rows):
            return
        chunk = Chunk(np.frombuffer(self.rows.getvalue(), dtype=ROW_DTYPE), np.array(self.samples, dtype=np.int64))
        # Cleared in place: the engine holds these two.
        self.rows.truncate(0)
        self.samples.clear()
        self.count += len(chunk.rows)
        self.write(chunk)

    def write(self, chunk: Chunk) -> None:
        """Where a chunk goes (nowhere here)."""

    def close(self) -> None:
        self.flush()


class NullTrace(TraceSink):
    """Keeps nothing: the engine builds no rows for it (what-if sweeps do not need the schedule)."""

    keeps_rows = False


class MemoryTrace(TraceSink):
    """Keeps every row (tests, small runs, the replay's schedule); `events()` returns them typed."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[Chunk] = []

    def write(self, chunk: Chunk) -> None:
        self.chunks.append(chunk)

    def events(self) -> list[TraceRow]:
        self.flush()
        return [row for chunk in self.chunks for row in chunk.typed()]


class FileTrace(TraceSink):
    """Streams rows to `path`, one chunk at a time: `ftrace` (binary), `jsonl` or `csv`; by
    default the format its suffix names (`.jsonl`, `.csv`; anything else `ftrace`)."""

    def __init__(self, path: str | os.PathLike[str], fmt: str | None = None) -> None:
        from sim.trace_files import open_writer, trace_format

        super().__init__()
        self.path = Path(path)
        self.fmt = trace_format(self.path) if fmt is None else fmt
        self._writer = open_writer(self.path, self.fmt)

    def write(self, chunk: Chunk) -> None:
        self._writer.write(chunk)

    def close(self) -> None:
        if not self._writer.closed:
            self.flush()
            self._writer.close()

    def __enter__(self) -> FileTrace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_trace(path: str | os.PathLike[str]) -> Iterator[TraceRow]:
    """Yield the rows of a trace file (ftrace, JSON Lines or CSV: `sim.trace_files`), streaming."""
    from sim.trace_files import read_rows

    yield from read_rows(path)
