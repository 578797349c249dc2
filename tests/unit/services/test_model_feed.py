"""ModelFeed's durable read pass with a stand-in consumer: what opens the gate, what backs off."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from algostack.services.trader.feed import ModelFeed


class Consumer:
    """Answers every fetch with no messages and ``status``; counts the fetches."""

    def __init__(self, status: str) -> None:
        self.status = ""
        self._status = status
        self.position = 1
        self.fetches = 0

    async def fetch(self, batch: int) -> list[Any]:
        self.fetches += 1
        self.status = self._status
        return []


async def handle(subject: str, data: bytes, headers: Any) -> None:
    raise AssertionError("nothing to handle")


async def test_empty_fetch_with_404_means_caught_up() -> None:
    feed = ModelFeed("m", handle, asyncio.Event())
    feed.consumer = Consumer("404")  # type: ignore[assignment]
    await feed.read_pass()
    assert feed.gate.open and feed.fetch_failures == 0


@pytest.mark.parametrize("status", ["409", ""])
async def test_fetch_without_a_404_is_a_failure_that_backs_off(
    status: str, caplog: pytest.LogCaptureFixture
) -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    feed = ModelFeed("m", handle, asyncio.Event(), sleep=sleep)
    feed.consumer = consumer = Consumer(status)  # type: ignore[assignment]
    for _ in range(3):
        await feed.read_pass()
    assert not feed.gate.open  # never taken for "caught up"
    assert consumer.fetches == 3 and feed.fetch_failures == 3
    assert slept == [0.01, 0.02, 0.03]  # backing off, not spinning
    assert caplog.text.count("durable fetch failed") == 1  # logged once, not per fetch
