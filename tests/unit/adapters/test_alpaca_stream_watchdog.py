"""AlpacaStreamSource silence watchdog: only a waiting ``recv`` is timed, never the consumer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from algostack.adapters.alpaca.stream import AlpacaStreamSource
from algostack.core.market import Trade
from algostack.testing.fake_alpaca import FakeAlpacaServer

KEY, SECRET = "test-key", "test-secret"
T0 = 1_704_207_600 * 10**9  # 2024-01-02 15:00 UTC, a session minute


def trade(i: int) -> Trade:
    return Trade(symbol="AAPL", ts=T0 + i, price=10.0, size=1.0, trade_id=i)


async def no_sleep(_delay: float) -> None:
    await asyncio.sleep(0)


@pytest.fixture
async def server() -> AsyncIterator[FakeAlpacaServer]:
    async with FakeAlpacaServer(key_id=KEY, secret_key=SECRET) as srv:
        yield srv


def source_for(srv: FakeAlpacaServer, timeout_s: float) -> AlpacaStreamSource:
    return AlpacaStreamSource(
        ["AAPL"],
        key_id=KEY,
        secret_key=SECRET,
        url=srv.ws_url,
        silence_timeout_s=timeout_s,
        market_open=lambda _at: True,
        sleep=no_sleep,
    )


async def test_stream_watchdog_slow_consumer_not_counted_as_silence(
    server: FakeAlpacaServer,
) -> None:
    source = source_for(server, 0.05)
    got: list[int] = []
    stream = source.stream()
    try:
        first = asyncio.ensure_future(anext(stream))  # connects; each next runs in a new task
        await server.wait_subscribed()
        await server.publish([trade(1)])
        batch = await asyncio.wait_for(first, 5)
        got += [e.trade_id for e in batch if isinstance(e, Trade)]
        # The consumer holds the batch for 6 silence periods while frames queue up.
        await server.publish([trade(2)])
        await server.publish([trade(3)])
        await asyncio.sleep(0.3)
        while len(got) < 3:
            batch = await asyncio.wait_for(anext(stream), 5)
            got += [e.trade_id for e in batch if isinstance(e, Trade)]
    finally:
        await source.aclose()
        await stream.aclose()
    assert got == [1, 2, 3]
    assert source.silences == 0 and server.connections == 1


async def test_stream_watchdog_outside_cancel_propagates_not_swallowed(
    server: FakeAlpacaServer,
) -> None:
    source = source_for(server, 0.05)

    async def drain() -> None:
        async for _batch in source.stream():
            pass

    task = asyncio.create_task(drain())
    await server.wait_subscribed()
    await asyncio.sleep(0.12)  # the watchdog has re-armed and cancelled recv at least once
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    await source.aclose()
