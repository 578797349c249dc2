"""The NATS bus: ``NatsBus``, the ``core.market_bus.MarketBus`` over nats-py, and the only
place that talks to NATS: the connection (connect with retries, reconnect, drain), the
streams, core publish/subscribe, and the traders' durable reads (``feed_consumer.py``).
``publish_events``/``flush_acks`` are the ``AckWindowPublisher``'s own (``publisher.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

from algostack.adapters.nats import feed_consumer as _feed
from algostack.adapters.nats.feed_consumer import FeedConsumer
from algostack.adapters.nats.publisher import AckWindowPublisher, store_full_error
from algostack.core import codec
from algostack.core.backoff import Backoff, retry_async
from algostack.core.market_bus import (
    BusMessage,
    BusStats,
    MarketBus,
    StreamMissingError,
    check_subject,
)
from algostack.errors import (
    AlgostackError,
    AuthError,
    ConfigError,
    FatalError,
    RetryableError,
)

if TYPE_CHECKING:
    from algostack.config import NatsSettings

log = logging.getLogger("algostack.nats.bus")

DEFAULT_MAX_INFLIGHT = 4096
DEFAULT_DUPLICATE_WINDOW_S = 600.0
"""Ten minutes: covers a reconnect storm plus a backfill; the server keeps one id per message."""
ORDERED_HEARTBEAT_S = 0.5
"""Idle heartbeat of an ordered consumer: nats-py re-creates one that missed two (1-2 s after
a server restart lost it; its default of 5 s left the gateway's bars stopped 10-20 s)."""


class NatsUnreachableError(FatalError):
    """NATS stayed unreachable for the whole connect timeout."""


class Subscription:
    """A core-NATS subscription; ``unsubscribe()`` ends it."""

    def __init__(self, sub: Any) -> None:
        self._sub = sub

    async def unsubscribe(self) -> None:
        """Stop receiving messages."""
        await self._sub.unsubscribe()


@contextlib.contextmanager
def _store_full_is_fatal(doing: str) -> Iterator[None]:
    """Raise a JetStream API error that says the store is full as ``JetStreamStoreFullError``."""
    try:
        yield
    except nats.js.errors.APIError as exc:
        full = store_full_error(exc.err_code, exc.description, doing)
        if full is None:
            raise
        raise full from exc


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
        self._nc = nc
        self.url = redact_url(url)
        self.stats = BusStats()
        self._publisher = AckWindowPublisher(
            nc,
            self.stats,
            url=self.url,
            max_inflight=max_inflight,
            ack_timeout_s=ack_timeout_s,
            max_resends=max_resends,
        )
        self._gap_listeners: list[Callable[[], None]] = []
        self._closed = False
        # The market publish path is the publisher's own: no bus frame between the ingest
        # and the connection (docs/architecture.md, "One bar, file by file").
        self.publish_events = self._publisher.publish_events
        """Store events in ``MARKET`` (``AckWindowPublisher.publish_events``)."""
        self.flush_acks = self._publisher.flush_acks
        """Wait for every ack (``AckWindowPublisher.flush_acks``)."""
        self._js: Any = None

    # -- connection -----------------------------------------------------------------------

    @classmethod
    async def from_settings(cls, nats: NatsSettings, url: str, name: str) -> NatsBus:
        """``connect`` to ``url`` with the user, password and timeout of ``nats``."""
        password = nats.password.get_secret_value() if nats.password else None
        return await cls.connect(
            url,
            user=nats.user,
            password=password,
            connect_timeout_s=nats.connect_timeout_s,
            name=name,
        )

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
            bus._publisher.on_disconnect()
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
        await bus._publisher.start()
        log.info("nats connected", extra={"fields": {"url": safe_url, "name": name}})
        return bus

    async def _on_reconnected(self) -> None:
        self.stats.reconnects += 1
        log.warning(
            "nats reconnected; re-sending %d unacked messages",
            self.inflight,
            extra={"fields": {"url": self.url, "unacked": self.inflight}},
        )
        await self._publisher.resend_unacked()

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
    def client(self) -> Client:
        """The nats-py client, for the order channel (``order_channel.py``) alone."""
        return self._nc

    @property
    def jetstream(self) -> Any:
        """The connection's one JetStream context (its async-publish reply inbox is made
        once, at the first ``publish_async``)."""
        if self._js is None:
            self._js = self._nc.jetstream()
        return self._js

    @property
    def inflight(self) -> int:
        """Messages sent to JetStream whose ack has not arrived yet."""
        return self._publisher.inflight

    # -- JetStream: the MARKET stream ---------------------------------------------------------

    async def ensure_market_stream(
        self,
        *,
        max_age_s: float = 86_400.0,
        duplicate_window_s: float = DEFAULT_DUPLICATE_WINDOW_S,
    ) -> api.StreamInfo:
        """Create the ``MARKET`` stream, or verify it and update its limits to these values."""
        return await self.ensure_stream(
            codec.STREAM_NAME,
            [f"{codec.SUBJECT_ROOT}.>"],
            max_age_s=max_age_s,
            duplicate_window_s=duplicate_window_s,
        )

    async def ensure_stream(
        self,
        name: str,
        subjects: Sequence[str],
        *,
        max_age_s: float = 86_400.0,
        duplicate_window_s: float = DEFAULT_DUPLICATE_WINDOW_S,
    ) -> api.StreamInfo:
        """Create a file-backed stream, or verify it and update its limits to these values.

        A stream of that name with other subjects or memory storage is a ``ConfigError``:
        changing those would lose data, so a human decides. A full JetStream store is a
        ``JetStreamStoreFullError``.
        """
        if duplicate_window_s > max_age_s:
            raise ConfigError("duplicate_window_s must not exceed max_age_s")
        manager = self._nc.jsm()
        wanted = api.StreamConfig(
            name=name,
            subjects=list(subjects),
            storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS,
            max_age=max_age_s,
            duplicate_window=duplicate_window_s,
        )
        try:
            info = await manager.stream_info(name)
        except nats.js.errors.NotFoundError:
            try:
                with _store_full_is_fatal(f"creating stream {name}"):
                    info = await manager.add_stream(wanted)
            except nats.js.errors.BadRequestError:  # created meanwhile by another process
                info = await manager.stream_info(name)
            else:
                log.info(
                    "created JetStream stream %s",
                    name,
                    extra={"fields": {"max_age_s": max_age_s, "dup_window_s": duplicate_window_s}},
                )
                return info
        cfg = info.config
        if list(cfg.subjects or []) != wanted.subjects or cfg.storage != api.StorageType.FILE:
            raise ConfigError(
                f"stream {name} exists with subjects {cfg.subjects} and storage {cfg.storage}; "
                f"expected {wanted.subjects} on file storage: delete or fix it by hand"
            )
        if cfg.max_age != max_age_s or cfg.duplicate_window != duplicate_window_s:
            with _store_full_is_fatal(f"updating stream {name}"):
                info = await manager.update_stream(
                    cfg.evolve(max_age=max_age_s, duplicate_window=duplicate_window_s)
                )
            log.info("updated JetStream stream %s limits", name)
        return info

    async def delete_stream_if_exists(self, name: str = codec.STREAM_NAME) -> bool:
        """Delete a stream and its consumers; return False when there was none (tests, resets)."""
        try:
            return bool(await self._nc.jsm().delete_stream(name))
        except nats.js.errors.NotFoundError:
            return False

    async def reset_stream(
        self, name: str = codec.STREAM_NAME, subjects: Sequence[str] | None = None
    ) -> None:
        """Delete stream ``name`` and create it again, empty (``subjects`` default: MARKET's).

        nats-server answers a delete before it has removed the stream's files; a stream of
        the same name created in that window (up to ~2 s) comes back with the old messages.
        So the new stream is checked, and deleted and created again until it is empty.
        """
        wanted = list(subjects) if subjects is not None else [f"{codec.SUBJECT_ROOT}.>"]

        async def once() -> None:
            await self.delete_stream_if_exists(name)
            info = await self.ensure_stream(name, wanted)
            if info.state.messages:
                raise RetryableError(
                    f"stream {name} came back with {info.state.messages} old message(s)"
                )

        await retry_async(once, backoff=Backoff(base=0.05, cap=0.5), deadline_s=10.0)

    async def stream_info(self, name: str = codec.STREAM_NAME) -> api.StreamInfo:
        """Return the current info (message count, sequences) of a stream."""
        return await self._nc.jsm().stream_info(name)

    # -- core NATS --------------------------------------------------------------------------

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str] | None = None
    ) -> None:
        """Publish one core-NATS message (trader events, control); not stored by JetStream."""
        check_subject(subject)
        await self._nc.publish(subject, payload, headers=headers)

    async def subscribe(
        self, subject: str, cb: Callable[[BusMessage], Awaitable[None]]
    ) -> Subscription:
        """Call ``cb`` with every message on ``subject`` (wildcards allowed) until unsubscribed.

        An error ``cb`` raises is logged (one line for the project's own errors, with the
        traceback for any other) and the subscription goes on; nats-py alone would pass it
        to the client's error callback, where it was lost among connection noise.
        """

        async def handler(msg: Msg) -> None:
            try:
                await cb(BusMessage(msg.subject, msg.data, msg.headers, msg.reply))
            except AlgostackError as exc:
                log.error("handler of %s failed: %s", msg.subject, exc)
            except Exception:
                log.exception("handler of %s failed", msg.subject)

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

        An ordered consumer: ephemeral, no acks, re-created by nats-py after a gap, or after
        two idle heartbeats unheard (``ORDERED_HEARTBEAT_S``: a restarted server has lost the
        consumer). Raises ``StreamMissingError`` (retryable) when the stream does not exist
        (yet).
        """
        config = api.ConsumerConfig(filter_subjects=list(filter_subjects))
        if start_time is not None:
            config.deliver_policy = api.DeliverPolicy.BY_START_TIME
            config.opt_start_time = start_time
        else:
            config.deliver_policy = api.DeliverPolicy.ALL
        try:
            await self.stream_info(stream)
        except nats.js.errors.NotFoundError as exc:
            raise StreamMissingError(f"stream {stream} does not exist (yet)") from exc

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
            idle_heartbeat=ORDERED_HEARTBEAT_S,
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
    ) -> FeedConsumer:
        """(Re)create durable consumer ``name`` at ``start_seq`` and hold it (``FeedConsumer``)."""
        return await FeedConsumer.create(
            self._nc, name, subjects, start_seq=start_seq, ack_wait_s=ack_wait_s
        )

    async def resume_point(
        self, name: str, *, committed_seq: int = 0, bound_wait_s: float = _feed.BOUND_WAIT_S
    ) -> tuple[int, bool]:
        """Where durable consumer ``name`` resumes: ``(first seq, existed)``."""
        return await _feed.resume_point(self._nc, name, committed_seq, bound_wait_s=bound_wait_s)

    async def last_stream_seq(self) -> int:
        """The last sequence stored in the MARKET stream (0 when empty)."""
        return await _feed.last_stream_seq(self._nc)

    async def last_market_ts(self) -> int:
        """The timestamp of the last event stored in ``MARKET`` (0 when it holds none);
        ``RetryableError`` when the server does not say (a timeout, no permission)."""
        try:
            last = await self.last_stream_seq()
            if not last:
                return 0
            msg = await self._nc.jsm().get_msg(codec.STREAM_NAME, last)
            return int(codec.decode(msg.data or b"").ts)
        except (nats.errors.Error, nats.js.errors.Error, msgspec.DecodeError) as exc:
            raise RetryableError(f"MARKET's last message: {type(exc).__name__}: {exc}") from exc

    async def read_history(
        self, subject: str, upto_seq: int, *, timeout_s: float = 30.0
    ) -> list[BusMessage]:
        """Every MARKET message on ``subject`` with stream seq <= ``upto_seq``, in order."""
        msgs = await _feed.read_history(self._nc, subject, upto_seq, timeout_s=timeout_s)
        return [BusMessage(m.subject, m.data, m.headers, stream_seq=seq) for seq, m in msgs]

    # -- shutdown -------------------------------------------------------------------------

    async def close(self, timeout_s: float | None = None) -> None:
        """Wait for outstanding acks (bounded), then drain and close the connection."""
        if self._closed:
            return
        try:
            if self.inflight and self.connected:
                await self.flush_acks(timeout_s)
        finally:
            self._closed = True
            self._publisher.close()
            if not self._nc.is_closed:
                try:
                    await self._nc.drain()
                except (nats.errors.Error, TimeoutError, OSError):
                    await self._nc.close()
            log.info(
                "nats closed",
                extra={"fields": {"url": self.url, **self.stats.__dict__}},
            )


if TYPE_CHECKING:  # mypy proves NatsBus is a MarketBus

    def _is_market_bus(b: NatsBus) -> MarketBus:
        return b
