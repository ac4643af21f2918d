"""A rank's measured trace rows of a transfer follow the schema (sim/trace.py): the `send` row
names the sending stage, the `recv` row the receiving stage — as the twin writes them."""

from __future__ import annotations

import torch

from executor.distributed import protocol
from executor.distributed.protocol import Activation, Gradient
from executor.distributed.trace import RankRecorder, as_trace_row
from executor.distributed.transport import WireEvent
from executor.ocl.batch import TrainBatch
from sim.trace import FileTrace, TraceRow, read_trace

X = torch.zeros(1, 4)
ACT_TO_2 = Activation(7, 1, 2, 0, TrainBatch(X, torch.zeros(1, dtype=torch.int64), num_new=1)).message()
GRAD_TO_0 = Gradient(7, 1, 0, X).message()
INFER_TO_1 = protocol.infer(9, 1, X)


def stages(direction: str) -> list[tuple[int, int, int]]:
    recorder = RankRecorder(rank=3)
    recorder.start(0.0)
    for message in (ACT_TO_2, GRAD_TO_0, INFER_TO_1, protocol.STOP):
        recorder.wire(WireEvent(direction, 0, message, 1.0, 2.0, 64))
    return [(row[1], row[2], row[3]) for row in recorder.rows]  # (sample, worker, stage)


def test_a_send_row_names_the_sending_stage():
    assert stages("send") == [(7, 1, 1), (7, 1, 1), (9, -1, 0)]  # STOP is no transfer of a datum


def test_a_recv_row_names_the_receiving_stage():
    assert stages("recv") == [(7, 1, 2), (7, 1, 0), (9, -1, 1)]


def test_a_message_received_before_the_rank_started_is_on_the_runs_clock():
    # A peer that starts sooner may send before this rank's loop wakes to `start` (a row once kept
    # its raw perf_counter time: 47,891 s into a 1-s run).
    recorder = RankRecorder(rank=1)
    recorder.wire(WireEvent("recv", 0, ACT_TO_2, 100.25, 100.5, 64))
    assert recorder.rows == []
    recorder.start(100.0)
    recorder.wire(WireEvent("recv", 0, ACT_TO_2, 101.0, 101.5, 64))
    assert [(row[0], row[5], row[6]) for row in recorder.rows] == [("recv", 0.25, 0.5), ("recv", 1.0, 1.5)]


def test_a_ranks_plain_rows_are_written_like_typed_ones(tmp_path):
    # A rank keeps plain tuples (an update's samples a tuple at the end); the merge writes them typed.
    typed = [TraceRow("arrive", 0, 0, -1, -1, 0.0, 0.0), TraceRow("update", -1, 1, 2, 3, 0.5, 0.75, 4, 1, 0, (0, 7))]
    path = tmp_path / "plain.jsonl"
    with FileTrace(path) as sink:
        sink.add(as_trace_row(tuple(typed[0][:10])))
        sink.add(as_trace_row((*typed[1][:10], (0, 7))))
    assert list(read_trace(path)) == typed
