"""The op-level trace shared by the twin and both executors (DESIGN.md §Trace schema).

One row per event, in the order events end (rows are sorted by `t_end`; rows with equal
`t_end` keep the order in which the schedule produced them). Fields:

| field | meaning |
| --- | --- |
| `kind` | `arrive`, `drop`, `fwd`, `recompute`, `bwd`, `update`, `send`, `recv`, `mem` (`predict` is reserved for executors) |
| `sample` | global arrival index of the datum (-1 for rows not about one datum: `update`, `mem`) |
| `worker`, `stage`, `device` | where the op ran (-1 where it does not apply) |
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
by field name, never by index. Only the engine's hot path appends plain tuples to a sink's
`rows` buffer (`kind, …, bytes` and, for an update, the comma-joined samples) — writers off the
hot path call `sink.add(row)` — and `flush()` formats and writes them in chunks, so a run of
millions of ops keeps only one chunk alive. JSON Lines by default, CSV on request (`samples`
space-separated).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from planner.errors import FerretError

KINDS = ("arrive", "predict", "fwd", "recompute", "bwd", "update", "send", "recv", "drop", "mem")
FIELDS = ("kind", "sample", "worker", "stage", "device", "t_start", "t_end", "version", "staleness", "bytes", "samples")
TRACE_FORMATS = ("jsonl", "csv")

# A row is a 10-tuple in FIELDS order without `samples`, or an 11-tuple whose last item is the
# comma-joined sample list (update rows). Formatting with `%` is the fastest pure-Python path.
_JSONL = (
    '{"kind":"%s","sample":%d,"worker":%d,"stage":%d,"device":%d,"t_start":%.12g,"t_end":%.12g,'
    '"version":%d,"staleness":%d,"bytes":%d}\n'
)
_JSONL_SAMPLES = _JSONL[:-2] + ',"samples":[%s]}\n'
_CSV = "%s,%d,%d,%d,%d,%.12g,%.12g,%d,%d,%d,\n"
_CSV_SAMPLES = "%s,%d,%d,%d,%d,%.12g,%.12g,%d,%d,%d,%s\n"


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


def _typed(raw: tuple[Any, ...]) -> TraceRow:
    """A hot-path row (a 10-tuple, or an 11-tuple ending in the comma-joined samples) as a `TraceRow`."""
    samples = tuple(int(s) for s in raw[10].split(",")) if len(raw) == 11 and raw[10] else ()
    return TraceRow._make((*raw[:10], samples))


def _raw(row: TraceRow) -> tuple[Any, ...]:
    """A `TraceRow` in the hot-path form the sinks format."""
    if row.kind == "update":
        return (*row[:10], ",".join(map(str, row.samples)))
    return tuple(row[:10])


class TraceSink:
    """Collects rows; subclasses decide where they go. `count` is the number of rows seen."""

    chunk_rows = 16384  # ~2 MiB of JSON per write; the transient strings stay small

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.count = 0

    def add(self, row: TraceRow) -> None:
        """Append a typed row (writers off the engine's hot path: the replay's recorder)."""
        self.rows.append(_raw(row))

    def maybe_flush(self) -> None:
        if len(self.rows) >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        # Cleared in place: the engine holds `rows.append` as a bound method.
        self.count += len(self.rows)
        self.rows.clear()

    def close(self) -> None:
        self.flush()


class NullTrace(TraceSink):
    """Counts rows and forgets them (what-if sweeps do not need the schedule)."""


class MemoryTrace(TraceSink):
    """Keeps every row (tests, small runs, the replay's schedule); `events()` returns them typed."""

    def __init__(self) -> None:
        super().__init__()
        self._kept: list[tuple[Any, ...]] = []

    def flush(self) -> None:
        self._kept.extend(self.rows)
        super().flush()

    def events(self) -> list[TraceRow]:
        self.flush()
        return [_typed(r) for r in self._kept]


class FileTrace(TraceSink):
    """Streams rows to `path` as JSON Lines or CSV, one formatted chunk at a time."""

    def __init__(self, path: str | os.PathLike[str], fmt: str = "jsonl") -> None:
        super().__init__()
        if fmt not in TRACE_FORMATS:
            raise FerretError(f"unknown trace format {fmt!r}; choose one of {', '.join(TRACE_FORMATS)}")
        self.path = Path(path)
        self.fmt = fmt
        self._file: TextIO | None = self.path.open("w", encoding="utf-8", newline="")
        if fmt == "csv":
            self._file.write(",".join(FIELDS) + "\n")

    def flush(self) -> None:
        if self._file is None:
            raise RuntimeError(f"trace {self.path} is closed")
        if self.fmt == "jsonl":
            plain, with_samples = _JSONL, _JSONL_SAMPLES
            text = "".join([plain % r if len(r) == 10 else with_samples % r for r in self.rows])
        else:
            plain, with_samples = _CSV, _CSV_SAMPLES
            text = "".join(
                [plain % r if len(r) == 10 else with_samples % (*r[:10], r[10].replace(",", " ")) for r in self.rows]
            )
        self._file.write(text)
        super().flush()

    def close(self) -> None:
        if self._file is not None:
            self.flush()
            self._file.close()
            self._file = None

    def __enter__(self) -> FileTrace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_trace(path: str | os.PathLike[str]) -> Iterator[TraceRow]:
    """Yield the events of a trace file (`.csv` is CSV, anything else JSON Lines), streaming."""
    p = Path(path)
    try:
        f = p.open(encoding="utf-8", newline="")
    except FileNotFoundError:
        raise FerretError(f"trace not found: {p}") from None
    except OSError as exc:
        raise FerretError(f"cannot read trace {p}: {exc}") from None
    with f:
        if p.suffix.lower() == ".csv":
            yield from _read_csv(f, p)
        else:
            yield from _read_jsonl(f, p)


def _read_jsonl(f: TextIO, p: Path) -> Iterator[TraceRow]:
    for lineno, line in enumerate(f, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            yield TraceRow(
                kind=obj["kind"],
                sample=int(obj["sample"]),
                worker=int(obj["worker"]),
                stage=int(obj["stage"]),
                device=int(obj["device"]),
                t_start=float(obj["t_start"]),
                t_end=float(obj["t_end"]),
                version=int(obj.get("version", -1)),
                staleness=int(obj.get("staleness", 0)),
                bytes=int(obj.get("bytes", 0)),
                samples=tuple(int(s) for s in obj.get("samples", ())),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise FerretError(f"trace {p} line {lineno} is not a trace event: {exc}") from None


def _read_csv(f: TextIO, p: Path) -> Iterator[TraceRow]:
    reader = csv.reader(f)
    header = next(reader, None)
    if header is None or tuple(header[: len(FIELDS) - 1]) != FIELDS[:-1]:
        raise FerretError(f"trace {p} has no trace header (expected {','.join(FIELDS)})")
    for lineno, row in enumerate(reader, start=2):
        try:
            yield TraceRow(
                kind=row[0],
                sample=int(row[1]),
                worker=int(row[2]),
                stage=int(row[3]),
                device=int(row[4]),
                t_start=float(row[5]),
                t_end=float(row[6]),
                version=int(row[7]),
                staleness=int(row[8]),
                bytes=int(row[9]),
                samples=tuple(int(s) for s in row[10].split()) if len(row) > 10 else (),
            )
        except (IndexError, ValueError) as exc:
            raise FerretError(f"trace {p} line {lineno} is not a trace event: {exc}") from None
