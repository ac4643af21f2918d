"""Trace rows and memory changes packed into byte buffers: the bytes the engine writes per op.

The engine writes each trace row (`sim.trace.ROW`) and each memory change (`sim.memory.CHANGE`)
into a `BytesWriter` (from `librt`, mypyc's runtime library). Compiled (docs/sim.md §6), every
field is one store into the buffer — no Python object is made for it — which is 4–5× faster
than a `struct` call with eleven boxed arguments. Interpreted, one `struct` call beats eleven
function calls, so these functions take that path there; both give the same bytes (a test
compares them field for field).
"""

from __future__ import annotations

import struct
from typing import Final

from librt.strings import BytesWriter, write_f64_le, write_i32_le, write_i64_le

from sim.trace import ROW

COMPILED: Final = not __file__.endswith(".py")  # this module runs compiled (mypyc)
CHANGE: Final = struct.Struct("<dqq")  # a memory change: t, device, signed bytes
_row_pack: Final = ROW.pack
_change_pack: Final = CHANGE.pack


def write_row(
    w: BytesWriter,
    kind: int,
    sample: int,
    worker: int,
    stage: int,
    device: int,
    t_start: float,
    t_end: float,
    version: int,
    staleness: int,
    nbytes: int,
    nsamples: int,
) -> None:
    """Append one `ROW` (the trace schema's fields but `samples`, the kind as its code)."""
    if COMPILED:
        w.append(kind)
        write_i64_le(w, sample)
        write_i32_le(w, worker)
        write_i32_le(w, stage)
        write_i32_le(w, device)
        write_f64_le(w, t_start)
        write_f64_le(w, t_end)
        write_i64_le(w, version)
        write_i32_le(w, staleness)
        write_i64_le(w, nbytes)
        write_i32_le(w, nsamples)
    else:
        w.write(_row_pack(kind, sample, worker, stage, device, t_start, t_end, version, staleness, nbytes, nsamples))


def write_change(w: BytesWriter, t: float, device: int, delta: int) -> None:
    """Append one `CHANGE`: `device` holds `delta` more bytes from time `t` on."""
    if COMPILED:
        write_f64_le(w, t)
        write_i64_le(w, device)
        write_i64_le(w, delta)
    else:
        w.write(_change_pack(t, device, delta))
