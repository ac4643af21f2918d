"""The real-time loop's turns and the transport's goodbyes, on scripted messages (no processes):
the interleavings that once hung or failed.

The hang: a rank took `FLUSH` and `STOP` in one turn of draining its inbox (they arrive
together at the end of a run), found no op ready, and went to wait for a message — but after
`STOP` only the peers' goodbyes come, which `receive` does not return: it waited for ever
while its peers waited for its goodbye (seen in `ferret deploy`'s probe; the first run of
benchmarks/distributed_stress.py hung before the fix). A goodbye taken while draining after
`STOP` is no message (a poll returns None); a wait once every peer said goodbye raises.
"""

from __future__ import annotations

import queue

import pytest

from executor.distributed.protocol import STOP, Kind
from executor.distributed.realtime import run_realtime
from executor.distributed.transport import TorchTransport
from executor.distributed.watchdog import Watchdog
from executor.pipeline.transport import Message


class ScriptedTransport:
    """An inbox of scripted messages; a blocking receive on an empty inbox is the hang."""

    def __init__(self, messages: list[Message]) -> None:
        self.messages = list(messages)
        self.blocking_waits = 0
        self.inbox = self  # the loop's poll asks `inbox.empty()`

    def empty(self) -> bool:
        return not self.messages

    def receive(self, timeout: float | None = None) -> tuple[int, Message] | None:
        if self.messages:
            return 0, self.messages.pop(0)
        if timeout is None:
            self.blocking_waits += 1
            raise AssertionError("the loop waits for a message that will never come")
        return None


class Host:
    """What the loop needs of a StageHost: messages change its state, `STOP` stops it."""

    def __init__(self, transport: ScriptedTransport) -> None:
        self.transport = transport
        self.stopped = False
        self.flushed: list[int] = []
        self.flights: dict[int, object] = {}

    def receive(self, src: int, message: Message) -> None:
        if message.kind == Kind.FLUSH:
            self.flushed.append(message.fields[0])
        elif message.kind == Kind.STOP:
            self.stopped = True


class NothingReady:
    def pop(self) -> None:
        return None

    def held(self) -> list[str]:
        return []


@pytest.mark.parametrize(
    "messages",
    [
        [Message(Kind.FLUSH, (0,)), STOP],  # the end of a run: both taken in one drain
        [STOP],
        [Message(Kind.FLUSH, (0,)), Message(Kind.FLUSH, (1,)), STOP],
    ],
)
def test_a_stop_taken_while_draining_ends_the_loop_without_waiting(messages):
    transport = ScriptedTransport(messages)
    host = Host(transport)
    run_realtime(host, NothingReady(), None, 0.0, Watchdog(0, limit_s=0))  # type: ignore[arg-type]
    assert host.stopped
    assert transport.blocking_waits == 0
    assert host.flushed == [m.fields[0] for m in messages if m.kind == Kind.FLUSH]


def test_a_rank_with_nothing_to_do_waits_for_the_next_message():
    # Not stopped, nothing ready: the loop must wait (here: the scripted inbox is empty → the hang's signature).
    transport = ScriptedTransport([Message(Kind.FLUSH, (0,))])
    with pytest.raises(AssertionError, match="never come"):
        run_realtime(Host(transport), NothingReady(), None, 0.0, Watchdog(0, limit_s=0))  # type: ignore[arg-type]
    assert transport.blocking_waits == 1


def inbox_transport(items: list[tuple[int, Message | None]], peers: set[int]) -> TorchTransport:
    """A TorchTransport's receiving side without process groups: its inbox, as the wire threads fill it."""
    transport = object.__new__(TorchTransport)
    transport.rank = 1
    transport.open_peers = set(peers)
    transport.inbox = queue.SimpleQueue()
    for item in items:
        transport.inbox.put(item)
    return transport


def test_goodbyes_after_stop_are_no_message_and_waiting_after_them_raises():
    transport = inbox_transport([(0, STOP), (0, None)], {0})  # rank 0 said STOP, then goodbye
    assert transport.receive(0.0) == (0, STOP)
    assert transport.receive(0.0) is None  # the goodbye is taken, no message (a poll while draining)
    assert transport.open_peers == set()
    with pytest.raises(RuntimeError, match="every other rank has closed its channels"):
        transport.receive()  # nothing can ever come: raise, never wait


def test_a_goodbye_from_one_peer_leaves_the_others_to_wait_for():
    transport = inbox_transport([(0, None), (2, STOP)], {0, 2})
    assert transport.receive() == (2, STOP)
    assert transport.open_peers == {2}
