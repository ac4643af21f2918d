"""The wire format of a message between two ranks: a fixed-size frame, then (maybe) its payload.

A message is a `kind`, up to `MAX_FIELDS` integers (sample, worker, stage, version …) and up
to `MAX_TENSORS` tensors of any shape and dtype. Its header is `HEADER_LEN` int64s; it says each
tensor's dtype and shape, so the receiver knows exactly what follows: shapes may vary from
message to message (ER/MIR micro-batches grow by their replayed rows). The format has no tags
and no lengths to negotiate: a receiver reads a channel strictly in order, which is all NCCL
offers (it ignores tags) and all gloo needs.

On the CPU (gloo) a message is ONE transfer when it fits: a frame of `FRAME_BYTES` — the header,
then the tensors' bytes one after the other, each starting at a multiple of 8 — and, only for a
payload too big for the frame, one second transfer of exactly the payload (`pack`, and
`Header.unpack` on the other side: the tensors are views of what arrived). Fewer transfers are
fewer waits and fewer hand-overs of the interpreter between a rank's wire threads and its loop;
for the same reason `pack` and `unpack` work through `struct` and numpy, with no torch call
(each would let go of the interpreter lock, and the loop might take it and then sleep on it).
With CUDA tensors (NCCL) the frame carries the header only and each tensor is its own transfer
on the data channel (`empty_tensors` allocates them on the device).

Layout of the header: `[kind, f0 … f7, n_tensors, (dtype, ndim, d0 … d5) × 6]`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from executor.pipeline.transport import Message

MAX_FIELDS = 8
MAX_TENSORS = 6  # an activation, its labels, row weights, Fisher traces, LwF's teacher activation and classes
MAX_DIMS = 6
_SPEC = 2 + MAX_DIMS
_TENSORS_AT = 1 + MAX_FIELDS + 1
HEADER_LEN = _TENSORS_AT + MAX_TENSORS * _SPEC
HEADER_BYTES = HEADER_LEN * 8
# One CPU message's transfer: the header and a payload of up to FRAME_BYTES − HEADER_BYTES
# (mnistnet's activations and gradients with their labels: about 1 KiB).
FRAME_BYTES = 4096
_ALIGN = 8  # every tensor's bytes start at a multiple of 8 in a frame or payload (any dtype may view them)
_HEADER = struct.Struct(f"<{HEADER_LEN}q")  # the header's int64s, read and written in one call
_ZEROS = (0,) * HEADER_LEN  # the header's unused entries

# Codes are part of the wire format: append, never reorder.
DTYPES: tuple[torch.dtype, ...] = (
    torch.float32,
    torch.float64,
    torch.float16,
    torch.bfloat16,
    torch.int64,
    torch.int32,
    torch.int16,
    torch.int8,
    torch.uint8,
    torch.bool,
)
_CODE = {dtype: code for code, dtype in enumerate(DTYPES)}
# The bytes are copied and viewed through numpy (no torch call: none lets go of the interpreter
# lock a wire thread shares with the rank's loop); numpy has no bfloat16, whose bits travel as int16.
_AS_NUMPY = {dtype: torch.empty(0, dtype=torch.int16 if dtype == torch.bfloat16 else dtype).numpy().dtype
             for dtype in DTYPES}  # fmt: skip


def _header_values(message: Message) -> list[int]:
    """The header's `HEADER_LEN` integers (`ValueError` for what cannot travel)."""
    fields, tensors = message.fields, message.tensors
    if len(fields) > MAX_FIELDS:
        raise ValueError(f"a message carries at most {MAX_FIELDS} fields, got {len(fields)}")
    if len(tensors) > MAX_TENSORS:
        raise ValueError(f"a message carries at most {MAX_TENSORS} tensors, got {len(tensors)}")
    values = [message.kind, *fields, *_ZEROS[: MAX_FIELDS - len(fields)], len(tensors)]
    for tensor in tensors:
        shape = tensor.shape
        ndim = len(shape)
        if ndim > MAX_DIMS:
            raise ValueError(f"a message tensor has at most {MAX_DIMS} dimensions, got shape {tuple(shape)}")
        code = _CODE.get(tensor.dtype)
        if code is None:
            raise ValueError(f"dtype {tensor.dtype} cannot travel (one of {', '.join(map(str, DTYPES))})")
        values += (code, ndim, *shape, *_ZEROS[: MAX_DIMS - ndim])
    values += _ZEROS[: HEADER_LEN - len(values)]
    return values


