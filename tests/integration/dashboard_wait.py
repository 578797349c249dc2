"""Waiting for a ``DashboardFeed`` to reach a state (shared by the dashboard feed tests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from algostack.services.dashboard.aggregate import Snapshot
from algostack.services.dashboard.feed import DashboardFeed


async def until(
    feed: DashboardFeed, done: Callable[[Snapshot], bool], timeout_s: float = 10
) -> Snapshot:
    """The feed's first snapshot for which ``done`` holds; fails the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        snap = feed.state.snapshot(time.time_ns())
        if done(snap):
            return snap
        if time.monotonic() > deadline:
            pytest.fail(f"feed never reached the expected state: {snap}")
        await asyncio.sleep(0.05)
