"""The NATS bus: the only place that talks to NATS (nats-py).

Market events go to JetStream (stream ``MARKET`` over ``market.>``, DESIGN.md 3.3) with a
``Nats-Msg-Id`` so the server drops re-sends inside its duplicate window. Publishing never
awaits an ack per message (that caps at ~6 k msg/s): each message carries a reply subject
under one wildcard ack inbox, a bounded window of ``max_inflight`` messages may wait for
their acks, and ``flush_acks()`` waits for the rest. Unacked messages are kept and re-sent
after a reconnect or an ack timeout; de-duplication makes the re-send safe.

Every market message also carries ``Algostack-Recv-Ns``: when the ingest received the
frame holding it (UTC ns), the start of the tick-to-decision latency; and ``Algostack-Seq``:
``<epoch>:<n>``, its number on its subject in this bus's life (a re-send keeps its number),
which lets a trader prove a live message is the next one (``feed.py``).

Trader events and control messages use plain core-NATS ``publish``/``subscribe``; traders
read market data live through ``subscribe`` and durably through ``feed_consumer``
(``feed.py``: batched pull, ``AckPolicy.ALL``), and warm up through ``read_history``;
``durable_consumer`` (``consumer.py``) is a pull consumer with explicit acks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import nats
import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

from algostack.adapters.nats import feed as _feed
from algostack.adapters.nats.consumer import DurableConsumer
from algostack.adapters.nats.feed import PREV_HEADER, RECV_HEADER, SEQ_HEADER, FeedConsumer
from algostack.core import codec
from algostack.core.backoff import Backoff, retry_async
from algostack.core.market import MarketEvent
from algostack.errors import AlgostackError, AuthError, ConfigError, FatalError, RetryableError

log = logging.getLogger("algostack.nats.bus")

DEFAULT_MAX_INFLIGHT = 4096
DEFAULT_DUPLICATE_WINDOW_S = 600.0
"""Ten minutes: covers a reconnect storm plus a backfill; the server keeps one id per message."""
MSG_ID_HEADER = "Nats-Msg-Id"
_ACK_SEQ_RE = re.compile(rb'"seq":\s*(\d+)')

_Entry = tuple[str, bytes, str, int, dict[str, str], int]
"""An unacked message: subject, payload, msg id, send count, headers, number on its subject."""


class NatsUnreachableError(FatalError):
    """NATS stayed unreachable for the whole connect timeout."""


class PublishError(AlgostackError):
    """JetStream refused or never acknowledged some messages (the message says which)."""


@dataclass
class BusMessage:
    """A core-NATS message handed to a ``subscribe`` callback."""

    subject: str
    data: bytes
    headers: dict[str, str] | None = None
    reply: str = ""
    stored_ns: int | None = None
    """For JetStream deliveries: when the server stored the message (UTC ns)."""
    stream_seq: int = 0
    """For ``read_history``: the message's sequence in the stream."""


@dataclass
class BusStats:
    """Publish counters: ``published`` and ``duplicates`` count server acks."""

    sent: int = 0
    """JetStream messages handed to the connection (re-sends not counted)."""
    published: int = 0
    """Acked and stored by the stream."""
    duplicates: int = 0
    """Acked as duplicates (dropped by the server's duplicate window)."""
    failed: int = 0
    """Refused by the server (e.g. no stream for the subject)."""
    resent: int = 0
    """Re-sent after an ack timeout or a reconnect."""
    reconnects: int = 0
    disconnects: int = 0


class Subscription:
    """A core-NATS subscription; ``unsubscribe()`` ends it."""

    def __init__(self, sub: Any) -> None:
        self._sub = sub

    async def unsubscribe(self) -> None:
        """Stop receiving messages."""
        await self._sub.unsubscribe()


