"""AlpacaStreamSource end to end against FakeAlpacaServer: socket and REST both real.

A forced disconnect or a silent socket mid-stream leads to reconnect, resubscribe and a
backfill through the real ``AlpacaHistoricalBars`` client (paginated), and every bar is
yielded exactly once. Reconnect waits go through a gate the test opens, never a real sleep.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from algostack.adapters.alpaca.historical import AlpacaHistoricalBars
from algostack.adapters.alpaca.stream import AlpacaStreamSource
from algostack.core.market import NS_PER_MIN, Bar, MarketEvent, Trade
from algostack.testing.fake_alpaca import FakeAlpacaServer

KEY, SECRET = "itest-key", "itest-secret"
T0 = 1_704_207_600 * 10**9  # 2024-01-02 15:00 UTC
SYMBOLS = ("AAPL", "BRK.B", "MSFT")


def minute(i: int) -> list[MarketEvent]:
    """Three bars of minute ``i`` and a trade per symbol inside that minute."""
    out: list[MarketEvent] = []
    for k, s in enumerate(SYMBOLS):
        out.append(
            Trade(
                symbol=s,
                ts=T0 + i * NS_PER_MIN + 17 + k,
                price=10.0 + i,
                size=1.0,
                trade_id=i * 10 + k,
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
                vwap=10.2 + i,
            )
        )
    return out


class Gate:
    """An injected sleep that records delays and waits until the test opens the gate."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.open = asyncio.Event()
        self.open.set()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await self.open.wait()


class Harness:
    def __init__(self, source: AlpacaStreamSource) -> None:
        self.source = source
        self.events: list[MarketEvent] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for batch in self.source.stream():
            self.events.extend(batch)

    async def until(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                if self.task.done():
                    await self.task
                await asyncio.sleep(0.005)

    def bars(self) -> list[tuple[str, int]]:
        return [(e.symbol, e.ts) for e in self.events if type(e) is Bar]

    async def stop(self) -> None:
        await self.source.aclose()
        async with asyncio.timeout(5):
            await self.task


@pytest.fixture
async def server() -> AsyncIterator[FakeAlpacaServer]:
    async with FakeAlpacaServer(key_id=KEY, secret_key=SECRET) as srv:
        yield srv


def build(
    server: FakeAlpacaServer, gate: Gate, clock: list[int], **kwargs: object
) -> tuple[AlpacaStreamSource, AlpacaHistoricalBars]:
    rest = AlpacaHistoricalBars(KEY, SECRET, base_url=server.rest_url, page_limit=4)
    source = AlpacaStreamSource(
        SYMBOLS,
        key_id=KEY,
        secret_key=SECRET,
        url=server.ws_url,
        historical=rest,
        sleep=gate,
        now=lambda: datetime.fromtimestamp(clock[0] / 1e9, UTC),
        market_open=lambda _at: True,
        **kwargs,  # type: ignore[arg-type]
    )
    return source, rest


@pytest.mark.parametrize("use_msgpack", [True, False], ids=["msgpack", "json"])
async def test_forced_disconnect_reconnects_resubscribes_and_backfills_once(
    server: FakeAlpacaServer, use_msgpack: bool
) -> None:
    gate, clock = Gate(), [T0 + 3 * NS_PER_MIN]
    source, rest = build(server, gate, clock, use_msgpack=use_msgpack)
    h = Harness(source)
    await server.wait_subscribed()
    await server.publish(minute(0) + minute(1) + minute(2), batch=5)
    await h.until(lambda: len(h.bars()) == 9)

    gate.open.clear()
    assert server.drop_connections() == 1
    await h.until(lambda: len(gate.delays) == 1)
    # Minutes 3..5 happen while the client is away; the server records them as history.
    await server.publish(minute(3) + minute(4) + minute(5))
    clock[0] = T0 + 6 * NS_PER_MIN + 250_000_000
    gate.open.set()

    await server.wait_subscribed(2)
    await h.until(lambda: len(h.bars()) == 18)
    # Live again: minute 5 is re-sent (already backfilled), minute 6 is new.
    await server.publish(minute(5) + minute(6))
    await h.until(lambda: len(h.bars()) == 21)

    bars = h.bars()
    assert len(set(bars)) == 21
    assert sorted(bars) == sorted((s, T0 + i * NS_PER_MIN) for i in range(7) for s in SYMBOLS)
    for s in SYMBOLS:
        mine = [ts for sym, ts in bars if sym == s]
        assert mine == sorted(mine)
    assert server.connections == 2 and server.subscriptions == 2
    assert source.stats.backfilled == 9 and source.stats.reconnects == 1
    assert source.duplicates == 3
    # 9 gap bars at 4 per page: 3 pages, one request each.
    assert server.rest_requests == 3
    assert server.rest_queries[0]["start"] == "2024-01-02T15:02:00.000000001Z"
    await h.stop()
    await rest.aclose()


async def test_silent_socket_while_open_reconnects_and_backfills(server: FakeAlpacaServer) -> None:
    gate, clock = Gate(), [T0 + NS_PER_MIN]
    source, rest = build(server, gate, clock, silence_timeout_s=0.2)
    h = Harness(source)
    await server.wait_subscribed()
    await server.publish(minute(0))
    await h.until(lambda: len(h.bars()) == 3)
    server.stall()
    await server.publish(minute(1))  # swallowed by the stalled socket, kept as history
    clock[0] = T0 + 2 * NS_PER_MIN + 1
    await server.wait_subscribed(2)
    await h.until(lambda: len(h.bars()) == 6)
    assert source.silences == 1 and source.stats.backfilled == 3
    assert sorted(h.bars()) == sorted((s, T0 + i * NS_PER_MIN) for i in range(2) for s in SYMBOLS)
    await h.stop()
    await rest.aclose()


async def test_connection_limit_storm_waits_90s_each_time(server: FakeAlpacaServer) -> None:
    server.fail_next_auth(406, times=3)
    gate, clock = Gate(), [T0]
    source, rest = build(server, gate, clock)
    h = Harness(source)
    await server.wait_subscribed()
    assert len(gate.delays) == 3 and min(gate.delays) >= 90.0
    assert server.connections == 4 and server.auths == 1
    await server.publish(minute(0))
    await h.until(lambda: len(h.bars()) == 3)
    await h.stop()
    await rest.aclose()


async def test_large_batched_burst_arrives_complete_and_in_order(server: FakeAlpacaServer) -> None:
    gate, clock = Gate(), [T0]
    source, rest = build(server, gate, clock)
    h = Harness(source)
    await server.wait_subscribed()
    trades = [
        Trade(symbol=SYMBOLS[i % 3], ts=T0 + i, price=1.0 + i % 7, size=1.0, trade_id=i)
        for i in range(20_000)
    ]
    sent = await server.publish(trades, batch=500)
    await h.until(lambda: len(h.events) == 20_000)
    assert sent == 20_000 and h.events == trades
    assert source.stats.received == 20_000 and source.stats.malformed == 0
    await h.stop()
    await rest.aclose()
