"""Exponential backoff with full jitter, the one retrier (``retry_sync``/``retry_async``), and
the waits of a stopping service (``sleep_unless``, ``cancel_and_wait``).

Stdlib only, so ``control/`` (stdlib + boto3) uses it too. Clock and sleep are injected so
tests never sleep for real. docs/architecture.md says what goes through it and what does not.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from algostack.errors import RetryableError

T = TypeVar("T")

_JITTER = random.Random()
"""Shared by every ``Backoff`` that is given no rng: seeding one costs ~10 us, which a
backoff made per order would pay on the order path."""


@dataclass
class Backoff:
    """Delays ``base * factor**n`` capped at ``cap``, with full jitter in ``[floor, delay]``."""

    base: float = 1.0
    factor: float = 2.0
    cap: float = 30.0
    floor: float = 0.0
    rng: random.Random = field(default=_JITTER)
    attempt: int = 0

    def next_delay(self) -> float:
        """Return the next delay and advance; never below ``floor``, never above ``cap``."""
        raw = min(self.cap, self.base * self.factor**self.attempt)
        self.attempt += 1
        return max(self.floor, self.rng.uniform(0.0, raw))

    def reset(self) -> None:
        """Start again from the first delay (after a success)."""
        self.attempt = 0

    def delays(self) -> Iterator[float]:
        """Yield delays forever."""
        while True:
            yield self.next_delay()


def next_wait(
    exc: BaseException,
    attempt: int,
    elapsed: float,
    *,
    backoff: Backoff,
    deadline_s: float,
    max_attempts: int | None = None,
) -> float | None:
    """The wait before call ``attempt + 1`` after ``exc`` ended call ``attempt``, ``elapsed``
    seconds after the first call began; None to give up.

    Gives up when ``exc`` is not a ``RetryableError``, when ``max_attempts`` calls were made,
    or when the wait would pass ``deadline_s``; a ``retry_after`` on the error is the least
    wait. The one retry decision: ``retry_sync``, ``retry_async`` and the publisher's
    per-message re-sends all ask it.
    """
    if not isinstance(exc, RetryableError):
        return None
    if max_attempts is not None and attempt >= max_attempts:
        return None
    delay = backoff.next_delay()
    if exc.retry_after is not None:
        delay = max(delay, exc.retry_after)
    if elapsed + delay > deadline_s:
        return None
    return delay


class _Tries:
    """The bookkeeping of one ``retry_sync``/``retry_async`` call."""

    def __init__(
        self,
        backoff: Backoff,
        deadline_s: float,
        max_attempts: int | None,
        on_retry: Callable[[int, BaseException, float], None] | None,
        clock: Callable[[], float],
    ) -> None:
        self.backoff, self.deadline_s, self.max_attempts = backoff, deadline_s, max_attempts
        self.on_retry, self.clock = on_retry, clock
        self.start = clock()
        self.attempt = 0

    def wait_or_raise(self, exc: RetryableError) -> float:
        """The wait before the next call (``on_retry`` told), or ``exc`` raised again."""
        self.attempt += 1
        delay = next_wait(
            exc,
            self.attempt,
            self.clock() - self.start,
            backoff=self.backoff,
            deadline_s=self.deadline_s,
            max_attempts=self.max_attempts,
        )
        if delay is None:
            raise exc
        if self.on_retry is not None:
            self.on_retry(self.attempt, exc, delay)
        return delay


def retry_sync(
    fn: Callable[[], T],
    *,
    backoff: Backoff,
    deadline_s: float,
    max_attempts: int | None = None,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``fn`` until it succeeds, retrying only ``RetryableError`` until ``deadline_s``
    (and at most ``max_attempts`` calls when given); a ``retry_after`` on the error is the
    least wait. ``on_retry(attempt, error, wait)`` runs before each wait.

    The last error is re-raised when ``next_wait`` gives up.
    """
    tries = _Tries(backoff, deadline_s, max_attempts, on_retry, clock)
    while True:
        try:
            return fn()
        except RetryableError as exc:
            sleep(tries.wait_or_raise(exc))


async def retry_async(
    fn: Callable[[], Awaitable[T]],
    *,
    backoff: Backoff,
    deadline_s: float,
    max_attempts: int | None = None,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``retry_sync`` for a coroutine function: the same decisions (``next_wait``), awaited."""
    tries = _Tries(backoff, deadline_s, max_attempts, on_retry, clock)
    while True:
        try:
            return await fn()
        except RetryableError as exc:
            await sleep(tries.wait_or_raise(exc))


async def sleep_unless(
    event: asyncio.Event,
    delay: float,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> bool:
    """Sleep ``delay`` through ``sleep``, ending early when ``event`` is set; True when it is
    (a reconnect loop's wait that a ``stop()`` cuts short)."""
    sleeper = asyncio.ensure_future(sleep(delay))
    setter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({sleeper, setter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (sleeper, setter):
            if not t.done():
                t.cancel()
        await asyncio.gather(sleeper, setter, return_exceptions=True)
    return event.is_set()


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> list[Exception]:
    """Cancel every task, wait for each to end, and return the errors of those that had
    failed (a stopping service decides whether they matter; none is raised here)."""
    chosen = list(tasks)
    for task in chosen:
        task.cancel()
    ends = await asyncio.gather(*chosen, return_exceptions=True)
    return [e for e in ends if isinstance(e, Exception)]
