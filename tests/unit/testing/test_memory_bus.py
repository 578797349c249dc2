"""MemoryBus keeps the bus rules services rely on (the seam's in-memory side)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from algostack.adapters.nats.publisher import PublishError
from algostack.core import codec
from algostack.core.market import Bar
from algostack.core.market_bus import (
    MSG_ID_HEADER,
    PREV_HEADER,
    SEQ_HEADER,
    BusMessage,
    StreamMissingError,
    subject_matches,
)
from algostack.testing.memory_bus import MemoryBus

T0 = 1_710_509_400_000_000_000  # 2024-03-15 13:30 UTC


def bar(symbol: str, minute: int, close: float = 100.0) -> Bar:
    return Bar(
        symbol=symbol, ts=T0 + minute * 60_000_000_000, open=close, high=close, low=close,
        close=close, volume=10.0, trade_count=1, vwap=close,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("pattern", "subject", "ok"),
    [
        ("market.bars.AAPL", "market.bars.AAPL", True),
        ("market.bars.*", "market.bars.AAPL", True),
        ("market.*", "market.bars.AAPL", False),
        ("market.>", "market.bars.AAPL", True),
        ("market.>", "market", False),
        ("market.bars.AAPL", "market.bars.AAPL.x", False),
        ("*.bars.>", "market.bars.AAPL", True),
        ("market.trades.*", "market.bars.AAPL", False),
    ],
)
def test_subject_matches_like_the_server(pattern: str, subject: str, ok: bool) -> None:
    assert subject_matches(pattern, subject) is ok


async def test_events_are_refused_until_the_stream_exists_then_stored_once_with_headers() -> None:
    bus = MemoryBus(wall_ns=lambda: 42)
    await bus.publish_events([bar("AAPL", 0)])
    assert (bus.stats.sent, bus.stats.failed, bus.stats.published) == (1, 1, 0)
    await bus.ensure_market_stream()
    await bus.publish_events([bar("AAPL", 0), bar("AAPL", 1)], recv_ns=7)
    await bus.publish_events([bar("AAPL", 1)])  # a re-send: the id is known
    assert (bus.stats.published, bus.stats.duplicates) == (2, 1)
    assert bus.stream is not None
    first, second = (s.msg for s in bus.stream)
    assert first.headers is not None and second.headers is not None
    assert first.headers[MSG_ID_HEADER] == codec.msg_id(bar("AAPL", 0))
    assert (first.headers[SEQ_HEADER], second.headers[SEQ_HEADER]) == ("1:1", "1:2")
    assert PREV_HEADER not in first.headers and second.headers[PREV_HEADER] == "1"
    assert codec.decode(second.data) == bar("AAPL", 1)


async def test_ordered_subscribe_replays_then_follows_and_ignores_core_publishes() -> None:
    bus = MemoryBus()
    got: list[str] = []

    async def on_msg(m: BusMessage) -> None:
        got.append(f"{m.subject}#{m.stream_seq}")

    with pytest.raises(StreamMissingError):
        await bus.ordered_subscribe(["market.bars.>"], on_msg)
    await bus.ensure_market_stream()
    await bus.publish_events([bar("AAPL", 0), bar("MSFT", 0)])
    await bus.ordered_subscribe(["market.bars.MSFT"], on_msg)
    await bus.publish_events([bar("MSFT", 1), bar("AAPL", 1)])
    await bus.publish("market.bars.MSFT", b"core, not stored")
    await bus.flush()
    assert got == ["market.bars.MSFT#2", "market.bars.MSFT#3"]


async def test_core_subscribers_see_stored_and_core_messages_in_order_from_now_on() -> None:
    bus = MemoryBus()
    await bus.ensure_market_stream()
    await bus.publish_events([bar("AAPL", 0)])  # before the subscription: not seen
    got: list[str] = []

    async def on_msg(m: BusMessage) -> None:
        got.append(m.subject)
        if m.subject == "ping":
            await bus.publish("pong", b"")  # a callback may publish: flush waits for it

    sub = await bus.subscribe(">", on_msg)
    await bus.publish_events([bar("AAPL", 1)])
    await bus.publish("ping", b"")
    await bus.flush()
    assert got == ["market.bars.AAPL", "ping", "pong"]
    await sub.unsubscribe()
    await bus.publish("ping", b"")
    await bus.flush()
    assert got == ["market.bars.AAPL", "ping", "pong"]


async def test_a_failing_callback_is_raised_by_flush_and_the_subscription_goes_on() -> None:
    bus = MemoryBus()
    got: list[bytes] = []

    async def on_msg(m: BusMessage) -> None:
        if m.data == b"bad":
            raise ValueError("cannot handle bad")
        got.append(m.data)

    await bus.subscribe("x", on_msg)
    for data in (b"bad", b"good"):
        await bus.publish("x", data)
    with pytest.raises(ValueError, match="cannot handle bad"):
        await bus.flush()
    assert got == [b"good"]


async def test_gap_listeners_hear_a_disconnect_and_a_closed_bus_refuses_publishes() -> None:
    bus = MemoryBus()
    gaps: list[int] = []
    bus.on_gap(lambda: gaps.append(1))
    bus.disconnect()
    assert gaps == [1] and bus.stats.reconnects == 1
    await bus.ensure_market_stream()
    await bus.close()
    assert not bus.connected
    with pytest.raises(PublishError, match="closed"):
        await bus.publish_events([bar("AAPL", 0)])
    with pytest.raises(PublishError, match="closed"):
        await bus.publish("x", b"")


async def test_ordered_subscribe_from_a_start_time() -> None:
    now = [1_000]
    bus = MemoryBus(wall_ns=lambda: now[0])
    await bus.ensure_market_stream()
    await bus.publish_events([bar("AAPL", 0)])
    now[0] = 5_000_000_000
    await bus.publish_events([bar("AAPL", 1)])
    got: list[int] = []

    async def on_msg(m: BusMessage) -> None:
        got.append(m.stream_seq)

    start = datetime.fromtimestamp(2, UTC)
    await bus.ordered_subscribe(["market.>"], on_msg, start_time=start)
    await bus.flush()
    assert got == [2]
