"""Durable JetStream push consumers with a callback, and a reader of the stream's history.

A trader reads market data through ``NatsBus.push_consumer``: a durable consumer named after
its model (DESIGN.md 3.3) on the ``MARKET`` stream, delivering to a callback as soon as a
message is stored. A pull consumer holds each fetch open until its batch fills or its
timeout passes, which adds up to the whole timeout to every bar's latency when bars trickle
in; a push consumer does not. The consumer uses:

- ``AckPolicy.ALL``: acking a message acks every earlier one, so a service can ack once per
  group commit (after its state is durable) instead of once per message;
- flow control and idle heartbeats (handled inside nats-py): a slow callback throttles the
  server instead of overflowing the client, and a silent consumer is detected;
- a start stream sequence: it is re-created on every start at the sequence the caller
  resumes from (``resume_point``), on a fresh deliver subject, so nothing waits
  ``ack_wait_s`` for messages a dead process held.

Usage::

    start, existed = await bus.resume_point(key, committed_seq=state_seq)
    history = await bus.read_history("market.bars.AAPL", start - 1)   # warm-up
    consumer = await bus.push_consumer(key, ["market.bars.AAPL"], on_msg, start_seq=start)
    ...                                  # on_msg(delivery): decide, later delivery.ack()
    await consumer.close()

Every market message the ingest publishes carries ``Algostack-Recv-Ns``: the wall time
(``time.time_ns()``, UTC ns) at which the ingest received the websocket frame holding it.
``PushDelivery.recv_ns`` reads it (0 when absent or malformed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

from algostack.core import codec
from algostack.errors import ConfigError

log = logging.getLogger("algostack.nats.push")

RECV_HEADER = "Algostack-Recv-Ns"
"""Header set by the ingest on every market message: UTC ns when its frame was received."""
HEARTBEAT_S = 5.0
BOUND_WAIT_S = 5.0
"""How long ``resume_point`` waits for a just-killed process's binding to go away."""

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


def stream_seq_of(msg: Msg) -> int:
    """The stream sequence of a JetStream delivery, read from its reply subject."""
    # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending> (the 9-token form;
    # nats-py's metadata parses the longer domain/account form too).
    parts = msg.reply.split(".")
    if len(parts) == 9:
        return int(parts[5])
    return int(msg.metadata.sequence.stream)


def recv_ns_of(headers: dict[str, str] | None) -> int:
    """The ingest receive time in ``headers`` (0 when absent or malformed)."""
    if not headers:
        return 0
    value = headers.get(RECV_HEADER)
    if not value:
        return 0
    try:
        return int(value)
    except ValueError:
        return 0


class PushDelivery:
    """One message from a push consumer; ``ack()`` it once its effects are durable."""

    __slots__ = ("_msg", "data", "headers", "stream_seq", "subject")

    def __init__(self, msg: Msg) -> None:
        self._msg = msg
        self.subject: str = msg.subject
        self.data: bytes = msg.data
        self.headers: dict[str, str] | None = msg.headers
        self.stream_seq: int = stream_seq_of(msg)

    @property
    def recv_ns(self) -> int:
        """When the ingest received this message's frame (UTC ns; 0 when unknown)."""
        return recv_ns_of(self.headers)

    async def ack(self) -> None:
        """Acknowledge this message and (``AckPolicy.ALL``) every earlier one."""
        await self._msg.ack()

    def __repr__(self) -> str:
        return f"PushDelivery(subject={self.subject!r}, stream_seq={self.stream_seq})"


def check_consumer(name: str, subjects: Sequence[str]) -> list[str]:
    """Validate a durable consumer's name and subjects; return the subjects as a list."""
    if not _NAME_RE.match(name):
        raise ConfigError(
            f"consumer name {name!r} must be 1-200 of A-Z a-z 0-9 _ - "
            "(use algostack.core.naming.model_key)"
        )
    subs = list(subjects)
    if not subs or any(not s.startswith(codec.SUBJECT_ROOT + ".") for s in subs):
        raise ConfigError(f"consumer subjects must be under market.>, got {subs}")
    return subs


async def consumer_info(nc: Client, name: str) -> api.ConsumerInfo | None:
    """The durable consumer's info on MARKET, or ``None`` when it does not exist."""
    try:
        info: api.ConsumerInfo = await nc.jsm().consumer_info(codec.STREAM_NAME, name)
    except nats.js.errors.NotFoundError:
        return None
    return info


async def last_stream_seq(nc: Client) -> int:
    """The last sequence stored in the MARKET stream (0 when empty)."""
    info = await nc.jsm().stream_info(codec.STREAM_NAME)
    return int(info.state.last_seq or 0)


