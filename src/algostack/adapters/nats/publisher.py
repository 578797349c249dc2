"""JetStream publishing with a bounded window of in-flight acks (``NatsBus`` delegates here).

Market events go to JetStream (stream ``MARKET`` over ``market.>``, DESIGN.md 3.3) with a
``Nats-Msg-Id`` so the server drops re-sends inside its duplicate window. Publishing never
awaits an ack per message (that caps at ~6 k msg/s): each message carries a reply subject
under one wildcard ack inbox, a bounded window of ``max_inflight`` messages may wait for
their acks, and ``flush_acks()`` waits for the rest. Unacked messages are kept and re-sent
after a reconnect or an ack timeout; de-duplication makes the re-send safe.

Every market message also carries ``Algostack-Recv-Ns``: when the ingest received the
frame holding it (UTC ns), the start of the tick-to-decision latency; and ``Algostack-Seq``:
``<epoch>:<n>``, its number on its subject in this bus's life (a re-send keeps its number),
which lets a trader prove a live message is the next one (``core/live_gate.py``); and, once
JetStream has acked message ``n - 1`` of the subject, ``Algostack-Prev-Seq``: its stream
sequence, which gives the trader its resume point without reading the stream.

An ack saying the store is full (nats-server's "insufficient resources") is not a message
refused like any other: the first one makes every later publish, and ``flush_acks()``, raise
``JetStreamStoreFullError`` (fatal: nothing more can be stored until space is freed).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import secrets
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg

from algostack.core import codec
from algostack.core.backoff import Backoff, next_wait
from algostack.core.market import MarketEvent
from algostack.core.market_bus import MSG_ID_HEADER, PREV_HEADER, RECV_HEADER, SEQ_HEADER, BusStats
from algostack.errors import ConfigError, ResourceError, RetryableError

# The bus's logger: these records were always the bus's, and log filters name it.
log = logging.getLogger("algostack.nats.bus")

_ACK_SEQ_RE = re.compile(rb'"seq":\s*(\d+)')


class _Entry(NamedTuple):
    """A message sent and not acked yet."""

    subject: str
    payload: bytes
    msg_id: str
    sends: int
    """How many times it was sent (1: never re-sent)."""
    headers: dict[str, str]
    n: int
    """Its number on its subject (``Algostack-Seq``)."""


_NO_STREAM = "no JetStream stream for this subject (503 no responders)"


class PublishError(ResourceError):
    """JetStream refused messages or never acked them through every re-send (a store that
    cannot write is silent), or the bus is closed: sending them again cannot help (the
    message says which)."""


class JetStreamStoreFullError(ResourceError):
    """nats-server's JetStream store is full ("insufficient resources"): nothing more can be
    stored until space is freed, so retrying cannot help."""


STORE_FULL_CODES = {10023, 10047}
"""JetStream API error codes of a full store, as nats-server answers them: 10023 (503
"insufficient resources") for a publish into a full store, 10047 (500 "insufficient storage
resources available") for a stream whose limits no longer fit."""


def store_full_error(
    err_code: object, description: object, doing: str
) -> JetStreamStoreFullError | None:
    """The ``JetStreamStoreFullError`` for a JetStream API error that says the store is full
    (``doing``: e.g. ``publishing to market.bars.AAPL``), ``None`` for any other error."""
    if err_code not in STORE_FULL_CODES:
        return None
    return JetStreamStoreFullError(
        f"JetStream store full ({description or 'insufficient resources'}) {doing}: free space "
        "on nats-server's store disk (or raise its max_file_store)"
    )


class AckTimeoutError(RetryableError):
    """Some messages got no JetStream ack in time (NATS unreachable or slow): they may not be
    stored; publishing them again is safe (de-duplication) and may succeed."""


class AckWindowPublisher:
    """The JetStream publish path of one ``NatsBus``: unacked messages, ack inbox, numbering.

    Build it with the bus's client, its ``BusStats`` (counters move here as acks arrive) and
    the window settings; ``await start()`` subscribes the ack inbox before the first publish.
    """

    def __init__(
        self,
        nc: Client,
        stats: BusStats,
        *,
        url: str,
        max_inflight: int,
        ack_timeout_s: float,
        max_resends: int,
    ) -> None:
        if max_inflight < 1:
            raise ConfigError(f"max_inflight must be >= 1, got {max_inflight}")
        self._nc = nc
        self.stats = stats
        self.url = url
        """The bus's URL without credentials, for error messages."""
        self.max_inflight = max_inflight
        self.ack_timeout_s = ack_timeout_s
        self.max_resends = max_resends
        # publish seq -> entry; insertion = send order.
        self._pending: dict[int, _Entry] = {}
        self._seq = 0
        self._epoch = secrets.token_hex(6)
        self._subject_n: dict[str, int] = {}
        self._stored: dict[str, tuple[int, int]] = {}
        """Per subject: (number, stream seq) of its latest message JetStream acked."""
        self._ack_prefix = ""
        self._ack_sub: Any = None
        self._window_open = asyncio.Event()
        self._window_open.set()
        self._drained = asyncio.Event()
        self._drained.set()
        self._linked = asyncio.Event()
        """Clear from a disconnect until the unacked messages are re-sent on the new link:
        new messages wait, so none is stored ahead of an earlier one (``on_disconnect``)."""
        self._linked.set()
        self._errors: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False
        """Set by ``close()``: publishing raises ``PublishError``."""
        self.store_full: JetStreamStoreFullError | None = None
        """Set by the first ack saying the store is full: every publish raises it from then."""

    async def start(self) -> None:
        """Subscribe the wildcard ack inbox every message's reply subject lives under."""
        self._ack_prefix = self._nc.new_inbox() + "."
        self._ack_sub = await self._nc.subscribe(self._ack_prefix + "*", cb=self._on_ack)

    @property
    def connected(self) -> bool:
        """True while the connection is up."""
        return bool(self._nc.is_connected)

    @property
    def inflight(self) -> int:
        """Messages sent to JetStream whose ack has not arrived yet."""
        return len(self._pending)

    async def publish_events(
        self, events: Sequence[MarketEvent], *, recv_ns: int | None = None
    ) -> None:
        """Publish events to JetStream with de-duplication ids; wait only when the window is full.

        Every message carries ``Nats-Msg-Id``, ``Algostack-Recv-Ns: recv_ns`` (when the
        ingest received the frame holding these events; default: now) and
        ``Algostack-Seq: <epoch>:<n>`` (its number on its subject) and, when message
        ``n - 1`` is already acked, ``Algostack-Prev-Seq``: its stream sequence. Returns once every
        event is handed to the connection; ``flush_acks()`` waits for the acks. Counters in
        ``stats`` move as acks arrive. Raises ``PublishError`` once closed.
        """
        if self.closed:
            raise PublishError("bus is closed")
        if self.store_full is not None:
            raise self.store_full
        pending = self._pending
        publish = self._nc.publish
        prefix = self._ack_prefix
        encode, subject_of, msg_id = codec.encode, codec.subject, codec.msg_id
        limit = self.max_inflight
        recv = str(time.time_ns() if recv_ns is None else recv_ns)
        numbers = self._subject_n
        stored = self._stored
        epoch = self._epoch
        linked = self._linked
        for event in events:
            if len(pending) >= limit or not linked.is_set():
                await self._wait_window()
                await linked.wait()
                if self.closed:
                    raise PublishError("bus is closed")
                if self.store_full is not None:
                    raise self.store_full
            payload = encode(event)
            subj = subject_of(event)
            mid = msg_id(event)
            n = numbers[subj] = numbers.get(subj, 0) + 1
            headers = {MSG_ID_HEADER: mid, RECV_HEADER: recv, SEQ_HEADER: f"{epoch}:{n}"}
            prev = stored.get(subj)
            if prev is not None and prev[0] == n - 1:
                headers[PREV_HEADER] = str(prev[1])
            self._seq += 1
            seq = self._seq
            pending[seq] = _Entry(subj, payload, mid, 1, headers, n)
            self._drained.clear()
            await publish(subj, payload, reply=f"{prefix}{seq}", headers=headers)
        self.stats.sent += len(events)

    async def _wait_window(self) -> None:
        self._window_open.clear()
        while len(self._pending) >= self.max_inflight:
            try:
                await asyncio.wait_for(self._window_open.wait(), self.ack_timeout_s)
            except TimeoutError:
                # While disconnected, just wait (back-pressure on the source): the
                # reconnect callback re-sends everything unacked.
                if self.connected:
                    await self.resend_unacked()

    async def _on_ack(self, msg: Msg) -> None:
        try:
            seq = int(msg.subject[len(self._ack_prefix) :])
        except ValueError:
            return
        entry = self._pending.get(seq)
        if entry is None:  # a late ack of a message we re-sent under a new seq
            return
        data = msg.data
        if not data and msg.headers and msg.headers.get("Status") == "503":
            # No responders: no stream for the subject, or JetStream still recovering right
            # after a server restart. Retryable: re-sent after the retrier's wait, up to
            # ``max_resends`` times, then reported.
            wait = next_wait(
                RetryableError(_NO_STREAM),
                entry.sends,
                0.0,
                backoff=Backoff(base=0.2, cap=5.0, floor=0.1, attempt=entry.sends - 1),
                deadline_s=math.inf,
                max_attempts=self.max_resends + 1,
            )
            if wait is None:
                self._fail(entry, _NO_STREAM)
                self._settle(seq)
            else:
                self._resend_later(seq, wait)
            return
        if b'"error"' in data:
            try:
                err = orjson.loads(data).get("error", {})
            except orjson.JSONDecodeError:
                err = {"description": data[:200].decode("utf-8", "replace")}
            full = store_full_error(
                err.get("err_code"), err.get("description"), f"publishing to {entry.subject}"
            )
            if full is not None and self.store_full is None:
                self.store_full = full
            self._fail(entry, f"{err.get('code')} {err.get('description')}")
            self._settle(seq)
            return
        if b'"duplicate"' in data:  # the server writes '"duplicate": true' (with a space)
            self.stats.duplicates += 1
        else:
            self.stats.published += 1
        found = _ACK_SEQ_RE.search(data)
        if found is not None:
            subj, n = entry.subject, entry.n
            known = self._stored.get(subj)
            if known is None or known[0] < n:
                self._stored[subj] = (n, int(found.group(1)))
        self._settle(seq)

    def _fail(self, entry: _Entry, reason: str) -> None:
        self.stats.failed += 1
        if len(self._errors) < 100:
            self._errors.append(f"{entry.subject} id={entry.msg_id}: {reason}")
        log.error(
            "JetStream refused a message",
            extra={"fields": {"subject": entry.subject, "msg_id": entry.msg_id, "reason": reason}},
        )

    def _settle(self, seq: int) -> None:
        del self._pending[seq]
        n = len(self._pending)
        if n < self.max_inflight // 2 + 1:
            self._window_open.set()
        if n == 0:
            self._drained.set()

    def _resend_later(self, seq: int, delay_s: float) -> None:
        async def later() -> None:
            await asyncio.sleep(delay_s)
            await self._resend([seq])

        task = asyncio.get_running_loop().create_task(later())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def on_disconnect(self) -> None:
        """The connection is lost: hold new messages until the unacked ones are re-sent on
        the new link (``resend_unacked``), and drop what nats-py still holds unwritten when
        any of it may be ours. nats-py writes its pending buffer to the new server before it
        tells us it reconnected, so messages stuck there, or published meanwhile, would be
        stored ahead of the earlier ones lost with the old socket, which we re-send only then:
        a subject's messages out of publish order, and a trader skips a bar older than one it
        has (a nats-server stopped for 10 s lost 90 minutes of bars that way). Every market
        message in that buffer is in our unacked window and is re-sent, in order; nothing
        else of this connection needs more than at-most-once (core NATS)."""
        self._linked.clear()
        if self._pending:
            nc = self._nc
            nc._pending = []  # nats-py 2.16 (pinned): its buffer of unwritten commands
            nc._pending_data_size = 0

    async def resend_unacked(self) -> None:
        """Re-send every unacked message (after a reconnect or an ack timeout); the
        server's de-duplication drops what had landed. New messages may go out from here."""
        try:
            await self._resend(list(self._pending))
        finally:
            self._linked.set()

    async def _resend(self, seqs: list[int]) -> None:
        if not seqs or self._nc.is_closed:
            return
        for old in seqs:
            entry = self._pending.get(old)
            if entry is None:
                continue
            if entry.sends > self.max_resends:
                self._fail(entry, f"no ack after {entry.sends} sends")
                self._settle(old)
                continue
            del self._pending[old]
            self._seq += 1
            self._pending[self._seq] = entry._replace(sends=entry.sends + 1)
            self.stats.resent += 1
            await self._nc.publish(
                entry.subject,
                entry.payload,
                reply=f"{self._ack_prefix}{self._seq}",
                headers=entry.headers,
            )

    async def flush_acks(self, timeout_s: float | None = None) -> None:
        """Wait until every published message is acked; re-send on ack timeouts.

        Raises ``AckTimeoutError`` when messages stayed unacked past ``timeout_s`` (default:
        ``ack_timeout_s * (max_resends + 1)``), ``JetStreamStoreFullError`` when the store
        was full, ``PublishError`` when some were refused for another reason.
        """
        budget = timeout_s if timeout_s is not None else self.ack_timeout_s * (self.max_resends + 1)
        deadline = time.monotonic() + budget
        while self._pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AckTimeoutError(
                    f"{len(self._pending)} messages not acked by JetStream within {budget:g} s "
                    f"(NATS {self.url}, connected={self.connected})"
                )
            try:
                await asyncio.wait_for(self._drained.wait(), min(left, self.ack_timeout_s))
            except TimeoutError:
                if self.connected:
                    await self.resend_unacked()
        if self.store_full is not None:
            self._errors = []
            raise self.store_full
        if self._errors:
            errors, self._errors = self._errors, []
            raise PublishError(f"JetStream refused {len(errors)} message(s); first: {errors[0]}")

    def close(self) -> None:
        """Refuse further publishes; cancel the delayed re-sends still waiting."""
        self.closed = True
        self._linked.set()  # a publish waiting for the link raises PublishError
        for task in list(self._tasks):
            task.cancel()
