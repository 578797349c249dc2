from __future__ import annotations

import random

import pytest

from algostack.core.backoff import Backoff, retry_async
from algostack.errors import FatalError, RetryableError


def test_backoff_grows_exponentially_within_cap_and_floor() -> None:
    b = Backoff(base=1, factor=2, cap=8, floor=0.5, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(10)]
    assert all(0.5 <= d <= 8 for d in delays)
    b.reset()
    assert b.attempt == 0


async def test_retry_async_retries_retryable_until_success() -> None:
    calls = 0
    slept: list[float] = []

    async def fn() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RetryableError("flaky")
        return "ok"

    async def sleep(d: float) -> None:
        slept.append(d)

    out = await retry_async(fn, backoff=Backoff(rng=random.Random(0)), deadline_s=100, sleep=sleep)
    assert out == "ok" and calls == 3 and len(slept) == 2


async def test_retry_async_does_not_retry_fatal() -> None:
    async def fn() -> None:
        raise FatalError("bad key")

    with pytest.raises(FatalError):
        await retry_async(fn, backoff=Backoff(), deadline_s=100)


async def test_retry_async_gives_up_at_deadline_and_honours_retry_after() -> None:
    now = 0.0
    slept: list[float] = []

    async def fn() -> None:
        raise RetryableError("down", retry_after=90)

    async def sleep(d: float) -> None:
        nonlocal now
        slept.append(d)
        now += d

    with pytest.raises(RetryableError):
        await retry_async(
            fn, backoff=Backoff(cap=1), deadline_s=200, sleep=sleep, clock=lambda: now
        )
    assert slept == [90, 90]


async def test_sleep_unless_ends_when_the_event_is_set() -> None:
    import asyncio

    from algostack.core.backoff import sleep_unless

    slept: list[float] = []

    async def fake_sleep(d: float) -> None:
        slept.append(d)
        await asyncio.sleep(0)

    event = asyncio.Event()
    assert await sleep_unless(event, 2.0, fake_sleep) is False and slept == [2.0]
    event.set()
    assert await asyncio.wait_for(sleep_unless(event, 3600.0), 1.0) is True


async def test_retry_async_stops_after_max_attempts_within_the_deadline() -> None:
    calls = 0
    slept: list[float] = []

    async def fn() -> None:
        nonlocal calls
        calls += 1
        raise RetryableError(f"429 #{calls}")

    async def sleep(d: float) -> None:
        slept.append(d)

    with pytest.raises(RetryableError, match="429 #4"):
        await retry_async(fn, backoff=Backoff(base=0), deadline_s=1000, max_attempts=4, sleep=sleep)
    assert calls == 4 and len(slept) == 3
