"""The interface every market-data source implements (Alpaca, synthetic, replay).

A source yields batches of core events — one batch per websocket frame, or per minute for
offline sources — and keeps its own counters. The ingest service drains a source into the bus.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from algostack.core.market import MarketEvent


@dataclass
class SourceStats:
    """Counters a source keeps; the ingest service logs and reports them."""

    received: int = 0
    """Events parsed into core types."""
    malformed: int = 0
    """Frames or messages that could not be parsed (counted, logged truncated, skipped)."""
    reconnects: int = 0
    backfilled: int = 0
    """Bars fetched through the historical REST seam after a gap."""
    last_bar_ts: dict[str, int] = field(default_factory=dict)
    """Per symbol, the timestamp (UTC ns) of the last bar seen."""
    subscribed: bool = True
    """False while an online source has not yet connected, authenticated and subscribed
    (offline sources are ready at once); what the ingest's systemd readiness waits for."""


class MarketSource(Protocol):
    """An async source of market events."""

    name: str
    stats: SourceStats

    def stream(self) -> AsyncIterator[Sequence[MarketEvent]]:
        """Yield batches of events until the source ends (offline) or is closed."""
        ...

    async def aclose(self) -> None:
        """Stop producing and release connections; ``stream()`` then ends."""
        ...

    def resume_after(self, ts_ns: int) -> None:
        """Before ``stream()``: the bus already holds everything up to ``ts_ns`` (a restarted
        ingest), so an offline source starts after it, at its pace from there; a live source
        ignores it (it starts from now)."""
        ...
