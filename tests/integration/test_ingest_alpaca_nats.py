"""Ingest from the fake Alpaca server through a real nats-server into the MARKET stream.

Bars land on ``market.bars.<SYMBOL>``; a forced disconnect mid-stream leads to reconnect,
resubscribe and a REST backfill, and the stream then holds every bar exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from algostack.adapters.alpaca.historical import AlpacaHistoricalBars
from algostack.adapters.alpaca.stream import AlpacaStreamSource
from algostack.adapters.nats.bus import NatsBus
from algostack.core import codec
from algostack.core.market import NS_PER_MIN, Bar, MarketEvent, Trade
from algostack.services import ingest
from algostack.testing.fake_alpaca import FakeAlpacaServer

KEY, SECRET = "ingest-key", "ingest-secret"
T0 = 1_704_207_600 * 10**9  # 2024-01-02 15:00 UTC
SYMBOLS = ("AAPL", "BRK.B", "MSFT")


def minute(i: int) -> list[MarketEvent]:
    out: list[MarketEvent] = []
    for k, s in enumerate(SYMBOLS):
        out.append(
            Trade(
                symbol=s, ts=T0 + i * NS_PER_MIN + 9 + k, price=10.0, size=1.0, trade_id=i * 10 + k
            )
        )
        out.append(
            Bar(
                symbol=s,
                ts=T0 + i * NS_PER_MIN,
                open=10.0 + i,
                high=11.0 + i,
                low=9.0 + i,
                close=10.5 + i,
                volume=100.0 * (i + 1),
                trade_count=i + 1,
            )
        )
    return out


class Gate:
    """Injected reconnect sleep: records the delay, waits until the test opens it."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.open = asyncio.Event()
        self.open.set()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await self.open.wait()


@pytest.fixture
async def fake() -> AsyncIterator[FakeAlpacaServer]:
    async with FakeAlpacaServer(key_id=KEY, secret_key=SECRET) as srv:
        yield srv


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.01)


async def stream_count(bus: NatsBus) -> int:
    return int((await bus.stream_info()).state.messages)


async def read_all(bus: NatsBus, subject: str) -> list[tuple[str, MarketEvent]]:
    msgs = await bus.read_history(subject, await bus.last_stream_seq())
    return [(m.subject, codec.decode(m.data)) for m in msgs]


async def test_ingest_alpaca_disconnect_backfills_every_bar_exactly_once(
    fake: FakeAlpacaServer, bus: NatsBus
) -> None:
    gate, clock = Gate(), [T0 + 3 * NS_PER_MIN]
    rest = AlpacaHistoricalBars(KEY, SECRET, base_url=fake.rest_url, page_limit=4)
    source = AlpacaStreamSource(
        SYMBOLS,
        key_id=KEY,
        secret_key=SECRET,
        url=fake.ws_url,
        historical=rest,
        sleep=gate,
        now=lambda: datetime.fromtimestamp(clock[0] / 1e9, UTC),
        market_open=lambda _at: True,
    )
    service = ingest.IngestService(source, bus)
    task = asyncio.create_task(service.run())
    try:
        await fake.wait_subscribed()
        await fake.publish(minute(0) + minute(1) + minute(2), batch=4)

        async def settle(expected: int) -> None:
            async with asyncio.timeout(10):
                while True:
                    if await stream_count(bus) >= expected:
                        return
                    await asyncio.sleep(0.02)

        await settle(18)  # 3 minutes x 3 symbols x (bar + trade)

        gate.open.clear()
        fake.drop_connections()
        await wait_for(lambda: len(gate.delays) == 1)
        await fake.publish(minute(3) + minute(4) + minute(5))  # missed live; kept as history
        clock[0] = T0 + 6 * NS_PER_MIN + 1
        gate.open.set()
        await fake.wait_subscribed(2)
        await wait_for(lambda: source.stats.backfilled == 9)
        # Live again: minute 5 re-sent (its bars already backfilled), minute 6 new.
        await fake.publish(minute(5) + minute(6))
        # 18 before the drop + 9 backfilled bars + trades of minutes 5, 6 + bars of minute 6.
        await settle(18 + 9 + 9)
        await asyncio.sleep(0.2)  # anything extra (a duplicate) would land now
        assert await stream_count(bus) == 36
    finally:
        service.stop()
        async with asyncio.timeout(10):
            await task
        await rest.aclose()

    bars = await read_all(bus, codec.subject_for("bars", "*"))
    assert len(bars) == 21
    keys = [(e.symbol, e.ts) for _subj, e in bars]
    assert len(set(keys)) == 21
    assert set(keys) == {(s, T0 + i * NS_PER_MIN) for i in range(7) for s in SYMBOLS}
    for subject, event in bars:
        assert subject == f"market.bars.{codec.subject_token(event.symbol)}"
        assert isinstance(event, Bar)
    assert {subj for subj, _ in bars} == {
        "market.bars.AAPL",
        "market.bars.BRK_B",
        "market.bars.MSFT",
    }
    assert source.stats.reconnects == 1 and fake.subscriptions == 2
