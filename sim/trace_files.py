"""Trace files: the binary `ftrace` format (the default) and the JSON Lines / CSV exports.

**ftrace** is a sequence of numpy `.npy` arrays, two per chunk: the rows (a structured array
of `sim.trace.ROW_DTYPE`: the schema's fields but `samples`, the kind as its index in `KINDS`,
and `nsamples`) then the samples of that chunk's update rows (int64, in row order, `nsamples`
each). Written as the run goes, read back chunk by chunk with `np.lib.format.read_array` — no
parsing, about 60 bytes a row. Any numpy reads it::

    with open("trace.ftrace", "rb") as f:
        while f.peek(1):
            rows, samples = np.lib.format.read_array(f), np.lib.format.read_array(f)

**jsonl** (one object per row, `samples` only on updates) and **csv** (a header, `samples`
space-separated) are the same rows as text, for other tools; times with 12 significant digits.
`read_chunks`/`read_trace` take any of the three, told apart by the file's first bytes.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol, TextIO

import numpy as np

from planner.errors import FerretError
from sim.trace import FIELDS, KIND_CODE, KINDS, ROW, ROW_DTYPE, Chunk, MemoryTrace, TraceRow

TRACE_FORMATS = ("ftrace", "jsonl", "csv")
_MAGIC = b"\x93NUMPY"

_JSONL = (
    '{"kind":"%s","sample":%d,"worker":%d,"stage":%d,"device":%d,"t_start":%.12g,"t_end":%.12g,'
    '"version":%d,"staleness":%d,"bytes":%d}\n'
)
_JSONL_SAMPLES = _JSONL[:-2] + ',"samples":[%s]}\n'
_CSV = "%s,%d,%d,%d,%d,%.12g,%.12g,%d,%d,%d,%s\n"
# What each integer field of a text row may hold: its column's range in the binary rows, which
# every reader packs it into (a value outside would fail deep in the packing, not as one line).
_RANGES = {
    name: (int(np.iinfo(ROW_DTYPE[name]).min), int(np.iinfo(ROW_DTYPE[name]).max))
    for name in ("sample", "worker", "stage", "device", "version", "staleness", "bytes")
}
_SAMPLE_RANGE = (int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max))
_MAX_SAMPLES = int(np.iinfo(ROW_DTYPE["nsamples"]).max)


def trace_format(path: str | os.PathLike[str]) -> str:
    """The format a trace file of this name is written in: by suffix, `ftrace` unless `.jsonl`/`.csv`."""
    suffix = Path(path).suffix.lower().lstrip(".")
    return suffix if suffix in ("jsonl", "csv") else "ftrace"


class ChunkWriter(Protocol):
    """A trace sink for one open file: `write` appends a chunk of rows in its format, `close` ends it.

    `open_writer` makes one per format (`ftrace`, `jsonl`, `csv`); `closed` is True after `close`.
    """

    closed: bool

    def write(self, chunk: Chunk) -> None: ...

    def close(self) -> None: ...


class _BinaryWriter:
    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.closed = False

    def write(self, chunk: Chunk) -> None:
        np.lib.format.write_array(self.f, chunk.rows, allow_pickle=False)
        np.lib.format.write_array(self.f, chunk.samples, allow_pickle=False)

    def close(self) -> None:
        self.f.close()
        self.closed = True


class _TextWriter:
    def __init__(self, f: TextIO, fmt: str) -> None:
        self.f = f
        self.fmt = fmt
        self.closed = False
        if fmt == "csv":
            f.write(",".join(FIELDS) + "\n")

    def write(self, chunk: Chunk) -> None:
        samples = chunk.samples.tolist()
        at = 0
        lines = []
        csv_format = self.fmt == "csv"
        for kind, *fields, n in chunk.rows.tolist():
            some = samples[at : at + n]
            at += n
            if csv_format:
                lines.append(_CSV % (KINDS[kind], *fields, " ".join(map(str, some))))
            elif kind == KIND_CODE["update"]:
                lines.append(_JSONL_SAMPLES % (KINDS[kind], *fields, ",".join(map(str, some))))
            else:
                lines.append(_JSONL % (KINDS[kind], *fields))
        self.f.write("".join(lines))

    def close(self) -> None:
        self.f.close()
        self.closed = True


def open_writer(path: Path, fmt: str) -> ChunkWriter:
    if fmt not in TRACE_FORMATS:
        raise FerretError(f"unknown trace format {fmt!r}; choose one of {', '.join(TRACE_FORMATS)}")
    if fmt == "ftrace":
        return _BinaryWriter(path.open("wb"))
    return _TextWriter(path.open("w", encoding="utf-8", newline=""), fmt)


# ---------------------------------------------------------------------------------- reading
def read_chunks(path: str | os.PathLike[str]) -> Iterator[Chunk]:
    """The chunks of a trace file in any format (text is parsed and re-chunked), streaming."""
    p = Path(path)
    if _is_binary(p):
        with p.open("rb") as f:
            yield from _read_binary(f, p)
    else:
        yield from _rechunk(_read_text(p))


def read_rows(path: str | os.PathLike[str]) -> Iterator[TraceRow]:
    """The rows of a trace file in any format, streaming."""
    p = Path(path)
    if _is_binary(p):
        with p.open("rb") as f:
            for chunk in _read_binary(f, p):
                yield from chunk.typed()
    else:
        yield from _read_text(p)


def _is_binary(p: Path) -> bool:
    try:
        with p.open("rb") as f:
            return f.read(len(_MAGIC)) == _MAGIC
    except FileNotFoundError:
        raise FerretError(f"trace not found: {p}") from None
    except OSError as exc:
        raise FerretError(f"cannot read trace {p}: {exc}") from None


def _read_binary(f: BinaryIO, p: Path) -> Iterator[Chunk]:
    while f.peek(1):  # type: ignore[attr-defined]
        try:
            rows = np.lib.format.read_array(f, allow_pickle=False)
            samples = np.lib.format.read_array(f, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise FerretError(f"trace {p} is not a complete ftrace file: {exc}") from None
        if rows.dtype != ROW_DTYPE or samples.dtype != np.int64 or int(rows["nsamples"].sum()) != len(samples):
            raise FerretError(f"trace {p} is not an ftrace file of this schema (rows {rows.dtype})")
        if len(rows) and int(rows["kind"].max()) >= len(KINDS):
            raise FerretError(f"trace {p} has an unknown kind code {int(rows['kind'].max())}")
        yield Chunk(rows, samples)


def _rechunk(rows: Iterator[TraceRow]) -> Iterator[Chunk]:
    sink = MemoryTrace()
    for row in rows:
        sink.add(row)
        if len(sink.rows) >= sink.chunk_rows * ROW.size:
            sink.flush()
            yield from sink.chunks
            sink.chunks.clear()
    sink.flush()
    yield from sink.chunks


def _read_text(p: Path) -> Iterator[TraceRow]:
    with p.open(encoding="utf-8", newline="") as f:
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
            _check_kind(obj["kind"], p, lineno)
            yield _fitting(
                TraceRow(
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
            _check_kind(row[0], p, lineno)
            yield _fitting(
                TraceRow(
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
            )
        except (IndexError, ValueError) as exc:
            raise FerretError(f"trace {p} line {lineno} is not a trace event: {exc}") from None


def _check_kind(kind: object, p: Path, lineno: int) -> None:
    if kind not in KIND_CODE:
        raise FerretError(f"trace {p} line {lineno}: unknown kind {kind!r} (known: {', '.join(KINDS)})")


def _fitting(row: TraceRow) -> TraceRow:
    """`row`, once each integer is known to fit its column of the binary rows (ValueError if not)."""
    for name, (lo, hi) in _RANGES.items():
        value = getattr(row, name)
        if not lo <= value <= hi:
            raise ValueError(f"{name} {value} is outside [{lo}, {hi}]")
    if row.samples:
        lo, hi = _SAMPLE_RANGE
        if not (lo <= min(row.samples) and max(row.samples) <= hi) or len(row.samples) > _MAX_SAMPLES:
            raise ValueError(f"samples must be at most {_MAX_SAMPLES} integers in [{lo}, {hi}]")
    return row
