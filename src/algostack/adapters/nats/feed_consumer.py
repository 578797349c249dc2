"""The durable side of a trader's market feed on JetStream: ``FeedConsumer`` (batched pull,
``AckPolicy.ALL``), ``resume_point`` and ``read_history`` (where a restart starts). The live
side and the gate between the two are ``services/trader/model_feed.py`` and
``core/live_gate.py``; how and why: docs/trader.md, "The feed".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Sequence
from typing import Any

import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

from algostack.core import codec
from algostack.core.market_bus import recv_ns_of
from algostack.errors import ConfigError

log = logging.getLogger("algostack.nats.feed")

HEARTBEAT_S = 5.0
BOUND_WAIT_S = 5.0
"""How long ``resume_point`` waits for a just-killed process's consumer to be released."""
FETCH_TIMEOUT_S = 5.0
MAX_ACK_PENDING = 20_000
"""Deliveries a consumer may hold unacked (a model acks at its commits, every ~0.5 s)."""

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


def _reply_numbers(msg: Msg) -> tuple[int, int]:
    """``(stream sequence, messages pending)`` of a JetStream delivery, from its reply subject."""
    # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending> (the 9-token form;
    # nats-py's metadata parses the longer domain/account form too).
    parts = msg.reply.split(".")
    if len(parts) == 9:
        return int(parts[5]), int(parts[8])
    meta = msg.metadata
    return int(meta.sequence.stream), int(meta.num_pending)


def stream_seq_of(msg: Msg) -> int:
    """The stream sequence of a JetStream delivery, read from its reply subject."""
    return _reply_numbers(msg)[0]


class Delivery:
    """One message from a ``FeedConsumer``; ``ack()`` it once its effects are durable."""

    __slots__ = ("_msg", "data", "headers", "num_pending", "stream_seq", "subject")

    def __init__(self, msg: Msg) -> None:
        self._msg = msg
        self.subject: str = msg.subject
        self.data: bytes = msg.data
        self.headers: dict[str, str] | None = msg.headers
        self.stream_seq, self.num_pending = _reply_numbers(msg)

    @property
    def recv_ns(self) -> int:
        """When the ingest received this message's frame (UTC ns; 0 when unknown)."""
        return recv_ns_of(self.headers)

    async def ack(self) -> None:
        """Acknowledge this message and (``AckPolicy.ALL``) every earlier one."""
        await self._msg.ack()

    def __repr__(self) -> str:
        return f"Delivery(subject={self.subject!r}, stream_seq={self.stream_seq})"


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


def owner_subject(name: str) -> str:
    """Where the process that holds consumer ``name`` answers (``resume_point`` asks)."""
    return f"algostack.consumer.{name}.owner"


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


async def _probe(nc: Client, name: str) -> str:
    """Ask the owner subject once: ``"reply"``, ``"none"`` (no responders) or ``"timeout"``."""
    try:
        await nc.request(owner_subject(name), b"", timeout=0.25)
    except nats.errors.NoRespondersError:
        return "none"
    except nats.errors.TimeoutError:
        return "timeout"
    return "reply"


async def _held(nc: Client, name: str) -> bool:
    """True while a live process answers on the consumer's owner subject.

    A single answer is not trusted: right after a holder subscribes or leaves, a request can
    (rarely: ~1 in 150 on loopback) see no responders or time out. "Free" takes two
    no-responders answers in a row; a timeout is asked again.
    """
    nones = 0
    for _ in range(4):
        answer = await _probe(nc, name)
        if answer == "reply":
            return True
        nones = nones + 1 if answer == "none" else 0
        if nones == 2:
            return False
    return True  # asked but never answered: a stuck holder is still a holder


