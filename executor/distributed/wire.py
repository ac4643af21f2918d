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
fewer waits and fewer hand-overs of the interpreter between a rank's wire threads and its loop.
With CUDA tensors (NCCL) the frame carries the header only and each tensor is its own transfer
on the data channel (`empty_tensors` allocates them on the device).

Layout of the header: `[kind, f0 … f7, n_tensors, (dtype, ndim, d0 … d5) × 4]`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from executor.pipeline.transport import Message

MAX_FIELDS = 8
MAX_TENSORS = 4  # an activation, its labels, row weights, Fisher traces (protocol.py)
MAX_DIMS = 6
_SPEC = 2 + MAX_DIMS
_TENSORS_AT = 1 + MAX_FIELDS + 1
HEADER_LEN = _TENSORS_AT + MAX_TENSORS * _SPEC
HEADER_BYTES = HEADER_LEN * 8
# One CPU message's transfer: the header and a payload of up to FRAME_BYTES − HEADER_BYTES
# (mnistnet's activations and gradients with their labels: about 1 KiB).
FRAME_BYTES = 4096
_ALIGN = 8  # every tensor's bytes start at a multiple of 8 in a frame or payload (any dtype may view them)
_PAD = torch.zeros(FRAME_BYTES, dtype=torch.uint8)  # read only: the zero bytes between and after tensors

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


def encode_header(message: Message) -> torch.Tensor:
    """The int64 header of `message` (on the CPU: headers always travel through gloo-able memory)."""
    fields, tensors = message.fields, message.tensors
    if len(fields) > MAX_FIELDS:
        raise ValueError(f"a message carries at most {MAX_FIELDS} fields, got {len(fields)}")
    if len(tensors) > MAX_TENSORS:
        raise ValueError(f"a message carries at most {MAX_TENSORS} tensors, got {len(tensors)}")
    header = [0] * HEADER_LEN
    header[0] = message.kind
    header[1 : 1 + len(fields)] = fields
    header[_TENSORS_AT - 1] = len(tensors)
    for t, tensor in enumerate(tensors):
        if tensor.dim() > MAX_DIMS:
            raise ValueError(f"a message tensor has at most {MAX_DIMS} dimensions, got shape {tuple(tensor.shape)}")
        code = _CODE.get(tensor.dtype)
        if code is None:
            raise ValueError(f"dtype {tensor.dtype} cannot travel (one of {', '.join(map(str, DTYPES))})")
        at = _TENSORS_AT + t * _SPEC
        header[at] = code
        header[at + 1] = tensor.dim()
        header[at + 2 : at + 2 + tensor.dim()] = tensor.shape
    return torch.tensor(header, dtype=torch.int64)


@dataclass(frozen=True, slots=True)
class Header:
    """A decoded header: the message without its tensors, and what to allocate for them."""

    kind: int
    fields: tuple[int, ...]
    specs: tuple[tuple[torch.dtype, tuple[int, ...]], ...]

    def empty_tensors(self, device: torch.device) -> list[torch.Tensor]:
        return [torch.empty(shape, dtype=dtype, device=device) for dtype, shape in self.specs]

    @property
    def payload_bytes(self) -> int:
        """The bytes `pack` lays the tensors out in (each tensor's aligned)."""
        return sum(_aligned(math.prod(shape) * dtype.itemsize) for dtype, shape in self.specs)

    def unpack(self, payload: torch.Tensor) -> list[torch.Tensor]:
        """The tensors, as views of the uint8 `payload` that `pack` laid out (frame or payload transfer)."""
        tensors = []
        at = 0
        for dtype, shape in self.specs:
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes:
                tensors.append(payload[at : at + nbytes].view(dtype).view(shape))
            else:
                tensors.append(torch.empty(shape, dtype=dtype))
            at += _aligned(nbytes)
        return tensors

    def message(self, tensors: Sequence[torch.Tensor], ready: Any = None) -> Message:
        return Message(self.kind, self.fields, tuple(tensors), ready)


def pack(message: Message) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`message` (CPU tensors) as a `FRAME_BYTES` uint8 frame — the header and, when it fits, the
    payload — and the payload apart when it does not (else None)."""
    header = encode_header(message).view(torch.uint8)
    parts = []
    size = 0
    for tensor in message.tensors:
        nbytes = tensor.numel() * tensor.element_size()
        if nbytes:
            parts.append(tensor.contiguous().view(-1).view(torch.uint8))  # a strided one: copied first
            gap = _aligned(nbytes) - nbytes
            if gap:
                parts.append(_PAD[:gap])
            size += nbytes + gap
    if fits(size):
        return torch.cat([header, *parts, _PAD[: FRAME_BYTES - HEADER_BYTES - size]]), None
    return torch.cat([header, _PAD[: FRAME_BYTES - HEADER_BYTES]]), torch.cat(parts)


def fits(payload_bytes: int) -> bool:
    """Whether a payload this big travels inside the frame (else: a transfer of its own)."""
    return HEADER_BYTES + payload_bytes <= FRAME_BYTES


def _aligned(nbytes: int) -> int:
    return -(-nbytes // _ALIGN) * _ALIGN


def decode_header(header: torch.Tensor) -> Header:
    values = header.tolist()
    if len(values) != HEADER_LEN:
        raise ValueError(f"a header has {HEADER_LEN} entries, got {len(values)}")
    count = values[_TENSORS_AT - 1]
    if not 0 <= count <= MAX_TENSORS:
        raise ValueError(f"corrupt header: {count} tensors")
    specs = []
    for t in range(count):
        at = _TENSORS_AT + t * _SPEC
        code, ndim = values[at], values[at + 1]
        if not (0 <= code < len(DTYPES) and 0 <= ndim <= MAX_DIMS):
            raise ValueError(f"corrupt header: tensor {t} has dtype code {code}, {ndim} dimensions")
        specs.append((DTYPES[code], tuple(values[at + 2 : at + 2 + ndim])))
    return Header(values[0], tuple(values[1 : 1 + MAX_FIELDS]), tuple(specs))