def encode_header(message: Message) -> torch.Tensor:
    """The int64 header of `message` (on the CPU: headers always travel through gloo-able memory)."""
    return torch.tensor(_header_values(message), dtype=torch.int64)


class Header(NamedTuple):
    """A decoded header: the message without its tensors, and what to allocate for them
    (`sizes`: each tensor's bytes, unpadded). (A named tuple: a receiving wire thread makes
    one per message.)"""

    kind: int
    fields: tuple[int, ...]
    specs: tuple[tuple[torch.dtype, tuple[int, ...]], ...]
    sizes: tuple[int, ...]

    def empty_tensors(self, device: torch.device) -> list[torch.Tensor]:
        return [torch.empty(shape, dtype=dtype, device=device) for dtype, shape in self.specs]

    @property
    def payload_bytes(self) -> int:
        """The bytes `pack` lays the tensors out in (each tensor's aligned)."""
        return sum(_aligned(nbytes) for nbytes in self.sizes)

    def unpack(self, payload: torch.Tensor) -> list[torch.Tensor]:
        """The tensors, as views of the uint8 `payload` that `pack` laid out (frame or payload transfer)."""
        data = payload.numpy()
        tensors = []
        at = 0
        for (dtype, shape), nbytes in zip(self.specs, self.sizes, strict=True):
            tensor = torch.from_numpy(data[at : at + nbytes].view(_AS_NUMPY[dtype]).reshape(shape))
            tensors.append(tensor.view(dtype) if dtype == torch.bfloat16 else tensor)
            at += _aligned(nbytes)
        return tensors

    def message(self, tensors: Sequence[torch.Tensor], ready: Any = None) -> Message:
        return Message(self.kind, self.fields, tuple(tensors), ready)


def pack(message: Message) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`message` (CPU tensors) as a `FRAME_BYTES` uint8 frame — the header and, when it fits, the
    payload — and the payload apart when it does not (else None)."""
    values = _header_values(message)
    arrays = []
    size = 0
    for tensor in message.tensors:
        if tensor.requires_grad:
            tensor = tensor.detach()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.view(torch.int16)
        array = np.ascontiguousarray(tensor.numpy().reshape(-1)).view(np.uint8)  # a strided one: copied
        arrays.append(array)
        size += _aligned(array.nbytes)
    frame = np.zeros(FRAME_BYTES, dtype=np.uint8)
    _HEADER.pack_into(frame.data, 0, *values)
    one = fits(size)
    payload = frame if one else np.zeros(size, dtype=np.uint8)
    at = HEADER_BYTES if one else 0
    for array in arrays:
        payload[at : at + array.nbytes] = array
        at += _aligned(array.nbytes)
    return torch.from_numpy(frame), None if one else torch.from_numpy(payload)


def fits(payload_bytes: int) -> bool:
    """Whether a payload this big travels inside the frame (else: a transfer of its own)."""
    return HEADER_BYTES + payload_bytes <= FRAME_BYTES


def _aligned(nbytes: int) -> int:
    return -(-nbytes // _ALIGN) * _ALIGN


def decode_header(header: torch.Tensor) -> Header:
    """The header at the start of `header` (a CPU tensor: the int64 header, or a whole frame)."""
    data = header.numpy()
    if data.nbytes < HEADER_BYTES:
        raise ValueError(f"a header has {HEADER_BYTES} bytes, got {data.nbytes}")
    values = _HEADER.unpack_from(data.data)
    count = values[_TENSORS_AT - 1]
    if not 0 <= count <= MAX_TENSORS:
        raise ValueError(f"corrupt header: {count} tensors")
    specs = []
    sizes = []
    for t in range(count):
        at = _TENSORS_AT + t * _SPEC
        code, ndim = values[at], values[at + 1]
        if not (0 <= code < len(DTYPES) and 0 <= ndim <= MAX_DIMS):
            raise ValueError(f"corrupt header: tensor {t} has dtype code {code}, {ndim} dimensions")
        dtype, shape = DTYPES[code], values[at + 2 : at + 2 + ndim]
        specs.append((dtype, shape))
        sizes.append(math.prod(shape) * dtype.itemsize)
    return Header(values[0], values[1 : _TENSORS_AT - 1], tuple(specs), tuple(sizes))