def redact_url(url: str) -> str:
    """Drop user and password from a NATS URL so it can be logged."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class NatsBus:
    """A connected NATS client with the JetStream publish path algostack needs.

    Build it with ``await NatsBus.connect(...)``; close it with ``await bus.close()``.
    """

    def __init__(
        self,
        nc: Client,
        *,
        url: str,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
        ack_timeout_s: float = 5.0,
        max_resends: int = 5,
    ) -> None:
        if max_inflight < 1:
            raise ConfigError(f"max_inflight must be >= 1, got {max_inflight}")
        self._nc = nc
        self.url = redact_url(url)
        self.max_inflight = max_inflight
        self.ack_timeout_s = ack_timeout_s
        self.max_resends = max_resends
        self.stats = BusStats()
        # publish seq -> entry; insertion = send order.
        self._pending: dict[int, _Entry] = {}
        self._seq = 0
        self._epoch = secrets.token_hex(6)
        self._subject_n: dict[str, int] = {}
        self._stored: dict[str, tuple[int, int]] = {}
        """Per subject: (number, stream seq) of its latest message JetStream acked."""
        self._gap_listeners: list[Callable[[], None]] = []
        self._ack_prefix = ""
        self._ack_sub: Any = None
        self._window_open = asyncio.Event()
        self._window_open.set()
        self._drained = asyncio.Event()
        self._drained.set()
        self._errors: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- connection -----------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        user: str | None = None,
        password: str | None = None,
        connect_timeout_s: float = 60.0,
        name: str = "algostack",
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
        ack_timeout_s: float = 5.0,
        attempt_timeout_s: float = 2.0,
        backoff: Backoff | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> NatsBus:
        """Connect to ``url``, retrying with backoff until ``connect_timeout_s``.

        Unreachable servers are retried (each retry logged); a refused login is an
        ``AuthError`` at once; after the timeout a ``NatsUnreachableError`` says so.
        Once connected, the client reconnects by itself for as long as it lives.
        """
        safe_url = redact_url(url)
        holder: dict[str, NatsBus] = {}

        last_err: list[BaseException] = []

        async def on_disconnect() -> None:
            bus = holder.get("bus")
            if bus is None or bus._closed:
                return
            bus.stats.disconnects += 1
            bus._gap()
            log.warning("nats disconnected", extra={"fields": {"url": safe_url}})

        async def on_reconnect() -> None:
            if "bus" in holder:
                await holder["bus"]._on_reconnected()

        async def on_error(exc: Exception) -> None:
            last_err[:] = [exc]
            if isinstance(exc, nats.errors.SlowConsumerError) and "bus" in holder:
                holder["bus"]._gap()
                log.warning("nats slow consumer: messages dropped on %s", exc.subject)
                return
            log.debug("nats client error: %s", exc)

        async def raw_attempt() -> Client:
            last_err.clear()
            # Build the client ourselves so a failed attempt can be closed: nats-py leaves
            # the socket of a refused login open, and collecting it later is unsafe.
            nc = Client()
            try:
                await nc.connect(
                    url,
                    user=user,
                    password=password,
                    name=name,
                    connect_timeout=attempt_timeout_s,  # type: ignore[arg-type]  # float works at run time
                    allow_reconnect=False,
                    # nats-py retries inside connect() until a server has failed more than
                    # max_reconnect_attempts times: 1 and no wait = two quick tries; our
                    # backoff loop does the rest.
                    max_reconnect_attempts=1,
                    reconnect_time_wait=0,
                    error_cb=on_error,
                    disconnected_cb=on_disconnect,
                    reconnected_cb=on_reconnect,
                    skip_subject_validation=True,
                    pending_size=64 * 1024 * 1024,
                )
                return nc
            except BaseException:
                with contextlib.suppress(Exception):
                    await nc.close()
                raise

        async def attempt() -> Client:
            try:
                return await raw_attempt()
            except nats.errors.Error as exc:
                text = f"{exc} {last_err[0] if last_err else ''}".lower()
                if "authorization" in text or "authentication" in text:
                    raise AuthError(
                        f"NATS at {safe_url} refused the login: check the user/password "
                        "(ALGOSTACK_NATS_USER / ALGOSTACK_NATS_PASSWORD or the URL)"
                    ) from exc
                cause = last_err[0] if last_err else exc  # NoServersError hides the reason
                raise RetryableError(f"{type(cause).__name__}: {cause}") from exc
            except (OSError, TimeoutError) as exc:
                raise RetryableError(f"{type(exc).__name__}: {exc}") from exc

        def on_retry(n: int, exc: BaseException, delay: float) -> None:
            log.warning(
                "NATS unreachable at %s (attempt %d: %s); retrying in %.2f s",
                safe_url,
                n,
                exc,
                delay,
                extra={"fields": {"url": safe_url, "attempt": n, "retry_in_s": round(delay, 3)}},
            )

        start = clock()
        try:
            nc = await retry_async(
                attempt,
                backoff=backoff or Backoff(base=0.25, cap=5.0, floor=0.05),
                deadline_s=connect_timeout_s,
                on_retry=on_retry,
                sleep=sleep,
                clock=clock,
            )
        except RetryableError as exc:
            raise NatsUnreachableError(
                f"NATS at {safe_url} unreachable for {clock() - start:.1f} s "
                f"(connect timeout {connect_timeout_s:g} s): {exc}. Start nats-server, fix "
                "the URL (ALGOSTACK_NATS_URL / --nats-url) or use --embedded-nats"
            ) from exc
        # Reconnect forever once we have been connected (options are read at reconnect time).
        nc.options["allow_reconnect"] = True
        nc.options["max_reconnect_attempts"] = -1
        nc.options["reconnect_time_wait"] = 0.5
        bus = cls(nc, url=url, max_inflight=max_inflight, ack_timeout_s=ack_timeout_s)
        holder["bus"] = bus
        await bus._init_acks()
        log.info("nats connected", extra={"fields": {"url": safe_url, "name": name}})
        return bus

    async def _init_acks(self) -> None:
        self._ack_prefix = self._nc.new_inbox() + "."
        self._ack_sub = await self._nc.subscribe(self._ack_prefix + "*", cb=self._on_ack)

    async def _on_reconnected(self) -> None:
        self.stats.reconnects += 1
        log.warning(
            "nats reconnected; re-sending %d unacked messages",
            len(self._pending),
            extra={"fields": {"url": self.url, "unacked": len(self._pending)}},
        )
        await self._resend(list(self._pending))

    def on_gap(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` whenever core-NATS messages may have been lost.

        That is on a disconnect and when the client drops messages for a slow subscriber;
        a trader's live path then falls back to its durable consumer.
        """
        self._gap_listeners.append(listener)

    def _gap(self) -> None:
        for listener in self._gap_listeners:
            try:
                listener()
            except Exception:
                log.exception("gap listener failed")

    @property
    def connected(self) -> bool:
        """True while the connection is up."""
        return bool(self._nc.is_connected)

    @property
    def inflight(self) -> int:
        """Messages sent to JetStream whose ack has not arrived yet."""
        return len(self._pending)

    # -- JetStream: the MARKET stream ---------------------------------------------------------

    async def ensure_market_stream(
        self,
        *,
        max_age_s: float = 86_400.0,
        duplicate_window_s: float = DEFAULT_DUPLICATE_WINDOW_S,
    ) -> api.StreamInfo:
        """Create the ``MARKET`` stream, or verify it and update its limits to these values.

        A stream of that name with other subjects or memory storage is a ``ConfigError``:
        changing those would lose data, so a human decides.
        """
        if duplicate_window_s > max_age_s:
            raise ConfigError("duplicate_window_s must not exceed max_age_s")
        manager = self._nc.jsm()
        wanted = api.StreamConfig(
            name=codec.STREAM_NAME,
            subjects=[f"{codec.SUBJECT_ROOT}.>"],
            storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS,
            max_age=max_age_s,
            duplicate_window=duplicate_window_s,
        )
        try:
            info = await manager.stream_info(codec.STREAM_NAME)
        except nats.js.errors.NotFoundError:
            info = await manager.add_stream(wanted)
            log.info(
                "created JetStream stream MARKET",
                extra={"fields": {"max_age_s": max_age_s, "dup_window_s": duplicate_window_s}},
            )
            return info
        cfg = info.config
        if list(cfg.subjects or []) != wanted.subjects or cfg.storage != api.StorageType.FILE:
            raise ConfigError(
                f"stream MARKET exists with subjects {cfg.subjects} and storage {cfg.storage}; "
                "expected ['market.>'] on file storage: delete or fix it by hand"
            )
        if cfg.max_age != max_age_s or cfg.duplicate_window != duplicate_window_s:
            info = await manager.update_stream(
                cfg.evolve(max_age=max_age_s, duplicate_window=duplicate_window_s)
            )
            log.info("updated JetStream stream MARKET limits")
        return info

    async def delete_stream_if_exists(self, name: str = codec.STREAM_NAME) -> bool:
        """Delete a stream and its consumers; return False when there was none (tests, resets)."""
        try:
            return bool(await self._nc.jsm().delete_stream(name))
        except nats.js.errors.NotFoundError:
            return False

    async def stream_info(self, name: str = codec.STREAM_NAME) -> api.StreamInfo:
        """Return the current info (message count, sequences) of a stream."""
        return await self._nc.jsm().stream_info(name)

    # -- JetStream publish with a bounded ack window ------------------------------------------

    async def publish_events(
        self, events: Sequence[MarketEvent], *, recv_ns: int | None = None
    ) -> None:
        """Publish events to JetStream with de-duplication ids; wait only when the window is full.

        Every message carries ``Nats-Msg-Id``, ``Algostack-Recv-Ns: recv_ns`` (when the
        ingest received the frame holding these events; default: now) and
        ``Algostack-Seq: <epoch>:<n>`` (its number on its subject) and, when message
        ``n - 1`` is already acked, ``Algostack-Prev-Seq``: its stream sequence. Returns once every
        event is handed to the connection; ``flush_acks()`` waits for the acks. Counters in
        ``stats`` move as acks arrive.
        """
        if self._closed:
            raise PublishError("bus is closed")
        pending = self._pending
        publish = self._nc.publish
        prefix = self._ack_prefix
        encode, subject_of, msg_id = codec.encode, codec.subject, codec.msg_id
        limit = self.max_inflight
        recv = str(time.time_ns() if recv_ns is None else recv_ns)
        numbers = self._subject_n
        stored = self._stored
        epoch = self._epoch
        for event in events:
            if len(pending) >= limit:
                await self._wait_window()
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
            pending[seq] = (subj, payload, mid, 1, headers, n)
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
                    await self._resend_stale()

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
            # No responders: no stream for the subject, or JetStream still recovering
            # right after a server restart. Re-send with growing delays before giving up.
            if entry[3] > self.max_resends:
                self._fail(entry, "no JetStream stream for this subject (503 no responders)")
                self._settle(seq)
            else:
                self._resend_later(seq, 0.1 * 2 ** (entry[3] - 1))
            return
        if b'"error"' in data:
            try:
                err = orjson.loads(data).get("error", {})
            except orjson.JSONDecodeError:
                err = {"description": data[:200].decode("utf-8", "replace")}
            self._fail(entry, f"{err.get('code')} {err.get('description')}")
            self._settle(seq)
            return
        if b'"duplicate"' in data:  # the server writes '"duplicate": true' (with a space)
            self.stats.duplicates += 1
        else:
            self.stats.published += 1
        found = _ACK_SEQ_RE.search(data)
        if found is not None:
            subj, n = entry[0], entry[5]
            known = self._stored.get(subj)
            if known is None or known[0] < n:
                self._stored[subj] = (n, int(found.group(1)))
        self._settle(seq)

    def _fail(self, entry: _Entry, reason: str) -> None:
        self.stats.failed += 1
        if len(self._errors) < 100:
            self._errors.append(f"{entry[0]} id={entry[2]}: {reason}")
        log.error(
            "JetStream refused a message",
            extra={"fields": {"subject": entry[0], "msg_id": entry[2], "reason": reason}},
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

    async def _resend_stale(self) -> None:
        """Re-send every unacked message (after an ack timeout); dedup drops what had landed."""
        await self._resend(list(self._pending))

    async def _resend(self, seqs: list[int]) -> None:
        if not seqs or self._nc.is_closed:
            return
        for old in seqs:
            entry = self._pending.get(old)
            if entry is None:
                continue
            subj, payload, mid, count, headers, n = entry
            if count > self.max_resends:
                self._fail(entry, f"no ack after {count} sends")
                self._settle(old)
                continue
            del self._pending[old]
            self._seq += 1
            self._pending[self._seq] = (subj, payload, mid, count + 1, headers, n)
            self.stats.resent += 1
            await self._nc.publish(
                subj, payload, reply=f"{self._ack_prefix}{self._seq}", headers=headers
            )

    async def flush_acks(self, timeout_s: float | None = None) -> None:
        """Wait until every published message is acked; re-send on ack timeouts.

        Raises ``PublishError`` when messages were refused or stayed unacked past
        ``timeout_s`` (default: ``ack_timeout_s * (max_resends + 1)``).
        """
        budget = timeout_s if timeout_s is not None else self.ack_timeout_s * (self.max_resends + 1)
        deadline = time.monotonic() + budget
        while self._pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PublishError(
                    f"{len(self._pending)} messages not acked by JetStream within {budget:g} s "
                    f"(NATS {self.url}, connected={self.connected})"
                )
            try:
                await asyncio.wait_for(self._drained.wait(), min(left, self.ack_timeout_s))
            except TimeoutError:
                if self.connected:
                    await self._resend_stale()
        if self._errors:
            errors, self._errors = self._errors, []
            raise PublishError(f"JetStream refused {len(errors)} message(s); first: {errors[0]}")

    # -- core NATS --------------------------------------------------------------------------

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str] | None = None
    ) -> None:
        """Publish one core-NATS message (trader events, control); not stored by JetStream."""
        if not subject or any(c in subject for c in " \t\r\n"):
            raise ValueError(f"invalid NATS subject {subject!r}")
        await self._nc.publish(subject, payload, headers=headers)

    async def subscribe(
        self, subject: str, cb: Callable[[BusMessage], Awaitable[None]]
    ) -> Subscription:
        """Call ``cb`` with every message on ``subject`` (wildcards allowed) until unsubscribed."""

        async def handler(msg: Msg) -> None:
            await cb(BusMessage(msg.subject, msg.data, msg.headers, msg.reply))

        return Subscription(await self._nc.subscribe(subject, cb=handler))

    async def ordered_subscribe(
        self,
        filter_subjects: Sequence[str],
        cb: Callable[[BusMessage], Awaitable[None]],
        *,
        start_time: datetime | None = None,
        stream: str = codec.STREAM_NAME,
    ) -> Subscription:
        """Replay ``stream`` (from ``start_time``, else from its start) then follow it live.

        An ordered consumer: ephemeral, no acks, re-created by nats-py after a gap. Raises
        ``nats.js.errors.NotFoundError`` when the stream does not exist (yet).
        """
        config = api.ConsumerConfig(filter_subjects=list(filter_subjects))
        if start_time is not None:
            config.deliver_policy = api.DeliverPolicy.BY_START_TIME
            config.opt_start_time = start_time
        else:
            config.deliver_policy = api.DeliverPolicy.ALL
        await self.stream_info(stream)

        async def handler(msg: Msg) -> None:
            try:
                stored = msg.metadata.timestamp
                stored_ns = int(stored.timestamp() * 1e9) if stored else None
            except Exception:  # a message without JetStream metadata
                stored_ns = None
            await cb(BusMessage(msg.subject, msg.data, msg.headers, msg.reply, stored_ns))

        sub = await self._nc.jetstream().subscribe(
            f"{codec.SUBJECT_ROOT}.>" if stream == codec.STREAM_NAME else ">",
            stream=stream,
            cb=handler,
            ordered_consumer=True,
            config=config,
        )
        return Subscription(sub)

    async def flush(self, timeout_s: float = 5.0) -> None:
        """Round-trip to the server so everything published so far has reached it."""
        await self._nc.flush(timeout=timeout_s)  # type: ignore[arg-type]

    # -- consumers ----------------------------------------------------------------------------

    async def feed_consumer(
        self,
        name: str,
        subjects: Sequence[str],
        *,
        start_seq: int,
        ack_wait_s: float = 30.0,
        max_ack_pending: int = 20_000,
    ) -> FeedConsumer:
        """(Re)create the durable consumer ``name`` at ``start_seq`` and hold it (``feed.py``)."""
        return await FeedConsumer.create(
            self._nc,
            name,
            subjects,
            start_seq=start_seq,
            ack_wait_s=ack_wait_s,
            max_ack_pending=max_ack_pending,
        )

    async def resume_point(
        self, name: str, *, committed_seq: int = 0, bound_wait_s: float = _feed.BOUND_WAIT_S
    ) -> tuple[int, bool]:
        """Where durable consumer ``name`` resumes: ``(first seq, existed)``; see ``feed.py``."""
        return await _feed.resume_point(self._nc, name, committed_seq, bound_wait_s=bound_wait_s)

    async def last_stream_seq(self) -> int:
        """The last sequence stored in the MARKET stream (0 when empty)."""
        return await _feed.last_stream_seq(self._nc)

    async def read_history(
        self, subject: str, upto_seq: int, *, timeout_s: float = 30.0
    ) -> list[BusMessage]:
        """Every MARKET message on ``subject`` with stream seq <= ``upto_seq``, in order."""
        msgs = await _feed.read_history(self._nc, subject, upto_seq, timeout_s=timeout_s)
        return [BusMessage(m.subject, m.data, m.headers, stream_seq=seq) for seq, m in msgs]

    async def durable_consumer(
        self,
        name: str,
        subjects: Sequence[str],
        *,
        deliver_new: bool = False,
        ack_wait_s: float = 30.0,
        max_ack_pending: int = 10_000,
    ) -> DurableConsumer:
        """Bind (creating if needed) the durable pull consumer ``name`` on ``MARKET``.

        See ``DurableConsumer``: decoded events in stream order, explicit acks, and a
        restarted consumer resumes after the last acked message.
        """
        return await DurableConsumer.bind(
            self._nc,
            name,
            subjects,
            deliver_new=deliver_new,
            ack_wait_s=ack_wait_s,
            max_ack_pending=max_ack_pending,
        )

    # -- shutdown -------------------------------------------------------------------------

    async def close(self, timeout_s: float | None = None) -> None:
        """Wait for outstanding acks (bounded), then drain and close the connection."""
        if self._closed:
            return
        try:
            if self._pending and self.connected:
                await self.flush_acks(timeout_s)
        finally:
            self._closed = True
            for task in list(self._tasks):
                task.cancel()
            if not self._nc.is_closed:
                try:
                    await self._nc.drain()
                except (nats.errors.Error, TimeoutError, OSError):
                    await self._nc.close()
            log.info(
                "nats closed",
                extra={"fields": {"url": self.url, **self.stats.__dict__}},
            )
