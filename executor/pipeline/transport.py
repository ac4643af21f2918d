"""How the owners of a pipeline's stages talk: a `Message`, the `Transport` interface, and the
in-process transport.

A message is a `kind`, a few integers and a few tensors; the transport carries it, in order,
from one stage owner to another and hands incoming ones out of one inbox. Across processes that
is `executor.distributed.transport.TorchTransport` (torch.distributed point-to-point). In one
process — the replay executor, or a distributed run whose single rank owns every stage — every
stage is local and a message to oneself goes straight into the inbox: `LocalTransport`.
"""

from __future__ import annotations

import queue
from typing import Any, NamedTuple, Protocol

import torch


class Message(NamedTuple):
    """What one stage owner tells another. `kind` and `fields` mean what the protocol says
    (executor/distributed/protocol.py); the transport only carries them. (A named tuple: a
    message is made on every hop of every datum, and a tuple is the cheapest object to make.)"""

    kind: int
    fields: tuple[int, ...] = ()
    tensors: tuple[torch.Tensor, ...] = ()
    # A CUDA event the tensors are ready after (--streams); never sent: the sender's thread
    # waits for it, and a receiver attaches its own.
    ready: Any = None

    def field(self, index: int) -> int:
        return self.fields[index] if index < len(self.fields) else 0


class Transport(Protocol):
    """What a driver needs to talk to the other stage owners."""

    rank: int
    world_size: int
    sent_bytes: dict[int, int]  # per peer, what went on the wire
    # What has arrived and is not taken yet; a driver's poll may ask only `inbox.empty()`
    # (a C call: the cheapest "anything new?" a loop turn can ask).
    inbox: Any

    def send(self, dst: int, message: Message) -> None: ...

    def greet(self) -> None:
        """Before a run: the first message each way on every channel (every rank calls it)."""
        ...

    def receive(self, timeout: float | None = None) -> tuple[int, Message] | None:
        """The next message from any peer as `(src, message)`, or None after `timeout` seconds."""
        ...

    def close(self) -> None: ...


class LocalTransport:
    """One process that owns every stage: the only peer is itself."""

    def __init__(self) -> None:
        self.rank = 0
        self.world_size = 1
        self.inbox: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self.sent_bytes: dict[int, int] = {0: 0}

    def greet(self) -> None:
        """Nobody to greet."""

    def send(self, dst: int, message: Message) -> None:
        if dst != 0:
            raise ValueError(f"an in-process transport has only rank 0, not {dst}")
        self.inbox.put(message)

    def receive(self, timeout: float | None = None) -> tuple[int, Message] | None:
        if timeout == 0.0 and self.inbox.empty():
            return None
        try:
            return 0, self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        if not self.inbox.empty():
            raise RuntimeError("messages left undelivered when the in-process transport closed")