async def resume_point(
    nc: Client, name: str, committed_seq: int = 0, *, bound_wait_s: float = BOUND_WAIT_S
) -> tuple[int, bool]:
    """Where the durable consumer ``name`` resumes: ``(first stream seq to take, existed)``.

    An existing consumer resumes after its ack floor, or after ``committed_seq`` (what the
    caller has made durable itself) when that is later: a commit whose ack was lost. With no
    consumer and no ``committed_seq`` the answer is ``(0, False)``: the caller picks.
    A consumer still bound by another live process after ``bound_wait_s`` is a
    ``ConfigError`` (one consumer per model).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound_wait_s
    while True:
        info = await consumer_info(nc, name)
        if info is None or not info.push_bound:
            break
        if loop.time() > deadline:
            raise ConfigError(
                f"durable consumer {name!r} is bound by another running process: stop it "
                "first (one trader per model)"
            )
        await asyncio.sleep(0.2)
    if info is None:
        return (committed_seq + 1, False) if committed_seq else (0, False)
    floor = int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0
    return max(floor, committed_seq) + 1, True


class PushConsumer:
    """A bound durable push consumer; build it with ``NatsBus.push_consumer``."""

    def __init__(self, name: str, subjects: Sequence[str], start_seq: int, sub: Any) -> None:
        self.name = name
        self.subjects = tuple(subjects)
        self.start_seq = start_seq
        self._sub = sub
        self._closed = False

    @classmethod
    async def create(
        cls,
        nc: Client,
        name: str,
        subjects: Sequence[str],
        cb: Callable[[PushDelivery], Awaitable[None]],
        *,
        start_seq: int,
        ack_wait_s: float = 30.0,
        max_ack_pending: int = 20_000,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> PushConsumer:
        """(Re)create the durable consumer ``name`` at ``start_seq`` and subscribe ``cb``.

        ``cb`` runs for one message at a time, in stream order.
        """
        subs = check_consumer(name, subjects)
        jsm = nc.jsm()
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await jsm.delete_consumer(codec.STREAM_NAME, name)
        config = api.ConsumerConfig(
            durable_name=name,
            deliver_subject=nc.new_inbox(),
            ack_policy=api.AckPolicy.ALL,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(1, start_seq),
            ack_wait=ack_wait_s,
            max_ack_pending=max_ack_pending,
            flow_control=True,
            idle_heartbeat=heartbeat_s,
            filter_subject=subs[0] if len(subs) == 1 else None,
            filter_subjects=subs if len(subs) > 1 else None,
        )
        try:
            info = await jsm.add_consumer(codec.STREAM_NAME, config)
        except nats.js.errors.BadRequestError as exc:
            raise ConfigError(
                f"cannot create durable consumer {name!r} on {subs}: {exc.description}"
            ) from exc

        async def handler(msg: Msg) -> None:
            await cb(PushDelivery(msg))

        sub = await nc.jetstream().subscribe_bind(
            codec.STREAM_NAME,
            info.config,
            name,
            cb=handler,
            manual_ack=True,
            pending_msgs_limit=1_000_000,
            pending_bytes_limit=512 * 1024 * 1024,
        )
        log.info(
            "push consumer bound",
            extra={"fields": {"consumer": name, "subjects": subs, "start_seq": start_seq}},
        )
        return cls(name, subs, start_seq, sub)

    async def info(self) -> api.ConsumerInfo:
        """The server's view of this consumer (ack floor, pending, redelivered)."""
        info: api.ConsumerInfo = await self._sub.consumer_info()
        return info

    async def close(self) -> None:
        """Stop delivery (the durable consumer and its ack floor stay on the server)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(nats.errors.Error):
            await self._sub.unsubscribe()


async def read_history(
    nc: Client, subject: str, upto_seq: int, *, timeout_s: float = 30.0
) -> list[tuple[int, Msg]]:
    """Every ``(stream seq, message)`` on ``subject`` with stream seq <= ``upto_seq``, in order.

    Reads through an ephemeral ordered consumer (no acks, nothing left on the server).
    """
    if upto_seq <= 0:
        return []
    out: list[tuple[int, Msg]] = []
    done = asyncio.Event()

    async def on_msg(msg: Msg) -> None:
        seq = stream_seq_of(msg)
        if seq <= upto_seq:
            out.append((seq, msg))
        if seq >= upto_seq or not msg.metadata.num_pending:
            done.set()

    sub = await nc.jetstream().subscribe(
        subject,
        stream=codec.STREAM_NAME,
        cb=on_msg,
        ordered_consumer=True,
        deliver_policy=api.DeliverPolicy.ALL,
        idle_heartbeat=HEARTBEAT_S,
    )
    try:
        info = await sub.consumer_info()
        delivered = int(info.delivered.consumer_seq or 0) if info.delivered else 0
        if not info.num_pending and not delivered and not out:
            return []  # nothing on this subject
        try:
            await asyncio.wait_for(done.wait(), timeout_s)
        except TimeoutError:
            log.warning(
                "history read of %s stopped after %.0f s with %d messages",
                subject,
                timeout_s,
                len(out),
            )
    finally:
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()
    return out
