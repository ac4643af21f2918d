"""The message header: what goes in comes out, for every dtype and shape the protocol allows."""

from __future__ import annotations

import pytest
import torch

from executor.distributed.protocol import Activation
from executor.distributed.wire import (
    DTYPES,
    FRAME_BYTES,
    HEADER_BYTES,
    HEADER_LEN,
    MAX_DIMS,
    MAX_TENSORS,
    decode_header,
    encode_header,
    fits,
    pack,
)
from executor.ocl.batch import TrainBatch
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


def unpacked(message: Message) -> tuple[Message, bool]:
    """`message` through `pack` and back as a receiver reads it: (what arrives, whether one transfer)."""
    frame, payload = pack(message)
    assert frame.dtype == torch.uint8 and frame.shape == (FRAME_BYTES,)
    header = decode_header(frame[:HEADER_BYTES].view(torch.int64))
    assert fits(header.payload_bytes) == (payload is None)
    tensors = header.unpack(frame[HEADER_BYTES:] if payload is None else payload.clone())
    return header.message(tensors), payload is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [1, 3, 200])  # 200 rows of 8×8: past the frame, a payload of its own
def test_a_packed_message_arrives_whole(dtype, rows):
    x = (torch.arange(rows * 64).reshape(rows, 1, 8, 8) % 7).to(dtype)
    tensors = (x, torch.arange(rows, dtype=torch.int64), torch.zeros(0, dtype=dtype), torch.tensor(True))
    got, one = unpacked(Message(2, (4, 5), tensors))
    assert one == (rows * 64 * dtype.itemsize <= FRAME_BYTES - HEADER_BYTES - 64)
    assert got.kind == 2 and got.fields[:2] == (4, 5)
    for a, b in zip(got.tensors, tensors, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)


def test_odd_sizes_keep_every_tensor_aligned():
    tensors = (torch.ones(3, dtype=torch.uint8), torch.full((5,), 2.5, dtype=torch.float16), torch.arange(3))
    got, one = unpacked(Message(0, (), tensors))
    assert one and all(torch.equal(a, b) for a, b in zip(got.tensors, tensors, strict=True))


def test_a_strided_tensor_travels_as_its_values():
    tensors = (torch.arange(10.0)[::2], torch.arange(12).reshape(3, 4).t())  # a step, a transpose
    got, one = unpacked(Message(0, (), tensors))
    assert one and all(torch.equal(a, b) for a, b in zip(got.tensors, tensors, strict=True))


def test_a_tensor_that_requires_grad_travels_as_its_values():
    x = torch.arange(6.0).reshape(2, 3).requires_grad_()
    got, one = unpacked(Message(0, (), (x * 2,)))  # an output of autograd, as a stage's may be
    assert one and not got.tensors[0].requires_grad and torch.equal(got.tensors[0], (x * 2).detach())


@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("fisher", [False, True])
@pytest.mark.parametrize("teacher", [False, True])
def test_an_activation_with_everything_riding_along_arrives_whole(weights, fisher, teacher):
    # Row weights, Fisher traces, LwF's teacher activation and classes: up to MAX_TENSORS tensors;
    # the generation travels without a teacher too (MAS's anchor).
    x, y = torch.randn(2, 4), torch.tensor([3, 1])
    classes = torch.tensor([0, 1, 3]) if teacher else None
    batch = TrainBatch(
        x, y, num_new=1, weight=torch.tensor([1.0, 0.5]) if weights else None, task=2, teacher_classes=classes
    )
    sent = Activation(7, 1, 2, 0, batch, torch.rand(5) if fisher else None, torch.randn(2, 4) if teacher else None, 3)
    got, one = unpacked(sent.message())
    act = Activation.parse(got)
    assert one and act[:4] == sent[:4] and act.generation == 3
    assert (act.batch.num_new, act.batch.task) == (1, 2)
    for a, b in [
        (act.batch.x, x), (act.batch.y, y), (act.batch.weight, batch.weight), (act.fisher, sent.fisher),
        (act.teacher, sent.teacher), (act.batch.teacher_classes, classes),
    ]:  # fmt: skip
        assert (a is None and b is None) or torch.equal(a, b)
    assert len(got.tensors) == 2 + weights + fisher + 2 * teacher <= MAX_TENSORS
