"""The ingest tells systemd it is ready once its source has subscribed, not before."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from algostack.core.source import SourceStats
from algostack.services.ingest import notify_when_subscribed


async def test_ready_is_sent_once_the_source_has_subscribed() -> None:
    source = SimpleNamespace(name="alpaca", stats=SourceStats(subscribed=False))
    said: list[str] = []
    task = asyncio.create_task(notify_when_subscribed(source, said.append, poll_s=0.01))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert said == [] and not task.done()
    source.stats.subscribed = True
    await asyncio.wait_for(task, 1)
    assert said == ["ingest alpaca -> NATS"]


async def test_an_offline_source_is_ready_at_once() -> None:
    source = SimpleNamespace(name="synthetic", stats=SourceStats())
    said: list[str] = []
    await asyncio.wait_for(notify_when_subscribed(source, said.append), 1)  # type: ignore[arg-type]
    assert said == ["ingest synthetic -> NATS"]
