"""The real-time loop's turns, on scripted messages (no processes): the interleavings that once hung.

The hang: a rank took `FLUSH` and `STOP` in one turn of draining its inbox (they arrive
together at the end of a run), found no op ready, and went to wait for a message — but after
`STOP` only the peers' goodbyes come, which `receive` does not return: it waited for ever
while its peers waited for its goodbye (seen in `ferret deploy`'s probe; 1 run in 2 of a
3-rank flood before the fix).
"""

from __future__ import annotations

import pytest

from executor.distributed.protocol import STOP, Kind
from executor.distributed.realtime import run_realtime
from executor.distributed.watchdog import Watchdog
from executor.pipeline.transport import Message


class ScriptedTransport:
    """An inbox of scripted messages; a blocking receive on an empty inbox is the hang."""

    def __init__(self, messages: list[Message]) -> None:
        self.messages = list(messages)
        self.blocking_waits = 0

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
