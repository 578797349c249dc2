"""AlpacaStreamSource: validation, handshake, error-code policy, silence, backfill.

The socket side runs against ``FakeAlpacaServer`` on loopback; the REST side is a fake
``HistoricalBars``; sleeps are recorded, never slept.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from algostack.adapters.alpaca.stream import AlpacaStreamSource, feed_url
from algostack.config import AlpacaSettings
from algostack.core.market import NS_PER_MIN, Bar, MarketEvent, Trade
from algostack.errors import AuthError, ConfigError, RetryableError
from algostack.testing.fake_alpaca import FakeAlpacaServer

KEY, SECRET = "test-key", "test-secret"
T0 = 1_704_207_600 * 10**9  # 2024-01-02 15:00 UTC, a session minute


def bar(i: int, symbol: str = "AAPL", close: float = 1.5) -> Bar:
    return Bar(
        symbol=symbol,
        ts=T0 + i * NS_PER_MIN,
        open=1.0,
        high=2.0,
        low=0.5,
        close=close,
        volume=100.0,
    )


def trade(i: int, symbol: str = "AAPL") -> Trade:
    return Trade(symbol=symbol, ts=T0 + i, price=10.0, size=1.0, trade_id=i)


class FakeHistory:
    """Serves bars from a list and records the ranges asked for."""

    def __init__(self, bars: Sequence[Bar] = (), failures: Sequence[Exception] = ()) -> None:
        self.bars = list(bars)
        self.failures = list(failures)
        self.calls: list[tuple[tuple[str, ...], int, int]] = []

    async def minute_bars(self, symbols: Sequence[str], start_ns: int, end_ns: int) -> list[Bar]:
        self.calls.append((tuple(symbols), start_ns, end_ns))
        if self.failures:
            raise self.failures.pop(0)
        return [b for b in self.bars if b.symbol in symbols and start_ns <= b.ts < end_ns]


class Clock:
    """Wall clock for backfill and market hours, moved by hand."""

    def __init__(self, ns: int) -> None:
        self.ns = ns

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(self.ns / 1e9, UTC)


class Sleeps(list[float]):
    """Records every requested sleep and yields to the loop instead of sleeping."""

    async def __call__(self, delay: float) -> None:
        self.append(delay)
        await asyncio.sleep(0)


class Reader:
    """Drains ``source.stream()`` in a task into a flat list and a batch count."""

    def __init__(self, source: AlpacaStreamSource) -> None:
        self.source = source
        self.events: list[MarketEvent] = []
        self.batches = 0
        self.error: BaseException | None = None
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for batch in self.source.stream():
                self.batches += 1
                self.events.extend(batch)
        except BaseException as exc:
            self.error = exc
            raise

    async def until(self, predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                if self.task.done():
                    await self.task
                await asyncio.sleep(0.005)

    async def stop(self) -> None:
        await self.source.aclose()
        async with asyncio.timeout(5):
            await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
async def server() -> AsyncIterator[FakeAlpacaServer]:
    async with FakeAlpacaServer(key_id=KEY, secret_key=SECRET) as srv:
        yield srv


def make_source(
    srv: FakeAlpacaServer, symbols: Sequence[str] = ("AAPL",), **kwargs: object
) -> AlpacaStreamSource:
    kwargs.setdefault("sleep", Sleeps())
    kwargs.setdefault("market_open", lambda _at: True)
    return AlpacaStreamSource(
        symbols,
        key_id=KEY,
        secret_key=SECRET,
        url=srv.ws_url,
        **kwargs,  # type: ignore[arg-type]
    )


# --- validation, before any connection ---------------------------------------------------


@pytest.mark.parametrize(("key", "secret"), [("", "s"), ("k", ""), ("", "")])
def test_source_missing_keys_names_env_vars(key: str, secret: str) -> None:
    with pytest.raises(ConfigError, match="APCA_API_KEY_ID and APCA_API_SECRET_KEY"):
        AlpacaStreamSource(["AAPL"], key_id=key, secret_key=secret)


def test_from_settings_missing_secret_names_only_that_var() -> None:
    settings = AlpacaSettings(APCA_API_KEY_ID="k")
    with pytest.raises(ConfigError) as info:
        AlpacaStreamSource.from_settings(settings, ["AAPL"])
    assert "APCA_API_SECRET_KEY" in str(info.value)
    assert "APCA_API_KEY_ID" not in str(info.value)


def test_from_settings_missing_both_names_both_vars() -> None:
    with pytest.raises(ConfigError, match="APCA_API_KEY_ID and APCA_API_SECRET_KEY"):
        AlpacaStreamSource.from_settings(AlpacaSettings(), ["AAPL"])


async def test_from_settings_uses_feed_and_url_override() -> None:
    settings = AlpacaSettings(
        APCA_API_KEY_ID="k", APCA_API_SECRET_KEY="s", feed="sip", stream_url=None
    )
    src = AlpacaStreamSource.from_settings(settings, ["AAPL"])
    assert src.url == "wss://stream.data.alpaca.markets/v2/sip"
    await src.aclose()
    settings.stream_url = "ws://127.0.0.1:9/v2/iex"
    settings.key_id = SecretStr("k2")
    src = AlpacaStreamSource.from_settings(settings, ["AAPL"], historical=FakeHistory())
    assert src.url == "ws://127.0.0.1:9/v2/iex"
    await src.aclose()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"symbols": ["aapl"]}, "invalid symbol 'aapl'"),
        ({"symbols": []}, "no symbols"),
        ({"feed": "crypto"}, "unknown Alpaca feed 'crypto'"),
        ({"feed": "test", "symbols": ["AAPL"]}, "only carries FAKEPACA"),
        ({"channels": ["news"]}, "unknown channel 'news'"),
        ({"url": "http://example.com"}, "must start with ws://"),
        ({"silence_timeout_s": 0}, "must be positive"),
    ],
)
def test_source_bad_options_raise_config_error(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"symbols": ["AAPL"], "key_id": "k", "secret_key": "s"} | kwargs
    symbols = args.pop("symbols")
    with pytest.raises(ConfigError, match=match):
        AlpacaStreamSource(symbols, **args)  # type: ignore[arg-type]


def test_feed_url_every_feed_and_test_symbol() -> None:
    assert [feed_url(f) for f in ("iex", "sip", "delayed_sip", "test")] == [
        "wss://stream.data.alpaca.markets/v2/iex",
        "wss://stream.data.alpaca.markets/v2/sip",
        "wss://stream.data.alpaca.markets/v2/delayed_sip",
        "wss://stream.data.alpaca.markets/v2/test",
    ]
    src = AlpacaStreamSource(["FAKEPACA"], key_id="k", secret_key="s", feed="test")
    assert src.url.endswith("/v2/test")


# --- happy path --------------------------------------------------------------------------


@pytest.mark.parametrize("use_msgpack", [True, False])
async def test_stream_yields_one_batch_per_frame(
    server: FakeAlpacaServer, use_msgpack: bool
) -> None:
    src = make_source(server, ["AAPL", "MSFT"], use_msgpack=use_msgpack)
    reader = Reader(src)
    await server.wait_subscribed()
    events = [trade(i, "AAPL" if i % 2 else "MSFT") for i in range(250)]
    await server.publish(events, batch=100)
    await reader.until(lambda: len(reader.events) == 250)
    assert reader.events == events
    assert reader.batches == 3
    assert src.stats.received == 250
    content_type = server.client_headers[0].get("content-type")
    assert content_type == ("application/msgpack" if use_msgpack else None)
    await reader.stop()
    assert reader.task.done() and reader.error is None


async def test_stream_is_subscribed_only_after_the_subscription_reply(
    server: FakeAlpacaServer,
) -> None:
    # What the ingest's systemd readiness waits for (services.ingest.notify_when_subscribed).
    src = make_source(server, ["AAPL"])
    assert src.stats.subscribed is False
    reader = Reader(src)
    await server.wait_subscribed()
    await reader.until(lambda: src.stats.subscribed)
    await reader.stop()


async def test_stream_subscribes_only_configured_symbols(server: FakeAlpacaServer) -> None:
    src = make_source(server, ["AAPL"])
    reader = Reader(src)
    await server.wait_subscribed()
    await server.publish([trade(1, "MSFT"), trade(2, "AAPL")])
    await reader.until(lambda: len(reader.events) == 1)
    assert reader.events[0].symbol == "AAPL"
    await reader.stop()


# --- error codes -------------------------------------------------------------------------


@pytest.mark.parametrize("code", [401, 402, 409, 410, 411])
async def test_stream_fatal_auth_codes_end_with_clear_error(
    server: FakeAlpacaServer, code: int
) -> None:
    server.fail_next_auth(code)
    sleeps = Sleeps()
    src = make_source(server, sleep=sleeps)
    with pytest.raises((AuthError, ConfigError)) as info:
        async for _ in src.stream():
            pass
    assert f"error {code}" in str(info.value)
    assert server.connections == 1 and sleeps == []


async def test_stream_402_is_auth_error_naming_the_keys(server: FakeAlpacaServer) -> None:
    src = AlpacaStreamSource(["AAPL"], key_id=KEY, secret_key="wrong", url=server.ws_url)
    with pytest.raises(AuthError, match="APCA_API_KEY_ID / APCA_API_SECRET_KEY"):
        async for _ in src.stream():
            pass
    assert "wrong" not in (src.last_error or "")


async def test_stream_406_waits_at_least_90s_then_reconnects(server: FakeAlpacaServer) -> None:
    server.fail_next_auth(406)
    sleeps = Sleeps()
    reader = Reader(make_source(server, sleep=sleeps))
    await server.wait_subscribed()
    assert len(sleeps) == 1 and sleeps[0] >= 90.0
    assert server.connections == 2
    await server.publish([trade(1)])
    await reader.until(lambda: len(reader.events) == 1)
    assert reader.source.stats.reconnects == 1
    await reader.stop()


async def test_stream_407_mid_stream_reconnects_and_resubscribes(server: FakeAlpacaServer) -> None:
    sleeps = Sleeps()
    reader = Reader(make_source(server, sleep=sleeps))
    await server.wait_subscribed()
    await server.inject_error(407)
    await server.wait_subscribed(2)
    assert len(sleeps) == 1 and sleeps[0] < 90.0
    await server.publish([trade(7)])
    await reader.until(lambda: len(reader.events) == 1)
    assert reader.source.stats.reconnects == 1
    await reader.stop()


async def test_stream_403_mid_stream_is_ignored(server: FakeAlpacaServer) -> None:
    reader = Reader(make_source(server))
    await server.wait_subscribed()
    await server.inject_error(403)
    await server.publish([trade(3)])
    await reader.until(lambda: len(reader.events) == 1)
    assert server.connections == 1 and reader.source.stats.reconnects == 0
    await reader.stop()


async def test_stream_subscribe_error_410_is_config_error(server: FakeAlpacaServer) -> None:
    server.fail_next_subscribe(410)
    with pytest.raises(ConfigError, match="error 410"):
        async for _ in make_source(server).stream():
            pass


async def test_stream_backoff_grows_between_failed_attempts(server: FakeAlpacaServer) -> None:
    server.fail_next_auth(500, times=4)
    sleeps = Sleeps()
    reader = Reader(make_source(server, sleep=sleeps))
    await server.wait_subscribed()
    assert len(sleeps) == 4
    assert all(0 <= d <= cap for d, cap in zip(sleeps, [1, 2, 4, 8], strict=True))
    await reader.stop()


# --- malformed input, silence -----------------------------------------------------------


async def test_stream_malformed_frames_counted_flow_continues(server: FakeAlpacaServer) -> None:
    reader = Reader(make_source(server))
    await server.wait_subscribed()
    await server.send_raw(b"\xc1 not msgpack")
    await server.send_raw('[{"T":"zz"},{"T":"t","S":"AAPL"}]')
    await server.publish([trade(1), trade(2)])
    await reader.until(lambda: len(reader.events) == 2)
    assert reader.source.stats.malformed == 3
    assert server.connections == 1
    await reader.stop()


async def test_stream_silent_socket_while_open_reconnects(server: FakeAlpacaServer) -> None:
    reader = Reader(make_source(server, silence_timeout_s=0.1))
    await server.wait_subscribed()
    server.stall()
    await server.wait_subscribed(2)
    assert reader.source.silences >= 1
    await server.publish([trade(5)])
    await reader.until(lambda: len(reader.events) == 1)
    await reader.stop()


async def test_stream_silent_socket_while_closed_keeps_waiting(server: FakeAlpacaServer) -> None:
    reader = Reader(make_source(server, silence_timeout_s=0.05, market_open=lambda _at: False))
    await server.wait_subscribed()
    await asyncio.sleep(0.3)
    assert server.connections == 1 and reader.source.silences == 0
    await server.publish([trade(5)])
    await reader.until(lambda: len(reader.events) == 1)
    await reader.stop()


# --- reconnect + backfill ----------------------------------------------------------------


async def test_stream_drop_backfills_gap_exactly_once(server: FakeAlpacaServer) -> None:
    clock = Clock(T0 + 2 * NS_PER_MIN)
    gap = [bar(i, s) for i in (2, 3, 4) for s in ("AAPL", "MSFT")]
    history = FakeHistory([bar(i, s) for i in range(6) for s in ("AAPL", "MSFT")])
    reader = Reader(make_source(server, ["AAPL", "MSFT"], historical=history, now=clock))
    await server.wait_subscribed()
    await server.publish([bar(0, "AAPL"), bar(0, "MSFT"), bar(1, "AAPL"), bar(1, "MSFT")])
    await reader.until(lambda: len(reader.events) == 4)
    clock.ns = T0 + 5 * NS_PER_MIN + 123  # bars 2..4 ended while the socket was down
    server.drop_connections()
    await server.wait_subscribed(2)
    await reader.until(lambda: len(reader.events) == 10)
    # The live stream re-sends minute 4 and goes on with 5: 4 is dropped as a duplicate.
    await server.publish([bar(4, "AAPL"), bar(5, "AAPL"), bar(5, "MSFT")])
    await reader.until(lambda: len(reader.events) == 12)
    assert reader.events[4:10] == sorted(gap, key=lambda b: b.ts)
    keys = [(e.symbol, e.ts) for e in reader.events]
    assert len(keys) == len(set(keys)) == 12
    assert history.calls == [(("AAPL", "MSFT"), T0 + NS_PER_MIN + 1, T0 + 5 * NS_PER_MIN)]
    stats = reader.source.stats
    assert (stats.backfilled, stats.reconnects, reader.source.duplicates) == (6, 1, 1)
    assert stats.last_bar_ts == {"AAPL": T0 + 5 * NS_PER_MIN, "MSFT": T0 + 5 * NS_PER_MIN}
    await reader.stop()


async def test_stream_drops_a_bar_already_yielded_and_keeps_the_rest_in_order(
    server: FakeAlpacaServer,
) -> None:
    reader = Reader(make_source(server, ["AAPL", "MSFT"]))
    await server.wait_subscribed()
    await server.publish([bar(1, "AAPL"), bar(1, "MSFT")])
    await reader.until(lambda: len(reader.events) == 2)
    frame: list[MarketEvent] = [trade(2), bar(1, "AAPL"), trade(3), bar(2, "AAPL"), bar(0, "MSFT")]
    await server.publish(frame)
    await reader.until(lambda: len(reader.events) == 5)
    assert reader.events[2:] == [trade(2), trade(3), bar(2, "AAPL")]
    assert reader.source.duplicates == 2 and reader.source.stats.received == 5
    assert reader.source.stats.last_bar_ts == {"AAPL": T0 + 2 * NS_PER_MIN, "MSFT": T0 + NS_PER_MIN}
    await reader.stop()


async def test_stream_backfill_symbol_never_seen_starts_at_drop(server: FakeAlpacaServer) -> None:
    clock = Clock(T0 + 3 * NS_PER_MIN + 5)
    history = FakeHistory()
    reader = Reader(make_source(server, ["AAPL", "MSFT"], historical=history, now=clock))
    await server.wait_subscribed()
    await server.publish([bar(2, "AAPL")])
    await reader.until(lambda: len(reader.events) == 1)
    server.drop_connections()
    await server.wait_subscribed(2)
    await reader.until(lambda: len(history.calls) == 1)
    _syms, start, _end = history.calls[0]
    assert start == T0 + 2 * NS_PER_MIN  # MSFT: the minute before the drop
    await reader.stop()


async def test_stream_backfill_retries_then_gives_up_without_stopping(
    server: FakeAlpacaServer,
) -> None:
    clock = Clock(T0 + 5 * NS_PER_MIN)
    sleeps = Sleeps()
    history = FakeHistory(
        [bar(3)], failures=[RetryableError("429", retry_after=3.0)] + [RetryableError("down")] * 99
    )
    reader = Reader(
        make_source(
            server,
            historical=history,
            now=clock,
            sleep=sleeps,
            clock=lambda: len(sleeps) * 10.0,
            backfill_deadline_s=35.0,
        )
    )
    await server.wait_subscribed()
    await server.publish([bar(1)])
    await reader.until(lambda: len(reader.events) == 1)
    server.drop_connections()
    await reader.until(lambda: reader.source.backfill_failures == 1)
    assert 3.0 in sleeps[1:]  # the 429's retry_after was honoured
    await server.publish([bar(4)])
    await reader.until(lambda: len(reader.events) == 2)
    assert reader.source.stats.backfilled == 0
    await reader.stop()


async def test_aclose_during_backoff_ends_stream_promptly(server: FakeAlpacaServer) -> None:
    async def slow_sleep(_delay: float) -> None:
        await asyncio.sleep(3600)

    server.fail_next_auth(406)
    src = make_source(server, sleep=slow_sleep)
    reader = Reader(src)
    await server.wait_until(lambda: server.connections == 1 and server.subscribers == 0)
    await asyncio.sleep(0.05)
    await reader.stop()
    assert reader.task.done() and reader.error is None
