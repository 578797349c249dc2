"""AlpacaHistoricalBars against the fake server's bars route: query, pages, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from algostack.adapters.alpaca.historical import AlpacaHistoricalBars, parse_bars_page
from algostack.core.market import NS_PER_MIN, Bar
from algostack.errors import AuthError, ConfigError, DataError, FatalError, RetryableError
from algostack.testing.fake_alpaca import FakeAlpacaServer

T0 = 1_704_207_600 * 10**9  # 2024-01-02 15:00 UTC


def bar(i: int, symbol: str) -> Bar:
    return Bar(
        symbol=symbol,
        ts=T0 + i * NS_PER_MIN,
        open=10.0 + i,
        high=11.0 + i,
        low=9.0 + i,
        close=10.5 + i,
        volume=1000.0 + i,
        trade_count=7,
        vwap=10.25 + i,
    )


@pytest.fixture
async def server() -> AsyncIterator[FakeAlpacaServer]:
    async with FakeAlpacaServer(key_id="k", secret_key="s") as srv:
        srv.add_history(bar(i, s) for i in range(30) for s in ("AAPL", "MSFT", "IBM"))
        yield srv


async def test_minute_bars_paginates_and_returns_half_open_range(
    server: FakeAlpacaServer,
) -> None:
    async with AlpacaHistoricalBars("k", "s", base_url=server.rest_url, page_limit=7) as rest:
        bars = await rest.minute_bars(["AAPL", "MSFT"], T0 + 5 * NS_PER_MIN, T0 + 15 * NS_PER_MIN)
    assert bars == sorted(
        (bar(i, s) for i in range(5, 15) for s in ("AAPL", "MSFT")), key=lambda b: (b.ts, b.symbol)
    )
    assert server.rest_requests == 3  # 20 bars at 7 per page
    first = server.rest_queries[0]
    assert first["timeframe"] == "1Min" and first["feed"] == "iex" and first["limit"] == "7"
    assert first["symbols"] == "AAPL,MSFT"
    assert "page_token" not in first and "page_token" in server.rest_queries[1]


async def test_minute_bars_empty_range_makes_no_request(server: FakeAlpacaServer) -> None:
    async with AlpacaHistoricalBars("k", "s", base_url=server.rest_url) as rest:
        assert await rest.minute_bars(["AAPL"], T0, T0) == []
    assert server.rest_requests == 0


async def test_minute_bars_429_is_retryable_with_retry_after(server: FakeAlpacaServer) -> None:
    server.fail_next_rest(429, retry_after=7)
    async with AlpacaHistoricalBars("k", "s", base_url=server.rest_url) as rest:
        with pytest.raises(RetryableError) as info:
            await rest.minute_bars(["AAPL"], T0, T0 + NS_PER_MIN)
        assert info.value.retry_after == 7.0
        # The next call succeeds: nothing was lost.
        assert await rest.minute_bars(["AAPL"], T0, T0 + NS_PER_MIN) == [bar(0, "AAPL")]


async def test_minute_bars_5xx_is_retryable(server: FakeAlpacaServer) -> None:
    server.fail_next_rest(503)
    async with AlpacaHistoricalBars("k", "s", base_url=server.rest_url) as rest:
        with pytest.raises(RetryableError, match="503"):
            await rest.minute_bars(["AAPL"], T0, T0 + NS_PER_MIN)


async def test_minute_bars_wrong_keys_is_auth_error(server: FakeAlpacaServer) -> None:
    async with AlpacaHistoricalBars("k", "nope", base_url=server.rest_url) as rest:
        with pytest.raises(AuthError, match="APCA_API_KEY_ID"):
            await rest.minute_bars(["AAPL"], T0, T0 + NS_PER_MIN)


async def test_minute_bars_rejected_request_is_fatal(server: FakeAlpacaServer) -> None:
    server.fail_next_rest(422)
    async with AlpacaHistoricalBars("k", "s", base_url=server.rest_url) as rest:
        with pytest.raises(FatalError, match="422"):
            await rest.minute_bars(["AAPL"], T0, T0 + NS_PER_MIN)


async def test_minute_bars_unreachable_server_is_retryable() -> None:
    async with AlpacaHistoricalBars("k", "s", base_url="http://127.0.0.1:9", timeout_s=2) as rest:
        with pytest.raises(RetryableError):
            await rest.minute_bars(["AAPL"], T0, T0 + NS_PER_MIN)


def test_parse_bars_page_malformed_reply_is_data_error() -> None:
    with pytest.raises(DataError, match="malformed historical bars reply"):
        parse_bars_page(b'{"bars": {"AAPL": [{"t": "noon", "o": 1}]}}')


def test_parse_bars_page_null_bars_is_empty() -> None:
    assert parse_bars_page(b'{"bars": null, "next_page_token": null}') == ([], None)


def test_historical_missing_keys_refused() -> None:
    with pytest.raises(ConfigError, match="APCA_API_SECRET_KEY"):
        AlpacaHistoricalBars("k", "")
