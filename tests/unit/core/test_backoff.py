from __future__ import annotations

import asyncio
import random

import pytest

from algostack.core.backoff import Backoff, next_wait, retry_async, retry_sync
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


def test_next_wait_gives_up_on_non_retryable_errors_and_after_max_attempts() -> None:
    b = Backoff(base=1, factor=1, cap=1, floor=1)
    assert next_wait(FatalError("bad key"), 1, 0.0, backoff=b, deadline_s=100) is None
    assert next_wait(ValueError("bug"), 1, 0.0, backoff=b, deadline_s=100) is None
    assert next_wait(RetryableError("429"), 2, 0.0, backoff=b, deadline_s=100) == 1
    assert (
        next_wait(RetryableError("429"), 3, 0.0, backoff=b, deadline_s=100, max_attempts=3) is None
    )


def test_next_wait_takes_retry_after_as_the_least_wait_and_never_passes_the_deadline() -> None:
    b = Backoff(base=1, factor=1, cap=1, floor=1)
    assert next_wait(RetryableError("429", retry_after=7), 1, 0.0, backoff=b, deadline_s=10) == 7
    assert next_wait(RetryableError("429", retry_after=7), 1, 3.5, backoff=b, deadline_s=10) is None
    assert next_wait(RetryableError("down"), 1, 9.0, backoff=b, deadline_s=10) == 1
    assert next_wait(RetryableError("down"), 1, 9.5, backoff=b, deadline_s=10) is None


def test_retry_sync_retries_retryable_until_success_and_reports_each_retry() -> None:
    calls = 0
    slept: list[float] = []
    retries: list[tuple[int, str, float]] = []

    def fn() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RetryableError(f"flaky {calls}")
        return "ok"

    out = retry_sync(
        fn,
        backoff=Backoff(base=2, factor=1, cap=2, floor=2),
        deadline_s=100,
        on_retry=lambda n, exc, d: retries.append((n, str(exc), d)),
        sleep=slept.append,
    )
    assert out == "ok" and calls == 3 and slept == [2, 2]
    assert retries == [(1, "flaky 1", 2), (2, "flaky 2", 2)]


def test_retry_sync_raises_fatal_at_once() -> None:
    calls = 0

    def fn() -> None:
        nonlocal calls
        calls += 1
        raise FatalError("bad key")

    with pytest.raises(FatalError):
        retry_sync(fn, backoff=Backoff(), deadline_s=100, sleep=lambda d: None)
    assert calls == 1


class Flaky:
    """Fails every call (the second with a ``retry_after``) on a fake clock that sleeps advance."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls = 0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, d: float) -> None:
        self.slept.append(d)
        self.now += d

    def fail(self) -> None:
        self.calls += 1
        raise RetryableError(f"down #{self.calls}", retry_after=5 if self.calls == 2 else None)


def test_retry_sync_and_retry_async_wait_and_give_up_alike() -> None:
    sync, aio = Flaky(), Flaky()
    with pytest.raises(RetryableError) as sync_err:
        retry_sync(
            sync.fail,
            backoff=Backoff(rng=random.Random(3)),
            deadline_s=30,
            max_attempts=6,
            sleep=sync.sleep,
            clock=sync.clock,
        )

    async def call() -> None:
        aio.fail()

    async def sleep(d: float) -> None:
        aio.sleep(d)

    with pytest.raises(RetryableError) as async_err:
        asyncio.run(
            retry_async(
                call,
                backoff=Backoff(rng=random.Random(3)),
                deadline_s=30,
                max_attempts=6,
                sleep=sleep,
                clock=aio.clock,
            )
        )
    assert sync.slept == aio.slept and len(sync.slept) >= 2 and sync.slept[1] >= 5
    assert str(sync_err.value) == str(async_err.value)


async def test_cancel_and_wait_ends_every_task_and_returns_only_the_failures() -> None:
    from algostack.core.backoff import cancel_and_wait

    async def fail() -> None:
        raise RuntimeError("boom")

    async def finish() -> None:
        return None

    running = asyncio.ensure_future(asyncio.sleep(3600))
    failed, finished = asyncio.ensure_future(fail()), asyncio.ensure_future(finish())
    await asyncio.sleep(0)  # the quick two end before the stop
    errors = await asyncio.wait_for(cancel_and_wait([running, failed, finished]), 1.0)
    assert [str(e) for e in errors] == ["boom"]
    assert running.cancelled() and failed.done() and not finished.cancelled()
    assert await cancel_and_wait([]) == []
