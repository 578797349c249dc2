"""Durable JetStream consumers for traders: decoded market events, in order, explicit acks.

One durable pull consumer per model (named after the model key, DESIGN.md 3.3) on the
``MARKET`` stream, filtered to the subjects the model needs. The server remembers the last
acked message, so a trader that restarts (new process, new connection) gets the next
un-acked event. Usage::

    consumer = await bus.durable_consumer(model.key, ["market.bars.AAPL"])
    async for delivery in consumer.deliveries():
        handle(delivery.event)
        await delivery.ack()          # or: await consumer.ack_through(delivery)
    ...
    await consumer.close()            # naks what was fetched but not acked

Acknowledge in order. A delivery that is fetched and never acked comes back after
``ack_wait_s`` (or at once after ``close()``, which naks it); a malformed payload is
terminated (never redelivered), counted in ``malformed`` and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

from algostack.adapters.nats.feed import check_consumer
from algostack.core import codec
from algostack.core.market import MarketEvent
from algostack.errors import ConfigError
from algostack.logs import truncate

log = logging.getLogger("algostack.nats.consumer")


@dataclass
class Delivery:
    """One decoded event from a durable consumer; ack it once handled."""

    event: MarketEvent
    subject: str
    stream_seq: int
    """Position in the MARKET stream (strictly increasing within a consumer)."""
    num_delivered: int
    """1 on first delivery, more when redelivered."""
    _msg: Msg = field(repr=False)
    _acked: bool = field(default=False, repr=False)

    async def ack(self) -> None:
        """Acknowledge: the consumer will not deliver this event again."""
        if not self._acked:
            await self._msg.ack()
            self._acked = True

    async def nak(self, delay_s: float | None = None) -> None:
        """Ask for redelivery (after ``delay_s``)."""
        if not self._acked:
            await self._msg.nak(delay=delay_s)
            self._acked = True

    @property
    def settled(self) -> bool:
        """True once acked or nak'ed."""
        return self._acked


class DurableConsumer:
    """A durable pull consumer on the MARKET stream; build it with ``NatsBus.durable_consumer``."""

    def __init__(self, name: str, subjects: Sequence[str], psub: Any) -> None:
        self.name = name
        self.subjects = tuple(subjects)
        self._psub = psub
        self._outstanding: dict[int, Delivery] = {}
        self.malformed = 0
        self.delivered = 0
        self._closed = False

    @classmethod
    async def bind(
        cls,
        nc: Client,
        name: str,
        subjects: Sequence[str],
        *,
        deliver_new: bool = False,
        ack_wait_s: float = 30.0,
        max_ack_pending: int = 10_000,
    ) -> DurableConsumer:
        """Create the consumer if it does not exist (else update its subjects) and bind to it."""
        subs = check_consumer(name, subjects)
        config = api.ConsumerConfig(
            durable_name=name,
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.NEW if deliver_new else api.DeliverPolicy.ALL,
            ack_wait=ack_wait_s,
            max_ack_pending=max_ack_pending,
            filter_subject=subs[0] if len(subs) == 1 else None,
            filter_subjects=subs if len(subs) > 1 else None,
        )
        jsm = nc.jsm()
        try:
            await jsm.add_consumer(codec.STREAM_NAME, config)
        except nats.js.errors.BadRequestError as exc:
            raise ConfigError(
                f"cannot create or update durable consumer {name!r} on {subs}: {exc.description}"
            ) from exc
        psub = await nc.jetstream().pull_subscribe_bind(consumer=name, stream=codec.STREAM_NAME)
        log.info("durable consumer bound", extra={"fields": {"consumer": name, "subjects": subs}})
        return cls(name, subs, psub)

    async def fetch(self, batch: int = 256, timeout_s: float = 1.0) -> list[Delivery]:
        """Fetch up to ``batch`` events in stream order; ``[]`` when none came in ``timeout_s``."""
        try:
            msgs = await self._psub.fetch(batch, timeout=timeout_s)
        except TimeoutError:  # nats.errors.TimeoutError, or a bare asyncio one from fetch()
            return []
        out: list[Delivery] = []
        for msg in msgs:
            try:
                event = codec.decode(msg.data)
            except msgspec.DecodeError as exc:
                self.malformed += 1
                log.warning(
                    "malformed market payload terminated",
                    extra={
                        "fields": {
                            "consumer": self.name,
                            "subject": msg.subject,
                            "error": str(exc),
                            "payload": truncate(msg.data),
                        }
                    },
                )
                await msg.term()
                continue
            meta = msg.metadata
            d = Delivery(event, msg.subject, meta.sequence.stream, meta.num_delivered, msg)
            self._outstanding[d.stream_seq] = d
            out.append(d)
        self.delivered += len(out)
        self._forget_settled()
        return out

    async def deliveries(
        self, batch: int = 256, idle_timeout_s: float = 1.0, stop: asyncio.Event | None = None
    ) -> AsyncIterator[Delivery]:
        """Yield deliveries forever (or until ``stop`` is set or the consumer is closed)."""
        while not self._closed and not (stop is not None and stop.is_set()):
            for d in await self.fetch(batch, idle_timeout_s):
                yield d

    async def ack_through(self, delivery: Delivery) -> None:
        """Ack ``delivery`` and every outstanding delivery before it (in stream order)."""
        for seq in sorted(self._outstanding):
            if seq > delivery.stream_seq:
                break
            await self._outstanding[seq].ack()
        self._forget_settled()

    def _forget_settled(self) -> None:
        for seq in [s for s, d in self._outstanding.items() if d.settled]:
            del self._outstanding[seq]

    async def pending(self) -> int:
        """Events in the stream that this consumer has not delivered yet (server view)."""
        info = await self._psub.consumer_info()
        return int(info.num_pending or 0)

    async def close(self) -> None:
        """Nak what was fetched but not acked (so a restart gets it at once) and unbind."""
        if self._closed:
            return
        self._closed = True
        for seq in sorted(self._outstanding):
            d = self._outstanding[seq]
            if not d.settled:
                try:
                    await d.nak()
                except nats.errors.Error:
                    break
        self._outstanding.clear()
        with contextlib.suppress(nats.errors.Error):
            await self._psub.unsubscribe()
