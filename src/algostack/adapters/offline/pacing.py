"""Pacing shared by the offline sources: wait between batches, cut short by ``aclose()``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable


class Pacer:
    """Waits for the next batch's due time; ``close()`` ends any wait at once.

    ``sleep`` is injected by tests (no real waiting); without it the wait is on the close
    event so a paced source stops promptly.
    """

    def __init__(self, sleep: Callable[[float], Awaitable[None]] | None = None) -> None:
        self._sleep = sleep
        self.closed = asyncio.Event()

    def close(self) -> None:
        """Stop pacing: a wait in progress returns and ``closed`` is set."""
        self.closed.set()

    async def pause(self, delay: float) -> None:
        """Wait ``delay`` seconds (nothing when not positive), or until closed."""
        if delay <= 0:
            return
        if self._sleep is not None:
            await self._sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closed.wait(), delay)
