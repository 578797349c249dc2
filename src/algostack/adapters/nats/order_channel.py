"""The order channel between traders and the execution gateway, on JetStream (``ORDERS``).

Subjects: ``orders.intent.<model key>`` (trader -> gateway: one ``OrderIntent`` per order,
``Nats-Msg-Id`` = its client order id) and ``orders.report.<model key>`` (gateway -> trader:
``OrderReport``, ``Nats-Msg-Id`` = its report id). Both sides publish with a JetStream ack
and read through durable pull consumers, so neither a restart of the trader nor one of the
gateway loses or doubles an intent or a report (docs/gateway.md).

``GatewayBroker`` is the trader's ``Broker``: ``submit`` queues the intent and a sender
task publishes it (the one retrier, outside the model's feed lock); reports come through a
push consumer and are handed to the runner at once (``on_reports``) or at its next bar;
they are acked only through what a trader commit covers (``checkpoint`` / ``committed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec
import nats.errors
import nats.js.errors
from nats.js import api

from algostack.adapters.nats.publisher import store_full_error
from algostack.core.backoff import Backoff, cancel_and_wait, retry_async
from algostack.core.market import Bar
from algostack.core.naming import safe_token
from algostack.core.orders import Fill, OrderAck, OrderIntent, OrderReport, OrderStatus, bad_qty
from algostack.errors import RetryableError

if TYPE_CHECKING:
    from algostack.adapters.broker import Broker
    from algostack.adapters.nats.bus import NatsBus

log = logging.getLogger("algostack.nats.orders")

STREAM = "ORDERS"
SUBJECTS = ("orders.intent.>", "orders.report.>")
GATEWAY_CONSUMER = "gateway"
MSG_ID = "Nats-Msg-Id"
SEND_DEADLINE_S = 120.0
"""How long the sender keeps trying to hand an intent to JetStream before giving it up."""
SEEN_REPORTS = 100_000
ACK_WAIT_S = 2.0
"""How long one publish waits for JetStream's ack before the retrier tries again."""

_INTENT_ENC = msgspec.msgpack.Encoder()
_INTENT_DEC = msgspec.msgpack.Decoder(OrderIntent)
_REPORT_DEC = msgspec.msgpack.Decoder(OrderReport)


def intent_subject(model: str) -> str:
    """``orders.intent.<model key>``."""
    return f"orders.intent.{safe_token(model)}"


def report_subject(model: str) -> str:
    """``orders.report.<model key>``."""
    return f"orders.report.{safe_token(model)}"


def encode(msg: OrderIntent | OrderReport) -> bytes:
    """msgpack, like every other payload on the bus."""
    return _INTENT_ENC.encode(msg)


def decode_intent(data: bytes) -> OrderIntent:
    """Decode an intent; ``msgspec.ValidationError``/``DecodeError`` when malformed."""
    return _INTENT_DEC.decode(data)


def decode_report(data: bytes) -> OrderReport:
    """Decode a report; ``msgspec.ValidationError``/``DecodeError`` when malformed."""
    return _REPORT_DEC.decode(data)


async def ensure_orders_stream(bus: NatsBus) -> None:
    """Create (or check) the ``ORDERS`` stream: file storage, one day, 10 min de-dup."""
    await bus.ensure_stream(STREAM, list(SUBJECTS))


async def publish(bus: NatsBus, subject: str, payload: bytes, msg_id: str) -> bool:
    """Store one message with a JetStream ack; True when the server saw ``msg_id`` before.

    Sent with ``publish_async`` (a plain publish with a reply inbox: no request round of
    its own) and its ack awaited; raises ``RetryableError`` when the server did not ack
    (timeout, no responders, a disconnect): the caller's retrier tries again with the same
    id, which cannot double it.
    """
    try:
        fut = await bus.jetstream.publish_async(
            subject, payload, stream=STREAM, headers={MSG_ID: msg_id}
        )
        ack = await asyncio.wait_for(fut, ACK_WAIT_S)
    except nats.js.errors.APIError as exc:
        full = store_full_error(exc.err_code, exc.description, f"publishing to {subject}")
        if full is not None:  # a full store is not cured by sending again
            raise full from exc
        raise RetryableError(f"publish to {subject} failed: {type(exc).__name__}: {exc}") from exc
    except (nats.errors.Error, nats.js.errors.Error, TimeoutError, OSError) as exc:
        raise RetryableError(f"publish to {subject} failed: {type(exc).__name__}: {exc}") from exc
    return bool(ack.duplicate)


async def push_consumer(
    bus: NatsBus,
    name: str,
    subject: str,
    cb: Callable[[Any], Awaitable[None]],
    *,
    ack_wait_s: float = 30.0,
) -> Any:
    """Bind (creating if needed) durable push consumer ``name`` on ``subject`` of ``ORDERS``:
    ``cb`` gets each message as it is stored, one at a time, in order.

    Acks are cumulative (``AckPolicy.ALL``): acking a message acks every one before it. A
    message not acked within ``ack_wait_s`` (a consumer that died) comes again.
    """
    config = api.ConsumerConfig(
        ack_policy=api.AckPolicy.ALL,
        deliver_policy=api.DeliverPolicy.ALL,
        ack_wait=ack_wait_s,
        max_ack_pending=50_000,
    )
    return await bus.jetstream.subscribe(
        subject, durable=name, stream=STREAM, cb=cb, manual_ack=True, config=config,
        pending_msgs_limit=-1,
    )  # fmt: skip


