"""Messages between ranks over `torch.distributed`: one ordered channel per (sender, receiver).

Every ordered pair of ranks `(a, b)` gets its own process group, used only for `a → b`. On
each rank one sender thread per peer writes that peer's channel in the order `send` was
called, and one receiver thread per peer reads its channel strictly in order (wire.py's
frame, then the payload or tensors it announces) and puts each message into one inbox. So:

* matching is by order on a dedicated communicator — no polling, no receive timeouts (a
  gloo receive that times out closes its pair for good), and no tags on NCCL, which ignores
  them (on the gloo channel a frame's oversized payload has a tag of its own, so that the
  frame receives kept posted ahead, `AHEAD`, never take it);
* the compute thread never waits on the wire: `send` queues, `receive` takes from the inbox
  (a Python queue, where a timeout is harmless); `send` is safe from any thread, and a message
  to the rank itself goes straight into its inbox (a checkpoint's writer thread, checkpoint.py);
* every rank always has a receive posted on every peer, so a peer that dies is noticed
  within about a second by everyone (gloo: "Connection closed by peer") and `receive`
  raises `PeerLost` naming it.

On the CPU (gloo) a message is one transfer of a fixed-size frame when its tensors fit in it
(wire.py), two when they do not. With NCCL the tensors travel through NCCL groups and the
headers through gloo groups (CPU), so an idle channel waits in gloo, where a dead peer shows,
never in NCCL, where it would not. The wire threads call their process group directly
(`ProcessGroup.send/recv`, what `dist.send/recv` end in): a transfer costs them, and the GIL
they share with the rank's loop, no Python bookkeeping.

`close` ends every channel with a goodbye message and waits for every peer's goodbye, so a
peer that finishes is never mistaken for one that died; a `receive` once every peer said
goodbye raises at once (nothing can come any more) instead of waiting for ever. All ranks
must construct the transport (it creates process groups collectively) and close it.
`sent_bytes`, `received_bytes` and the trace's `send`/`recv` rows count a message's header
and tensors, not the frame's padding.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.distributed as dist

from executor.distributed.context import IDLE_TIMEOUT, RankContext
from executor.distributed.faults import PeerLost, describe_connection_error
from executor.distributed.streams import received_event
from executor.distributed.wire import FRAME_BYTES, HEADER_BYTES, decode_header, encode_header, fits, pack
from executor.pipeline.transport import Message

BYE = -1  # the transport's own kind: the sender has nothing more to say on this channel
HELLO = -2  # the transport's own kind: the first message on every channel (`greet`)
# Frame receives kept posted on each channel. A gloo transfer waits until its receive is posted
# (the receiver's gloo thread tells the sender's), so with ONE posted a message could not start
# before the receiver thread had woken, taken the GIL and re-posted after the previous one — on
# a loaded host often milliseconds, which made each channel a queue of one message per wake-up
# round. With several posted, a send is written at once (RESULTS §5 "Where a datum's time goes").
AHEAD = 4
FRAMES, PAYLOADS = 0, 1  # gloo tags: frames, and a frame's oversized payload (a frame receive must not take it)


class WireEvent(NamedTuple):
    """One message on the wire, seen by the rank that sent or received it (`perf_counter`
    times: a send from the first byte handed to the backend to the last; a receive from its
    header's arrival to its last tensor's). (A named tuple: a wire thread makes one per
    message, holding the interpreter lock the rank's loop shares.)"""

    direction: str  # "send" | "recv"
    peer: int
    message: Message
    t_start: float
    t_end: float
    nbytes: int


class _Fault:
    __slots__ = ("detail", "peer")

    def __init__(self, peer: int, detail: str) -> None:
        self.peer = peer
        self.detail = detail


class TorchTransport:
    """Ordered point-to-point messages between the ranks over `torch.distributed`.

    See the module docstring: `send` never blocks, `receive` takes from one inbox and raises `PeerLost`
    when a peer dies. Every rank constructs it (collectively) and closes it.
    """

    def __init__(self, ctx: RankContext, on_wire: Callable[[WireEvent], None] | None = None) -> None:
        self.rank = ctx.rank
        self.world_size = ctx.world_size
        self.device = ctx.device
        self.on_wire = on_wire
        self.inbox: queue.SimpleQueue[tuple[int, Message | _Fault | None]] = queue.SimpleQueue()
        self._outboxes: dict[int, queue.SimpleQueue[Message | None]] = {}
        self.open_peers: set[int] = set()
        self._threads: list[threading.Thread] = []
        # Per peer, each written by that peer's one thread only.
        self.sent_bytes: dict[int, int] = {}
        self.received_bytes: dict[int, int] = {}
        for (src, dst), (headers, data) in _channels(ctx).items():
            if src == self.rank:
                outbox: queue.SimpleQueue[Message | None] = queue.SimpleQueue()
                self._outboxes[dst] = outbox
                self.sent_bytes[dst] = 0
                self._start(f"send→{dst}", self._send_loop, dst, headers, data, outbox)
            else:
                self.open_peers.add(src)
                self.received_bytes[src] = 0
                self._start(f"recv←{src}", self._receive_loop, src, headers, data)

    def _start(self, name: str, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=self._on_device, args=(target, *args), name=f"ferret-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _on_device(self, target: Callable[..., None], *args: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)  # the current device is per thread
        target(*args)

    # ------------------------------------------------------------------ the compute thread's side
    def send(self, dst: int, message: Message) -> None:
        if message.kind < 0:
            raise ValueError(f"message kinds below 0 are the transport's own, got {message.kind}")
        try:
            self._outboxes[dst].put(message)
        except KeyError:
            if dst != self.rank:
                raise
            # To itself (a checkpoint's writer thread on the source, checkpoint.py): no wire.
            self.inbox.put((dst, message))

    def greet(self) -> None:
        """Send every peer a first message and take every peer's (all ranks call it, before
        the run): then every wire thread runs and every channel has carried a message."""
        for outbox in self._outboxes.values():
            outbox.put(Message(HELLO))
        unheard = set(self.open_peers)
        while unheard:
            got = self._take(None)
            assert got is not None
            src, message = got
            if message is None or message.kind != HELLO or src not in unheard:
                raise RuntimeError(f"rank {src} sent {message} on its channel to rank {self.rank} before its greeting")
            unheard.discard(src)

    def receive(self, timeout: float | None = None) -> tuple[int, Message] | None:
        if timeout == 0.0 and self.inbox.empty():  # the loop's poll: no exception, no clock
            return None
        wait, deadline = timeout, None  # the deadline is read only if a goodbye takes a turn (rare)
        while True:
            if not self.open_peers and self.inbox.empty():
                if timeout == 0.0:  # a poll after the goodbyes (they follow STOP): nothing came
                    return None
                # Every peer said goodbye: nothing will ever come (waiting would be a hang).
                raise RuntimeError(
                    f"rank {self.rank} waits for a message, but every other rank has closed its channels"
                )
            got = self._take(wait)
            if got is None:
                return None
            if got[1] is not None:
                return got  # type: ignore[return-value]
            if timeout is not None:  # a goodbye (once per peer, at the end): wait `timeout` from here
                if deadline is None:
                    deadline = time.perf_counter() + timeout
                wait = max(0.0, deadline - time.perf_counter())

    def close(self) -> None:
        """Say goodbye on every channel, then take every peer's goodbye. Raises `PeerLost`
        if a peer dies first, and `RuntimeError` if a peer still sends data (a protocol bug)."""
        for outbox in self._outboxes.values():
            outbox.put(None)
        while self.open_peers:
            got = self._take(None)
            if got is not None and got[1] is not None:
                raise RuntimeError(f"rank {got[0]} sent message kind {got[1].kind} after this rank closed")
        for thread in self._threads:
            thread.join()

    def _take(self, timeout: float | None) -> tuple[int, Message | None] | None:
        """The inbox's next item — a message, or a goodbye as `(src, None)` — or None after `timeout`."""
        try:
            src, item = self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, _Fault):
            raise PeerLost(item.peer, item.detail)
        if item is None:  # nothing more will come from this peer
            self.open_peers.discard(src)
        return src, item

    # ------------------------------------------------------------------ the wire threads
    def _send_loop(
        self, dst: int, headers: dist.ProcessGroup, data: dist.ProcessGroup, outbox: queue.SimpleQueue[Message | None]
    ) -> None:
        framed = self.device.type == "cpu"  # the tensors travel in the frame (or one payload after it)
        to_headers, to_data = dist.get_group_rank(headers, dst), dist.get_group_rank(data, dst)
        try:
            while True:
                message = outbox.get()
                final = message is None
                if message is None:
                    message = Message(BYE)
                if message.ready is not None:
                    message.ready.synchronize()  # the op that made the tensors has finished
                t0 = time.perf_counter()
                nbytes = HEADER_BYTES
                if framed:
                    frame, payload = pack(message)
                    headers.send([frame], to_headers, FRAMES).wait()
                    if payload is not None:
                        headers.send([payload], to_headers, PAYLOADS).wait()
                    nbytes += sum(t.numel() * t.element_size() for t in message.tensors)
                else:
                    frame = encode_header(message)
                    headers.send([frame], to_headers, FRAMES).wait()
                    for tensor in message.tensors:
                        if tensor.numel():
                            data.send([tensor.contiguous()], to_data, 0).wait()
                            nbytes += tensor.numel() * tensor.element_size()
                self.sent_bytes[dst] += nbytes
                if self.on_wire is not None and not final:
                    self.on_wire(WireEvent("send", dst, message, t0, time.perf_counter(), nbytes))
                if final:  # fill the receives the peer keeps posted beyond the goodbye (`AHEAD`)
                    for _ in range(AHEAD - 1):
                        headers.send([frame], to_headers, FRAMES).wait()
                    return
        except Exception as exc:
            self.inbox.put((dst, _Fault(dst, describe_connection_error(exc))))

    def _receive_loop(self, src: int, headers: dist.ProcessGroup, data: dist.ProcessGroup) -> None:
        framed = self.device.type == "cpu"
        from_headers, from_data = dist.get_group_rank(headers, src), dist.get_group_rank(data, src)
        frame_bytes = FRAME_BYTES if framed else HEADER_BYTES

        def post() -> tuple[torch.Tensor, dist.Work]:
            frame = torch.empty(frame_bytes, dtype=torch.uint8)
            return frame, headers.recv([frame], from_headers, FRAMES)

        try:
            posted = deque(post() for _ in range(AHEAD))
            while True:
                frame, work = posted.popleft()
                work.wait()
                t0 = time.perf_counter()
                header = decode_header(frame)
                nbytes = HEADER_BYTES
                if framed:
                    size = header.payload_bytes
                    if fits(size):
                        payload = frame[HEADER_BYTES:]
                    else:
                        payload = torch.empty(size, dtype=torch.uint8)
                        headers.recv([payload], from_headers, PAYLOADS).wait()
                    tensors = header.unpack(payload)
                    nbytes += sum(header.sizes)
                else:
                    tensors = header.empty_tensors(self.device)
                    for tensor in tensors:
                        if tensor.numel():
                            data.recv([tensor], from_data, 0).wait()
                            nbytes += tensor.numel() * tensor.element_size()
                self.received_bytes[src] += nbytes
                if header.kind == BYE:
                    for _, work in posted:  # the sender fills them after its goodbye: none is left pending
                        work.wait()
                    self.inbox.put((src, None))
                    return
                message = header.message(tensors, received_event(self.device))
                if self.on_wire is not None:
                    self.on_wire(WireEvent("recv", src, message, t0, time.perf_counter(), nbytes))
                # The next receive is posted before the loop is woken, so that the thread's next
                # step is a wait, which lets go of the GIL the loop wakes to take.
                posted.append(post())
                self.inbox.put((src, message))
        except Exception as exc:
            self.inbox.put((src, _Fault(src, describe_connection_error(exc))))


def _channels(ctx: RankContext) -> dict[tuple[int, int], tuple[dist.ProcessGroup, dist.ProcessGroup]]:
    """A process group per ordered pair (headers on gloo; tensors on the run's backend),
    created by every rank in the same order; this rank keeps the ones it is part of."""
    out = {}
    for src in range(ctx.world_size):
        for dst in range(ctx.world_size):
            if src == dst:
                continue
            headers = dist.new_group([src, dst], timeout=IDLE_TIMEOUT, backend="gloo")
            data = headers
            if ctx.backend != "gloo":
                data = dist.new_group([src, dst], timeout=IDLE_TIMEOUT, backend=ctx.backend)
            if ctx.rank in (src, dst):
                assert headers is not None and data is not None
                out[(src, dst)] = (headers, data)
    return out
