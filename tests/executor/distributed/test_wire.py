"""The message header: what goes in comes out, for every dtype and shape the protocol allows."""

from __future__ import annotations

import pytest
import torch

from executor.distributed.wire import DTYPES, HEADER_LEN, MAX_DIMS, MAX_TENSORS, decode_header, encode_header
from executor.pipeline.transport import Message


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_header_describes_its_tensors(dtype):
    tensors = (torch.zeros(3, 1, 8, 8, dtype=dtype), torch.zeros(0, dtype=torch.int64), torch.zeros((), dtype=dtype))
    message = Message(5, (7, -1, 2, 123456789012), tensors)
    header = encode_header(message)
    assert header.dtype == torch.int64 and header.shape == (HEADER_LEN,)
    decoded = decode_header(header)
    assert decoded.kind == 5
    assert decoded.fields[:4] == (7, -1, 2, 123456789012) and decoded.fields[4:] == (0,) * 4
    assert decoded.specs == tuple((t.dtype, tuple(t.shape)) for t in tensors)
    empty = decoded.empty_tensors(torch.device("cpu"))
    assert [(t.dtype, t.shape) for t in empty] == [(t.dtype, t.shape) for t in tensors]
    assert decoded.message(empty).field(1) == -1 and decoded.message(empty).field(7) == 0


def test_what_cannot_travel_is_refused():
    with pytest.raises(ValueError, match="fields"):
        encode_header(Message(0, tuple(range(9))))
    with pytest.raises(ValueError, match="tensors"):
        encode_header(Message(0, (), tuple(torch.zeros(1) for _ in range(MAX_TENSORS + 1))))
    with pytest.raises(ValueError, match="dimensions"):
        encode_header(Message(0, (), (torch.zeros((1,) * (MAX_DIMS + 1)),)))
    with pytest.raises(ValueError, match="dtype"):
        encode_header(Message(0, (), (torch.zeros(1, dtype=torch.complex64),)))


def test_a_corrupt_header_is_refused():
    header = encode_header(Message(1, (), (torch.zeros(2),)))
    header[9] = MAX_TENSORS + 1
    with pytest.raises(ValueError, match="corrupt"):
        decode_header(header)
    header = encode_header(Message(1, (), (torch.zeros(2),)))
    header[10] = len(DTYPES)
    with pytest.raises(ValueError, match="corrupt"):
        decode_header(header)
