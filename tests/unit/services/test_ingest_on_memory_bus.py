"""IngestService on the in-memory bus: its logic without a nats-server (integration tests
run it against the real one)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import date

import pytest

from algostack.adapters.nats.publisher import PublishError
from algostack.adapters.offline.synthetic import SyntheticSource
from algostack.core.market import Bar, MarketEvent
from algostack.core.market_bus import RECV_HEADER
from algostack.core.source import SourceStats
from algostack.services.ingest import IngestService
from algostack.testing.memory_bus import MemoryBus

DAY = date(2024, 3, 15)


async def test_every_event_lands_once_and_a_rerun_adds_only_duplicates() -> None:
    bus = MemoryBus()
    await bus.ensure_market_stream()
    src = SyntheticSource(["AAPL", "BRK.B"], day=DAY, seed=1)
    stats = await IngestService(src, bus).run()
    assert stats.received == src.stats.received == stats.published > 2 * 390
    assert bus.stream is not None
    subjects = [s.msg.subject for s in bus.stream]
    assert subjects.count("market.bars.AAPL") == subjects.count("market.bars.BRK_B") == 390
    again = await IngestService(SyntheticSource(["AAPL", "BRK.B"], day=DAY, seed=1), bus).run()
    assert again.duplicates == stats.received and again.published == stats.published
    assert len(bus.stream) == stats.received


class _Frames:
    """A source of fixed batches, each with its own receive time (as a websocket's frames)."""

    name = "frames"

    def __init__(self, batches: list[tuple[int, list[MarketEvent]]]) -> None:
        self.batches = batches
        self.stats = SourceStats()
        self.last_recv_ns = 0

    async def stream(self) -> AsyncIterator[Sequence[MarketEvent]]:
        for recv_ns, batch in self.batches:
            self.last_recv_ns = recv_ns
            yield batch


async def test_each_message_carries_its_frames_receive_time_and_empty_batches_are_skipped() -> None:
    day = SyntheticSource(["MSFT"], day=DAY, include_trades=False)
    bars = [e async for b in day.stream() for e in b if isinstance(e, Bar)][:3]
    bus = MemoryBus()
    await bus.ensure_market_stream()
    src = _Frames([(111, bars[:2]), (222, []), (333, bars[2:])])
    stats = await IngestService(src, bus).run()
    assert (stats.received, stats.batches) == (3, 2)
    assert bus.stream is not None
    assert [(s.msg.headers or {})[RECV_HEADER] for s in bus.stream] == ["111", "111", "333"]


async def test_without_the_stream_the_run_fails_naming_the_cause_not_silently() -> None:
    bus = MemoryBus()  # nobody created MARKET
    src = SyntheticSource(["AAPL"], day=DAY, seed=1, include_trades=False)
    service = IngestService(src, bus)
    with pytest.raises(PublishError, match=r"refused 390 message.*no JetStream stream"):
        await service.run()
    assert service.stats.received == 390 and bus.stats.failed == 390
