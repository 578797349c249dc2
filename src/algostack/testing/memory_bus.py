"""``MemoryBus``: the market-bus seam (``core.market_bus.MarketBus``) in one process, for tests.

It keeps the rules of the real bus that services rely on: ``MARKET`` must exist before events
are stored (``ensure_market_stream``; until then publishes fail and are counted, as JetStream
refuses them); a message id stored once is a duplicate ever after; every stored message
carries the headers ``NatsBus`` puts on it; each subscription gets its messages in order, one
callback at a time; NATS wildcards match as on the server; a closed bus refuses publishes.
``disconnect()`` plays a reconnect (gap listeners called). Integration tests use the real
nats-server; this is for testing one service's logic without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from algostack.adapters.nats.publisher import PublishError
from algostack.core import codec
from algostack.core.market import MarketEvent
from algostack.core.market_bus import (
    MSG_ID_HEADER,
    PREV_HEADER,
    RECV_HEADER,
    SEQ_HEADER,
    BusMessage,
    BusStats,
    Callback,
    MarketBus,
    StreamMissingError,
    check_subject,
    subject_matches,
)


@dataclass
class _Stored:
    seq: int
    msg: BusMessage


@dataclass
class _Sub:
    patterns: tuple[str, ...]
    cb: Callback
    queue: asyncio.Queue[BusMessage] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    stored_only: bool = False
    """An ordered consumer: reads what ``MARKET`` stores, not core publishes."""
    unfinished: int = 0
    """Messages put and not yet handled by ``cb``."""
    errors: list[BaseException] = field(default_factory=list)

    def put(self, msg: BusMessage) -> None:
        self.unfinished += 1
        self.queue.put_nowait(msg)

    def wants(self, subject: str) -> bool:
        return any(subject_matches(p, subject) for p in self.patterns)


class MemorySubscription:
    """A ``MemoryBus`` subscription; ``unsubscribe()`` ends it."""

    def __init__(self, bus: MemoryBus, sub: _Sub) -> None:
        self._bus, self._sub = bus, sub

    async def unsubscribe(self) -> None:
        """Stop receiving messages (those already queued are dropped)."""
        await self._bus._drop(self._sub)


class MemoryBus:
    """An in-process ``MarketBus`` (see the module docstring)."""

    def __init__(self, *, url: str = "memory://", wall_ns: Callable[[], int] = time.time_ns):
        self.url = url
        self.stats = BusStats()
        self.stream: list[_Stored] | None = None
        """``MARKET``'s messages in stream order; None until ``ensure_market_stream``."""
        self.published: list[BusMessage] = []
        """Every core (not stored) publish, in order."""
        self._ids: set[str] = set()
        self._errors: list[str] = []
        self._subs: list[_Sub] = []
        self._gap: list[Callable[[], None]] = []
        self._numbers: dict[str, int] = {}
        self._last_seq: dict[str, int] = {}
        self._wall_ns = wall_ns
        self._closed = False
        self.epoch = 1

    # -- the stream ---------------------------------------------------------------------------

    async def ensure_market_stream(self) -> None:
        """Create ``MARKET`` (kept when it exists)."""
        if self.stream is None:
            self.stream = []

    @property
    def inflight(self) -> int:
        """Always 0: a memory store acks at once."""
        return 0

    async def publish_events(
        self, events: Sequence[MarketEvent], *, recv_ns: int | None = None
    ) -> None:
        """Store events under their ids with ``NatsBus``'s headers; duplicates are counted."""
        if self._closed:
            raise PublishError("bus is closed")
        recv = str(self._wall_ns() if recv_ns is None else recv_ns)
        for event in events:
            self.stats.sent += 1
            if self.stream is None:  # JetStream: no stream matches the subject
                self.stats.failed += 1
                why = "no JetStream stream for this subject (503 no responders)"
                self._errors.append(f"{codec.subject(event)} id={codec.msg_id(event)}: {why}")
                continue
            mid = codec.msg_id(event)
            if mid in self._ids:
                self.stats.duplicates += 1
                continue
            subject = codec.subject(event)
            n = self._numbers[subject] = self._numbers.get(subject, 0) + 1
            headers = {MSG_ID_HEADER: mid, RECV_HEADER: recv, SEQ_HEADER: f"{self.epoch}:{n}"}
            prev = self._last_seq.get(subject)
            if prev is not None:
                headers[PREV_HEADER] = str(prev)
            seq = len(self.stream) + 1
            msg = BusMessage(
                subject, codec.encode(event), headers, stored_ns=self._wall_ns(), stream_seq=seq
            )
            self.stream.append(_Stored(seq, msg))
            self._ids.add(mid)
            self._last_seq[subject] = seq
            self.stats.published += 1
            self._deliver(msg)

    async def flush_acks(self, timeout_s: float | None = None) -> None:
        """Nothing waits for an ack here; as ``NatsBus``, raises ``PublishError`` for the
        messages refused since the last call, or once closed."""
        del timeout_s
        if self._closed:
            raise PublishError("bus is closed")
        if self._errors:
            errors, self._errors = self._errors, []
            raise PublishError(f"JetStream refused {len(errors)} message(s); first: {errors[0]}")

    # -- core messages ------------------------------------------------------------------------

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str] | None = None
    ) -> None:
        """Deliver one message to the matching subscriptions (not stored)."""
        check_subject(subject)
        if self._closed:
            raise PublishError("bus is closed")
        msg = BusMessage(subject, payload, headers)
        self.published.append(msg)
        self._deliver(msg)

    async def subscribe(self, subject: str, cb: Callback) -> MemorySubscription:
        """Messages on ``subject`` from now on, in order, one callback at a time."""
        return self._start(_Sub((subject,), cb))

    async def ordered_subscribe(
        self,
        filter_subjects: Sequence[str],
        cb: Callback,
        *,
        start_time: datetime | None = None,
    ) -> MemorySubscription:
        """``MARKET`` from ``start_time`` (else from its start), then live; ``StreamMissingError``
        when the stream does not exist yet."""
        if self.stream is None:
            raise StreamMissingError("stream MARKET does not exist")
        sub = _Sub(tuple(filter_subjects), cb, stored_only=True)
        since = None if start_time is None else int(start_time.timestamp() * 1e9)
        for stored in self.stream:
            m = stored.msg
            if sub.wants(m.subject) and (since is None or (m.stored_ns or 0) >= since):
                sub.put(m)
        return self._start(sub)

    async def flush(self, timeout_s: float = 5.0) -> None:
        """Return once every subscription has handled what was delivered to it so far
        (stronger than a NATS flush: tests need no sleeps)."""
        async with asyncio.timeout(timeout_s):
            while busy := [s for s in self._subs if s.unfinished]:
                for s in busy:  # a callback may deliver to a queue joined before: loop
                    await s.queue.join()
        for s in self._subs:
            if s.errors:
                raise s.errors.pop(0)

    # -- faults and lifecycle -----------------------------------------------------------------

    def on_gap(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every ``disconnect()``."""
        self._gap.append(listener)

    def disconnect(self) -> None:
        """Play a lost and re-established connection: core messages meanwhile are lost,
        stored ones are not; gap listeners are called."""
        self.stats.disconnects += 1
        self.stats.reconnects += 1
        for listener in self._gap:
            listener()

    @property
    def connected(self) -> bool:
        """True until ``close``."""
        return not self._closed

    async def close(self, timeout_s: float | None = None) -> None:
        """Handle what is queued (bounded), then end every subscription."""
        if self._closed:
            return
        with contextlib.suppress(TimeoutError):
            await self.flush(5.0 if timeout_s is None else timeout_s)
        self._closed = True
        for sub in list(self._subs):
            await self._drop(sub)

    # -- internals ----------------------------------------------------------------------------

    def _start(self, sub: _Sub) -> MemorySubscription:
        if self._closed:
            raise PublishError("bus is closed")
        sub.task = asyncio.get_running_loop().create_task(self._run(sub))
        self._subs.append(sub)
        return MemorySubscription(self, sub)

    def _deliver(self, msg: BusMessage) -> None:
        for sub in self._subs:
            if sub.stored_only and msg.stream_seq == 0:
                continue
            if sub.wants(msg.subject):
                sub.put(msg)

    async def _run(self, sub: _Sub) -> None:
        while True:
            msg = await sub.queue.get()
            try:
                await sub.cb(msg)
            except Exception as exc:  # nats-py logs a callback's error; flush() raises it
                sub.errors.append(exc)
            finally:
                sub.unfinished -= 1
                sub.queue.task_done()

    async def _drop(self, sub: _Sub) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
        if sub.task is not None:
            sub.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sub.task


if TYPE_CHECKING:  # mypy proves MemoryBus is a MarketBus

    def _is_market_bus(b: MemoryBus) -> MarketBus:
        return b
