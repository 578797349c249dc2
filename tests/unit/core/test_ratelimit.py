"""Token bucket with an injected clock."""

from __future__ import annotations

import pytest

from algostack.core.ratelimit import TokenBucket


def test_bucket_burst_then_refills_at_rate() -> None:
    now = [0.0]
    b = TokenBucket(60, 2, clock=lambda: now[0])
    assert [b.try_acquire() for _ in range(3)] == [True, True, False]
    assert b.wait_time() == pytest.approx(1.0)
    now[0] = 1.0
    assert b.try_acquire() and not b.try_acquire()
    now[0] = 100.0
    assert b.tokens() == pytest.approx(2.0)  # capped at capacity


def test_bucket_minute_budget_never_exceeds_capacity_plus_rate() -> None:
    now = [0.0]
    b = TokenBucket(180, 20, clock=lambda: now[0])
    granted = 0
    for step in range(6000):  # one minute in 10 ms steps, asking every step
        now[0] = step * 0.01
        granted += b.try_acquire()
    assert granted <= 200


async def test_bucket_acquire_sleeps_exactly_the_deficit() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(d: float) -> None:
        slept.append(d)
        now[0] += d

    b = TokenBucket(120, 1, clock=lambda: now[0])
    assert await b.acquire(sleep=sleep) == 0.0
    assert await b.acquire(sleep=sleep) == pytest.approx(0.5)
    assert slept == [pytest.approx(0.5)]


def test_bucket_bad_arguments_refused() -> None:
    with pytest.raises(ValueError, match="rate_per_min"):
        TokenBucket(0)
    with pytest.raises(ValueError, match="capacity"):
        TokenBucket(10, 0.5)


async def test_bucket_acquire_more_than_capacity_refused() -> None:
    with pytest.raises(ValueError, match="cannot take"):
        await TokenBucket(10, 2).acquire(3)
