"""ModelFeed's durable read pass with a stand-in consumer: what opens the gate, what backs off."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from algostack.core.backoff import Backoff
from algostack.errors import ConfigError
from algostack.services.trader.model_feed import ModelFeed


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
async def test_fetch_without_a_404_is_a_failure_retried_with_backoff_until_stop(
    status: str, caplog: pytest.LogCaptureFixture
) -> None:
    stop = asyncio.Event()
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)
        if len(slept) == 3:
            stop.set()

    feed = ModelFeed(
        "m", handle, stop, sleep=sleep, backoff=Backoff(base=0.01, cap=1.0, floor=0.01)
    )
    feed.consumer = consumer = Consumer(status)  # type: ignore[assignment]
    await asyncio.wait_for(feed.read_pass(), 5.0)  # retried in the pass, ended by stop
    assert not feed.gate.open  # never taken for "caught up"
    assert consumer.fetches == 3 and feed.fetch_failures == 3
    assert len(slept) == 3 and all(0.01 <= s <= 0.04 for s in slept)  # backing off, not spinning
    assert caplog.text.count("durable fetch failed") == 1  # logged once, not per fetch
    assert f"status {status or 'none'}" in caplog.text


class Flaky(Consumer):
    """Raises ``error`` on the first ``failures`` fetches, then answers 404 with nothing."""

    def __init__(self, error: BaseException, failures: int) -> None:
        super().__init__("404")
        self.error = error
        self.failures = failures

    async def fetch(self, batch: int) -> list[Any]:
        if self.failures:
            self.failures -= 1
            self.fetches += 1
            raise self.error
        return await super().fetch(batch)


async def test_a_lost_connection_is_retried_and_the_pass_then_catches_up() -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    feed = ModelFeed("m", handle, asyncio.Event(), sleep=sleep)
    feed.consumer = consumer = Flaky(ConnectionResetError("gone"), 2)  # type: ignore[assignment]
    await feed.read_pass()
    assert consumer.fetches == 3 and len(slept) == 2
    assert feed.gate.open and feed.fetch_failures == 0


async def test_a_fatal_error_from_the_consumer_is_not_retried() -> None:
    feed = ModelFeed("m", handle, asyncio.Event(), sleep=lambda s: asyncio.sleep(0))
    feed.consumer = Flaky(ConfigError("consumer subjects must be under market.>"), 5)  # type: ignore[assignment]
    with pytest.raises(ConfigError):
        await feed.read_pass()
    assert feed.fetch_failures == 0
