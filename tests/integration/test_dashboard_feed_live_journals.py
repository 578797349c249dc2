"""DashboardFeed with a live journal root (``algostack run --dashboard``), real nats-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from dashboard_wait import until

from algostack.adapters.nats.server import EmbeddedNats
from algostack.services.dashboard.aggregate import Snapshot
from algostack.services.dashboard.feed import DashboardFeed, FeedConfig

HEADER = "time,symbol,side,qty,price,client_order_id\n"


@pytest.fixture
async def server() -> AsyncIterator[EmbeddedNats]:
    srv = EmbeddedNats().start()
    try:
        yield srv
    finally:
        srv.stop()


def feed_for(server: EmbeddedNats, **kw: object) -> DashboardFeed:
    cfg = FeedConfig(nats_url=server.url, user=server.user, password=server.password,
                     journal_every_s=0.05, **kw)  # type: ignore[arg-type]  # fmt: skip
    return DashboardFeed(cfg)


def trades(snap: Snapshot, key: str) -> list[str]:
    detail = snap.models.get(key)
    return [t.order_id for t in detail.trades] if detail else []


async def test_feed_live_journal_root_follows_trades_as_traders_write(
    server: EmbeddedNats, tmp_path: Path
) -> None:
    root = tmp_path / "journals" / "run1"
    feed = feed_for(server, journal_dir=str(root)).start()  # before the traders created it
    try:
        assert await asyncio.to_thread(feed.wait_live, 10)
        journal = root / "sma-AAPL-model_4" / "trades_2024-03-15.csv"
        journal.parent.mkdir(parents=True)
        journal.write_text(HEADER + "2024-03-15T13:31:00Z,AAPL,buy,93,268.2,c1\n")
        snap = await until(feed, lambda s: trades(s, "sma-AAPL-model_4") == ["c1"])
        assert snap.models["sma-AAPL-model_4"].row.symbol == "AAPL"
        with journal.open("a") as f:  # the trader appends; the next pass picks it up
            f.write("2024-03-15T13:35:00Z,AAPL,sell,93,266.6,c2\n")
        await until(feed, lambda s: trades(s, "sma-AAPL-model_4") == ["c1", "c2"])
    finally:
        await asyncio.to_thread(feed.stop)


async def test_feed_unopenable_bucket_still_reads_live_journals(
    server: EmbeddedNats, tmp_path: Path
) -> None:
    root = tmp_path / "journals"
    (root / "m1").mkdir(parents=True)
    (root / "m1" / "trades_2024-03-15.csv").write_text(
        HEADER + "2024-03-15T13:31:00Z,X,buy,1,2,c\n"
    )
    feed = feed_for(server, bucket="s3://", journal_dir=str(root)).start()
    try:
        snap = await until(feed, lambda s: trades(s, "m1") == ["c"])
        assert snap.feed_status in ("connecting", "live")
        assert feed.journal_scans >= 1
    finally:
        await asyncio.to_thread(feed.stop)
