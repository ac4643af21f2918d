"""The wire format of a message between two ranks: a fixed-size header, then its tensors.

A message is a `kind`, up to `MAX_FIELDS` integers (sample, worker, stage, version …) and up
to `MAX_TENSORS` tensors of any shape and dtype. On the wire it is one int64 header tensor of
`HEADER_LEN` entries followed by one transfer per tensor, in order. The header says each
tensor's dtype and shape, so the receiver allocates exactly what comes next: shapes may vary
from message to message (ER/MIR micro-batches grow by their replayed rows). The format has no
tags and no lengths to negotiate: a receiver reads a channel strictly in order, which is all
NCCL offers (it ignores tags) and all gloo needs.

Layout of the header: `[kind, f0 … f7, n_tensors, (dtype, ndim, d0 … d5) × 4]`.
"""

from __future__ import annotations

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

    def message(self, tensors: Sequence[torch.Tensor], ready: Any = None) -> Message:
        return Message(self.kind, self.fields, tuple(tensors), ready)


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