async def resume_point(
    nc: Client, name: str, committed_seq: int = 0, *, bound_wait_s: float = BOUND_WAIT_S
) -> tuple[int, bool]:
    """Where the durable consumer ``name`` resumes: ``(first stream seq to take, existed)``.

    An existing consumer resumes after its ack floor, or after ``committed_seq`` (what the
    caller has made durable itself) when that is later: a commit whose ack was lost. With no
    consumer and no ``committed_seq`` the answer is ``(0, False)``: the caller picks.
    A consumer still held by another live process after ``bound_wait_s`` is a
    ``ConfigError`` (one consumer per model).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound_wait_s
    while await _held(nc, name):
        if loop.time() > deadline:
            raise ConfigError(
                f"durable consumer {name!r} is bound by another running process: stop it "
                "first (one trader per model)"
            )
        await asyncio.sleep(0.2)
    info = await consumer_info(nc, name)
    if info is None:
        return (committed_seq + 1, False) if committed_seq else (0, False)
    floor = int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0
    return max(floor, committed_seq) + 1, True


class FeedConsumer:
    """A model's durable pull consumer, read in batches; build it with ``NatsBus.feed_consumer``.

    ``AckPolicy.ALL``: acking a message acks every earlier one, so a service acks once per
    group commit, after its state is durable. ``fetch`` asks for everything available now
    (``no_wait``) and never holds a request open on the server: messages arrive in one
    burst per call rather than one wake-up per message, which is what keeps the durable
    path off the live path's CPU. The holder answers on ``owner_subject(name)``.
    """

    def __init__(self, nc: Client, name: str, subjects: Sequence[str], start_seq: int) -> None:
        self._nc = nc
        self.name = name
        self.subjects = tuple(subjects)
        self.start_seq = start_seq
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{codec.STREAM_NAME}.{name}"
        self._inbox = nc.new_inbox()
        self._buf: list[Delivery] = []
        self._want = 0
        self._done: asyncio.Event = asyncio.Event()
        self._subs: list[Any] = []
        self._closed = False
        self._config = api.ConsumerConfig()
        self.position = max(1, start_seq)
        """The first stream sequence the next fetch can deliver."""
        self.status: str = ""
        """The last status the server ended a fetch with (404, 408, 409 ...)."""

    @classmethod
    async def create(
        cls,
        nc: Client,
        name: str,
        subjects: Sequence[str],
        *,
        start_seq: int,
        ack_wait_s: float = 30.0,
    ) -> FeedConsumer:
        """(Re)create the durable consumer ``name`` to start at ``start_seq``, and hold it.

        Re-created on every start, so nothing waits ``ack_wait_s`` for messages a dead
        process held.
        """
        subs = check_consumer(name, subjects)
        self = cls(nc, name, subs, start_seq)
        self._config = api.ConsumerConfig(
            durable_name=name,
            ack_policy=api.AckPolicy.ALL,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            ack_wait=ack_wait_s,
            max_ack_pending=MAX_ACK_PENDING,
            filter_subject=subs[0] if len(subs) == 1 else None,
            filter_subjects=subs if len(subs) > 1 else None,
        )
        await self.restart_at(start_seq)

        async def on_owner(msg: Msg) -> None:
            with contextlib.suppress(nats.errors.Error):
                await msg.respond(str(os.getpid()).encode())

        self._subs.append(
            await nc.subscribe(
                self._inbox,
                cb=self._on_msg,
                pending_msgs_limit=1_000_000,
                pending_bytes_limit=512 * 1024 * 1024,
            )
        )
        self._subs.append(await nc.subscribe(owner_subject(name), cb=on_owner))
        await nc.flush()  # the server knows the holder before anyone asks
        log.info(
            "feed consumer created",
            extra={"fields": {"consumer": name, "subjects": subs, "start_seq": start_seq}},
        )
        return self

    async def restart_at(self, start_seq: int) -> None:
        """(Re)create the consumer so that it delivers from ``start_seq`` on.

        Only call it between fetches, with everything before ``start_seq`` handled and
        durable: the new consumer's ack floor is ``start_seq - 1``.
        """
        jsm = self._nc.jsm()
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await jsm.delete_consumer(codec.STREAM_NAME, self.name)
        self._config.opt_start_seq = max(1, start_seq)
        try:
            await jsm.add_consumer(codec.STREAM_NAME, self._config)
        except nats.js.errors.BadRequestError as exc:
            raise ConfigError(
                f"cannot create durable consumer {self.name!r} on {list(self.subjects)}: "
                f"{exc.description}"
            ) from exc
        self._buf.clear()
        self.position = max(1, start_seq)

    async def _on_msg(self, msg: Msg) -> None:
        if msg.reply.startswith("$JS.ACK."):  # a stream message
            self._buf.append(Delivery(msg))
            if len(self._buf) >= self._want:
                self._done.set()
            return
        status = msg.headers.get("Status") if msg.headers else None
        if status is None or status == "100":  # heartbeat / flow control: not an answer
            return
        self.status = status  # 404 no messages, 408 request expired, 409 ...
        self._done.set()

    async def fetch(self, batch: int = 1000, timeout_s: float = FETCH_TIMEOUT_S) -> list[Delivery]:
        """Up to ``batch`` messages available now, in stream order (``[]``: none pending).

        The server answers at once (``no_wait``): the messages it has, then a status. A
        reply slower than ``timeout_s`` returns what came; stragglers join the next call.
        """
        if self._closed:
            return []
        self._want = batch
        self._done.clear()
        self.status = ""
        if len(self._buf) < batch:
            await self._nc.publish(
                self._next, orjson.dumps({"batch": batch - len(self._buf), "no_wait": True}),
                reply=self._inbox,
            )  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), timeout_s)
        out, self._buf = self._buf, []
        if out:
            self.position = out[-1].stream_seq + 1
        return out

    async def info(self) -> api.ConsumerInfo:
        """The server's view of this consumer (ack floor, pending, redelivered)."""
        info: api.ConsumerInfo = await self._nc.jsm().consumer_info(codec.STREAM_NAME, self.name)
        return info

    async def close(self) -> None:
        """Stop holding the consumer (it stays on the server, with its ack floor)."""
        if self._closed:
            return
        self._closed = True
        self._done.set()
        for sub in self._subs:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await self._nc.flush()  # released: the next holder may start at once


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
