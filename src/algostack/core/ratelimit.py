"""A token bucket with an injected clock: request budgets (Alpaca REST) and order rates (risk).

Worst case in any window of one minute the bucket lets through ``capacity + rate_per_min``
requests, so a budget under a hard per-minute limit sets both (180/min + 20 burst <= 200).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    """Refill ``rate_per_min`` tokens per minute up to ``capacity``; start full."""

    def __init__(
        self,
        rate_per_min: float,
        capacity: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_min <= 0:
            raise ValueError(f"rate_per_min must be positive, got {rate_per_min}")
        self.rate_per_s = rate_per_min / 60.0
        self.capacity = float(capacity if capacity is not None else rate_per_min)
        if self.capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {self.capacity}")
        self._clock = clock
        self._tokens = self.capacity
        self._last: float | None = None
        self.granted = 0
        self.denied = 0

    def _refill(self, now: float) -> None:
        if self._last is not None and now > self._last:
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate_per_s)
        if self._last is None or now > self._last:
            self._last = now

    def tokens(self, now: float | None = None) -> float:
        """Tokens available at ``now`` (clock time by default)."""
        self._refill(self._clock() if now is None else now)
        return self._tokens

    def try_acquire(self, n: float = 1.0, *, now: float | None = None) -> bool:
        """Take ``n`` tokens if available at ``now``; return whether they were taken."""
        self._refill(self._clock() if now is None else now)
        if self._tokens >= n:
            self._tokens -= n
            self.granted += 1
            return True
        self.denied += 1
        return False

    def wait_time(self, n: float = 1.0, *, now: float | None = None) -> float:
        """Seconds until ``n`` tokens are available (0 when they are now)."""
        self._refill(self._clock() if now is None else now)
        missing = n - self._tokens
        return 0.0 if missing <= 0 else missing / self.rate_per_s

    async def acquire(
        self,
        n: float = 1.0,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> float:
        """Wait until ``n`` tokens are available and take them; return the seconds waited."""
        if n > self.capacity:
            raise ValueError(f"cannot take {n} tokens from a bucket of {self.capacity}")
        waited = 0.0
        while True:
            delay = self.wait_time(n)
            if delay <= 0 and self.try_acquire(n):
                return waited
            await sleep(delay)
            waited += delay
