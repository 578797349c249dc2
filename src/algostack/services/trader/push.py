"""JetStream plumbing the trader needs that ``adapters/nats`` does not offer yet.

Temporary home (see docs/trader.md, "Requests"): this belongs in
``adapters/nats/consumer.py``. It reaches the bus's nats-py client through ``raw_client``.

- ``bind_push``: a durable *push* consumer with a callback, explicit ``AckPolicy.ALL`` acks,
  flow control and idle heartbeats, resuming at a given stream sequence. The pull consumer
  of ``adapters/nats/consumer.py`` holds a fetch open until its batch is full or its timeout
  passes, which adds up to the whole timeout to every bar's latency when bars trickle in.
- ``read_history``: the bars already in the stream (for feature warm-up), through an
  ephemeral ordered consumer, up to a stream sequence.
- message helpers: the stream sequence from a reply subject, the ingest receive time from
  the ``Algostack-Recv-Ns`` header.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

from algostack.adapters.nats.bus import NatsBus
from algostack.core import codec
from algostack.errors import ConfigError

log = logging.getLogger("algostack.trader.push")

RECV_HEADER = "Algostack-Recv-Ns"
"""Header the ingest sets on every market message: UTC ns when its frame was received."""

HEARTBEAT_S = 5.0
BOUND_WAIT_S = 5.0


def raw_client(bus: NatsBus) -> Client:
    """The nats-py client inside ``bus`` (until the bus offers push consumers itself)."""
    return bus._nc


def stream_seq(msg: Msg) -> int:
    """The MARKET stream sequence of a JetStream message, from its reply subject."""
    reply = msg.reply
    # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
    parts = reply.split(".")
    if len(parts) == 9:
        return int(parts[5])
    return int(msg.metadata.sequence.stream)


def recv_ns(msg: Msg) -> int:
    """The ingest's receive time carried by ``msg`` (0 when absent or malformed)."""
    headers = msg.headers
    if not headers:
        return 0
    value = headers.get(RECV_HEADER)
    if not value:
        return 0
    try:
        return int(value)
    except ValueError:
        return 0


async def consumer_info(nc: Client, name: str) -> api.ConsumerInfo | None:
    """The durable consumer's info, or ``None`` when it does not exist."""
    try:
        info: api.ConsumerInfo = await nc.jsm().consumer_info(codec.STREAM_NAME, name)
    except nats.js.errors.NotFoundError:
        return None
    return info


async def last_stream_seq(nc: Client) -> int:
    """The last sequence stored in the MARKET stream (0 when empty)."""
    info = await nc.jsm().stream_info(codec.STREAM_NAME)
    return int(info.state.last_seq or 0)


async def resume_point(nc: Client, name: str, state_seq: int) -> tuple[int, bool]:
    """Where the durable consumer ``name`` resumes: (first stream seq to decide, existed).

    An existing consumer resumes after its ack floor (or after ``state_seq`` from the state
    file when that is later: a commit whose ack was lost). It is refused while another
    process is bound to it.
    """
    deadline = asyncio.get_running_loop().time() + BOUND_WAIT_S
    while True:
        info = await consumer_info(nc, name)
        if info is None or not info.push_bound:
            break
        if asyncio.get_running_loop().time() > deadline:
            raise ConfigError(
                f"durable consumer {name!r} is bound by another running trader: stop it first "
                "(one trader per model)"
            )
        await asyncio.sleep(0.2)
    if info is None:
        return (state_seq + 1, False) if state_seq else (0, False)
    floor = int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0
    return max(floor, state_seq) + 1, True


async def bind_push(
    nc: Client,
    name: str,
    subjects: Sequence[str],
    start_seq: int,
    cb: Callable[[Msg], Awaitable[None]],
    *,
    ack_wait_s: float = 30.0,
    max_ack_pending: int = 20_000,
) -> Any:
    """(Re)create the durable push consumer ``name`` at ``start_seq`` and subscribe ``cb``.

    The consumer is re-created on every start so it resumes exactly at ``start_seq`` (known
    from its ack floor, read first by ``resume_point``) on a fresh deliver subject: no waiting
    ``ack_wait_s`` for messages the dead process held. ``cb`` runs for one message at a time.
    """
    jsm = nc.jsm()
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await jsm.delete_consumer(codec.STREAM_NAME, name)
    subs = list(subjects)
    config = api.ConsumerConfig(
        durable_name=name,
        deliver_subject=nc.new_inbox(),
        ack_policy=api.AckPolicy.ALL,
        deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=max(1, start_seq),
        ack_wait=ack_wait_s,
        max_ack_pending=max_ack_pending,
        flow_control=True,
        idle_heartbeat=HEARTBEAT_S,
        filter_subject=subs[0] if len(subs) == 1 else None,
        filter_subjects=subs if len(subs) > 1 else None,
    )
    try:
        info = await jsm.add_consumer(codec.STREAM_NAME, config)
    except nats.js.errors.BadRequestError as exc:
        raise ConfigError(f"cannot create durable consumer {name!r}: {exc.description}") from exc
    return await nc.jetstream().subscribe_bind(
        codec.STREAM_NAME,
        info.config,
        name,
        cb=cb,
        manual_ack=True,
        pending_msgs_limit=1_000_000,
        pending_bytes_limit=512 * 1024 * 1024,
    )


async def read_history(
    nc: Client, subject: str, upto_seq: int, *, timeout_s: float = 30.0
) -> list[Msg]:
    """Every message on ``subject`` with stream sequence <= ``upto_seq``, in order."""
    if upto_seq <= 0:
        return []
    out: list[Msg] = []
    done = asyncio.Event()

    async def on_msg(msg: Msg) -> None:
        seq = stream_seq(msg)
        if seq <= upto_seq:
            out.append(msg)
        meta = msg.metadata
        if seq >= upto_seq or not meta.num_pending:
            done.set()

    js = nc.jetstream()
    sub = await js.subscribe(
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
        if not info.num_pending and not delivered:
            return []  # nothing on this subject (messages already sent set ``done``)
        try:
            await asyncio.wait_for(done.wait(), timeout_s)
        except TimeoutError:
            log.warning(
                "warm-up read of %s stopped after %.0f s with %d bars", subject, timeout_s, len(out)
            )
    finally:
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()
    return out
