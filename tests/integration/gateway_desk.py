"""The gateway test harness: intents and reports through the real order channel."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from algostack.adapters.nats import order_channel as orders
from algostack.adapters.nats.bus import NatsBus
from algostack.core.backoff import Backoff
from algostack.core.events import Heartbeat, encode_event
from algostack.core.market import NS_PER_MIN, Bar, datetime_to_ts
from algostack.core.naming import trader_subject
from algostack.core.orders import Fill, OrderAck, OrderIntent, Side
from algostack.services.gateway.service import GatewayService

T0 = datetime_to_ts(datetime(2024, 3, 5, 14, 30, tzinfo=UTC))


def intent(model: str, symbol: str, side: str, qty: int, minute: int, **kw: str) -> OrderIntent:
    return OrderIntent(
        model=model, symbol=symbol, side=Side(side), qty=qty, bar_ts=T0 + minute * NS_PER_MIN,
        price=100.0,
        **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def bar(symbol: str, minute: int, price: float) -> Bar:
    return Bar(
        symbol=symbol, ts=T0 + minute * NS_PER_MIN, open=price, high=price + 0.5,
        low=price - 0.5, close=price, volume=1000.0,
    )  # fmt: skip


async def wait_for(cond: Callable[[], bool], limit_s: float = 10.0, what: str = "") -> None:
    deadline = asyncio.get_running_loop().time() + limit_s
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, f"not in time: {what}"
        await asyncio.sleep(0.02)


class Desk:
    """A gateway and the traders' ends of the order channel, as a test drives them."""

    def __init__(self, bus: NatsBus, gateway: GatewayService) -> None:
        self.bus = bus
        self.gateway = gateway
        self.brokers: dict[str, orders.GatewayBroker] = {}
        self.fills: dict[str, list[Fill]] = {}
        self.closed: dict[str, list[OrderAck]] = {}
        self._heartbeats: list[tuple[str, bytes]] = []
        self._beat: asyncio.Task[None] | None = None
        self._heartbeats: list[tuple[str, bytes]] = []
        self._beat: asyncio.Task[None] | None = None

    async def connect(self, key: str, symbol: str) -> None:
        """A trader of ``key`` on ``symbol``: its order channel, and heartbeats as it sends."""
        hb = Heartbeat(
            model=key, ts=0, symbol=symbol, state="ACTIVE", position=0, last_bar_ts=0, bars=0,
            decisions=0, orders=0, latency_p50_us=0.0, latency_p99_us=0.0, warmed_up=True,
        )  # fmt: skip
        self._heartbeats.append((trader_subject("local", key, "heartbeat"), encode_event(hb)))
        if self._beat is None:
            self._beat = asyncio.create_task(self._beat_loop())
        broker = orders.GatewayBroker(self.bus, key, backoff=Backoff(0.01, 2.0, 0.1))
        await broker.restore([], {}, 0)
        broker.on_reports(lambda: None)
        self.brokers[key] = broker
        self.fills[key], self.closed[key] = [], []

    async def _beat_loop(self) -> None:
        while True:
            for subject, payload in self._heartbeats:
                await self.bus.publish(subject, payload)
            await asyncio.sleep(0.2)

    async def model(self, key: str, symbol: str) -> None:
        """``connect``, then wait until the gateway knows the model."""
        await self.connect(key, symbol)
        await wait_for(lambda: self.gateway.models.get(key) == symbol, what="heartbeat")

    async def send(self, *intents: OrderIntent) -> None:
        for it in intents:
            await self.brokers[it.model].submit(it)

    async def pump(self) -> None:
        for key, broker in self.brokers.items():
            self.fills[key] += await broker.on_bar(None)
            self.closed[key] += broker.drain_closed()

    def filled(self, key: str) -> int:
        return sum(f.signed_qty for f in self.fills[key])

    async def until(self, cond: Callable[[], bool], limit_s: float = 10.0, what: str = "") -> None:
        deadline = asyncio.get_running_loop().time() + limit_s
        while True:
            await self.pump()
            if cond():
                return
            assert asyncio.get_running_loop().time() < deadline, f"not in time: {what}"
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
        for broker in self.brokers.values():
            await broker.close()