class GatewayBroker:
    """A model's ``Broker`` through the execution gateway (see the module docstring)."""

    def __init__(
        self,
        bus: NatsBus,
        model: str,
        *,
        backoff: Backoff | None = None,
        send_deadline_s: float = SEND_DEADLINE_S,
        ack_wait_s: float = 30.0,
    ) -> None:
        self.bus = bus
        self.model = model
        self._subject = intent_subject(model)
        self._backoff = backoff or Backoff(base=0.05, cap=2.0)
        self._deadline_s = send_deadline_s
        self._ack_wait_s = ack_wait_s
        self._outbox: asyncio.Queue[OrderIntent] = asyncio.Queue()
        self._inbox: list[tuple[int, OrderReport]] = []
        self._closed: list[OrderAck] = []
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._unacked: dict[int, Any] = {}
        self._handed = 0
        self._checkpoint = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._psub: Any = None
        self._wake: Callable[[], None] | None = None
        self.sent = 0
        self.duplicates = 0
        self.reports = 0

    # -- Broker: restart --------------------------------------------------------------------

    async def restore(
        self, pending: Iterable[tuple[str, OrderIntent]], positions: Mapping[str, int], seq: int
    ) -> None:
        """Bind the report consumer, re-send every pending intent (the gateway drops ids it
        already has), and skip reports at or before ``seq`` (the last committed checkpoint)."""
        del positions  # the gateway holds the account; the runner's book is its own
        self._checkpoint = self._handed = seq
        await ensure_orders_stream(self.bus)
        self._psub = await push_consumer(
            self.bus,
            f"report-{safe_token(self.model)}",
            report_subject(self.model),
            self._on_report,
            ack_wait_s=self._ack_wait_s,
        )
        for _, intent in pending:
            self._outbox.put_nowait(intent)
        self._tasks = [asyncio.create_task(self._send_loop())]

    def checkpoint(self) -> int:
        """The last report handed to the runner (commit it with the runner's state)."""
        return self._handed

    async def committed(self, seq: int) -> None:
        """The runner state covering reports up to ``seq`` is durable: ack them."""
        if seq <= self._checkpoint:
            return
        msg = self._unacked.get(seq)
        self._checkpoint = seq
        for s in [s for s in self._unacked if s <= seq]:
            del self._unacked[s]
        if msg is not None:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await msg.ack()

    # -- Broker: orders ---------------------------------------------------------------------

    async def submit(self, intent: OrderIntent) -> OrderAck:
        """Queue ``intent`` for the gateway; its fills and refusal come back as reports."""
        if (refused := bad_qty(intent, intent.client_order_id)) is not None:
            return refused
        self._outbox.put_nowait(intent)
        return OrderAck(
            client_order_id=intent.client_order_id, broker_order_id="", status=OrderStatus.ACCEPTED
        )

    def on_reports(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` whenever reports arrive."""
        self._wake = wake

    async def on_bar(self, bar: Bar | None) -> list[Fill]:
        """The fills reported since the last call (the gateway's fills need no bar)."""
        del bar
        if not self._inbox:
            return []
        fills: list[Fill] = []
        for seq, report in self._inbox:
            if report.kind == "fill" and report.fill is not None:
                fills.append(report.fill)
            elif report.kind == "closed":
                self._closed.append(OrderAck.rejected(report.client_order_id, report.reason))
            self._handed = max(self._handed, seq)
        self._inbox.clear()
        return fills

    def drain_closed(self) -> list[OrderAck]:
        """Orders the gateway ended without filling them fully, since the last call."""
        closed, self._closed = self._closed, []
        return closed

    async def close(self) -> None:
        """Stop the sender and the reader (reports not yet committed are redelivered)."""
        await cancel_and_wait(self._tasks)
        if self._psub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._psub.unsubscribe()

    # -- tasks ------------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        while True:
            await self._send(await self._outbox.get())

    async def _send(self, intent: OrderIntent) -> None:
        """Store one intent in ``ORDERS`` (retried with backoff; given up after a deadline)."""
        cid = intent.client_order_id
        subject, payload = self._subject, encode(intent)

        def on_retry(n: int, exc: BaseException, delay: float) -> None:
            log.warning(
                "intent %s not stored yet (try %d): %s",
                cid,
                n,
                exc,
                extra={"fields": {"model": self.model}},
            )

        try:
            dup = await retry_async(
                lambda: publish(self.bus, subject, payload, cid),
                backoff=Backoff(self._backoff.base, self._backoff.factor, self._backoff.cap),
                deadline_s=self._deadline_s,
                on_retry=on_retry,
            )
        except RetryableError as exc:
            log.error("intent %s given up: %s", cid, exc, extra={"fields": {"model": self.model}})
            self._closed.append(
                OrderAck.rejected(
                    cid, f"the gateway's order channel did not take the intent: {exc}"
                )
            )
            if self._wake is not None:
                self._wake()
            return
        self.sent += 1
        self.duplicates += dup

    async def _on_report(self, msg: Any) -> None:
        seq = msg.metadata.sequence.stream
        if seq <= self._checkpoint:  # covered by a commit whose ack was lost: ack it now
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await msg.ack()
            return
        try:
            report = decode_report(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("malformed order report skipped: %s", exc,
                      extra={"fields": {"model": self.model}})  # fmt: skip
            return
        self._unacked[seq] = msg
        seen = self._seen
        if report.report_id in seen:
            return
        seen[report.report_id] = None
        if len(seen) > SEEN_REPORTS:
            seen.popitem(last=False)
        self.reports += 1
        self._inbox.append((seq, report))
        if self._wake is not None:
            self._wake()


if TYPE_CHECKING:  # mypy proves GatewayBroker satisfies the protocol

    def _is_broker(b: GatewayBroker) -> Broker:
        return b
