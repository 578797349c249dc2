"""DashboardFeed against a real nats-server: stream fallback, bad payloads, gateway status, kill
switch, stop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from dashboard_wait import until

from algostack.adapters.nats.bus import NatsBus
from algostack.adapters.nats.server import EmbeddedNats
from algostack.core import codec, naming
from algostack.core.market import NS_PER_MIN, Bar
from algostack.errors import RetryableError
from algostack.services.dashboard.demo import DemoDesk
from algostack.services.dashboard.feed import DashboardFeed, FeedConfig
from algostack.services.gateway.service import status_subject


@pytest.fixture
async def server() -> AsyncIterator[EmbeddedNats]:
    srv = EmbeddedNats().start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def bus(server: EmbeddedNats) -> AsyncIterator[NatsBus]:
    b = await NatsBus.connect(
        server.url, user=server.user, password=server.password, connect_timeout_s=10
    )
    try:
        yield b
    finally:
        await b.close(2.0)


def make_feed(server: EmbeddedNats, **kw: object) -> DashboardFeed:
    cfg = FeedConfig(
        nats_url=server.url,
        user=server.user,
        password=server.password,
        stream_retry_s=0.1,
        **kw,  # type: ignore[arg-type]
    )
    return DashboardFeed(cfg)


def bar(minute: int, close: float = 100.0) -> Bar:
    return Bar(symbol="AAPL", ts=minute * NS_PER_MIN, open=close, high=close, low=close,
               close=close, volume=1.0)  # fmt: skip


async def test_feed_without_stream_reads_core_then_switches_to_jetstream(
    server: EmbeddedNats, bus: NatsBus
) -> None:
    feed = make_feed(server).start()
    try:
        assert await asyncio.to_thread(feed.wait_live, 10)
        assert feed.market_mode == "core"
        await bus.publish(codec.subject(bar(1)), codec.encode(bar(1)))  # no stream: core only
        await bus.flush()
        await until(feed, lambda s: s.symbols and s.symbols[0].bars == 1)
        await bus.ensure_market_stream()
        for _ in range(100):
            if feed.market_mode == "jetstream":
                break
            await asyncio.sleep(0.05)
        assert feed.market_mode == "jetstream"
        await bus.publish_events([bar(1), bar(2), bar(3)])  # minute 1 again: not a new bar
        await bus.flush_acks(5)
        snap = await until(feed, lambda s: s.symbols[0].bars == 3)
        assert [t for t, _ in snap.prices["AAPL"]] == [NS_PER_MIN, 2 * NS_PER_MIN, 3 * NS_PER_MIN]
    finally:
        await asyncio.to_thread(feed.stop)


async def test_feed_malformed_payloads_are_counted_and_skipped(
    server: EmbeddedNats, bus: NatsBus
) -> None:
    await bus.ensure_market_stream()
    feed = make_feed(server).start()
    try:
        assert await asyncio.to_thread(feed.wait_live, 10)
        await bus.publish(naming.trader_subject("local", "m1", "heartbeat"), b"\xc1garbage")
        await bus.publish(naming.trader_subject("local", "m1", "fill"), b"\x93\x01\x02\x03")
        await bus.publish("market.bars.AAPL", b"not msgpack")
        await bus.flush()
        demo = DemoDesk(bus, symbols=("AAPL",))
        await demo.publish_trader_events(time.time_ns())
        snap = await until(feed, lambda s: s.ignored == 3 and "onnx-AAPL-model_1" in s.models)
        assert snap.models["onnx-AAPL-model_1"].row.state == "ACTIVE"
        assert "m1" not in snap.models  # nothing half-applied from the bad payloads
    finally:
        await asyncio.to_thread(feed.stop)


async def test_feed_gateway_status_reaches_the_account_panel(
    server: EmbeddedNats, bus: NatsBus
) -> None:
    await bus.ensure_market_stream()
    feed = make_feed(server).start()
    try:
        assert await asyncio.to_thread(feed.wait_live, 10)
        await bus.publish(status_subject("local"), b"\xc1garbage")
        await bus.publish(status_subject("other-env"), b"not for this dashboard")
        demo = DemoDesk(bus)
        await demo.publish_desk_status(time.time_ns())
        snap = await until(feed, lambda s: s.account is not None)
        view = snap.account
        assert view is not None and snap.ignored == 1
        assert view.stream == "OK" and view.venue == "simulator"
        assert view.day_trades_left is None
        rows = {r.symbol: r for r in view.rows}
        assert dict(rows["AAPL"].books) == {"onnx-AAPL-model_1": 10} and rows["AAPL"].account == 10
        assert rows["MSFT"].halted and "account holds 25" in rows["MSFT"].halt_reason
        assert rows["TSLA"].foreign
    finally:
        await asyncio.to_thread(feed.stop)


async def test_feed_kill_before_connected_raises_and_says_not_sent() -> None:
    feed = DashboardFeed(FeedConfig(nats_url="nats://127.0.0.1:1")).start()
    try:
        with pytest.raises(RetryableError, match="NOT sent"):
            feed.kill("*", "test")
    finally:
        await asyncio.to_thread(feed.stop)
    assert feed._thread is not None and not feed._thread.is_alive()


async def test_feed_missing_bucket_keeps_feed_live(
    server: EmbeddedNats, bus: NatsBus, tmp_path: Path
) -> None:
    await bus.ensure_market_stream()
    feed = make_feed(server, bucket=str(tmp_path / "missing"), journal_every_s=0.05).start()
    try:
        assert await asyncio.to_thread(feed.wait_live, 10)
        await asyncio.sleep(0.3)
        await bus.publish_events([bar(5)])
        await bus.flush_acks(5)
        snap = await until(feed, lambda s: bool(s.symbols))
        assert snap.feed_status == "live" and feed.journal_scans == 0
    finally:
        await asyncio.to_thread(feed.stop)


async def test_feed_wrong_password_reports_error_status(server: EmbeddedNats) -> None:
    feed = DashboardFeed(
        FeedConfig(nats_url=server.url, user=server.user, password="wrong", connect_timeout_s=5)
    ).start()
    try:
        snap = await until(feed, lambda s: s.feed_status == "error")
        assert "refused the login" in snap.feed_error
        assert "wrong" not in snap.feed_error
    finally:
        await asyncio.to_thread(feed.stop)
