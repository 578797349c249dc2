"""The ingest service: drain a market-data source into the market bus.

``IngestService`` moves each batch of a ``MarketSource`` (Alpaca, synthetic, replay) into
``MARKET`` through a ``MarketBus`` (``NatsBus`` in production), stamped with the time its
frame was received; it logs progress, and after ``stop()`` waits for every ack so nothing
received is left unflushed (docs/ingest.md). With an ``ArchiveWriter`` it also archives the
session's bars and statuses to the bucket as it publishes them (docs/data.md).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from algostack.adapters.nats.bus import DEFAULT_DUPLICATE_WINDOW_S, NatsBus
from algostack.core.market import NS_PER_MIN, NS_PER_S, Bar
from algostack.core.market_bus import BusStats, MarketBus
from algostack.core.source import MarketSource, SourceStats
from algostack.errors import RetryableError
from algostack.services import freeze_long_lived
from algostack.services.archive import ArchiveStats, ArchiveWriter

log = logging.getLogger("algostack.ingest")

STOP_GRACE_S = 5.0
"""How long ``stop()`` lets a source end its stream before the pump is cancelled."""


LOGGED_COUNTERS = (
    "received", "published", "duplicates", "failed", "malformed", "reconnects", "batches",
    "elapsed_s", "archived", "archive_complete",
)  # fmt: skip
"""What ``IngestStats.to_dict`` holds, in the order the logs print it."""


@dataclass
class IngestStats:
    """Counters of one ingest run (what the logs and the CLI report).

    The service counts what it takes from the source; the publish counters are the bus's,
    the parse and reconnect counters the source's and the archive's its own, read live."""

    bus: BusStats
    source: SourceStats
    archive: ArchiveStats | None = None
    received: int = 0
    """Events taken from the source."""
    batches: int = 0
    elapsed_s: float = 0.0
    archive_complete: bool | None = None
    """Whether the archive wrote everything and marked its days complete (``None``: no
    archive, or not finished yet)."""
    last_bar_ts: dict[str, int] = field(default_factory=dict)
    """Per symbol, the start (UTC ns) of the newest bar published."""

    @property
    def published(self) -> int:
        """Events acked and stored by JetStream."""
        return self.bus.published

    @property
    def duplicates(self) -> int:
        """Events the server dropped as duplicates (a re-send inside the duplicate window)."""
        return self.bus.duplicates

    @property
    def failed(self) -> int:
        return self.bus.failed

    @property
    def malformed(self) -> int:
        """Frames or rows the source could not parse."""
        return self.source.malformed

    @property
    def reconnects(self) -> int:
        """Source reconnects plus NATS reconnects."""
        return self.source.reconnects + self.bus.reconnects

    @property
    def archived(self) -> int:
        """Bars and statuses written to the archive (0 without one)."""
        return self.archive.archived if self.archive is not None else 0

    def to_dict(self) -> dict[str, Any]:
        """The counters as logged (``ingest finished``) and summed up by the CLI."""
        return {name: getattr(self, name) for name in LOGGED_COUNTERS}

    def last_bar_age_s(self, now_s: float) -> dict[str, float]:
        """Per symbol, seconds since the newest bar's start at wall time ``now_s``."""
        return {s: round(now_s - ts / NS_PER_S, 3) for s, ts in sorted(self.last_bar_ts.items())}


class IngestService:
    """Move batches from ``source`` to ``bus`` until the source ends or ``stop()``."""

    def __init__(
        self,
        source: MarketSource,
        bus: MarketBus,
        *,
        log_every_s: float = 10.0,
        stop_grace_s: float = STOP_GRACE_S,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        wall_ns: Callable[[], int] = time.time_ns,
        archive: ArchiveWriter | None = None,
    ) -> None:
        self.source = source
        self.archive = archive
        self.stop_grace_s = stop_grace_s
        self.bus = bus
        self.log_every_s = log_every_s
        self.stats = IngestStats(
            bus.stats, source.stats, archive.stats if archive is not None else None
        )
        self._clock = clock
        self._wall = wall_clock
        self._wall_ns = wall_ns
        self._stopping = False
        self._pump: asyncio.Task[None] | None = None
        self._close_task: asyncio.Task[None] | None = None

    def snapshot(self) -> dict[str, Any]:
        """Current counters and per-symbol last-bar age, as logged."""
        s = self.stats
        out = s.to_dict()
        out["inflight"] = self.bus.inflight
        out["last_bar_age_s"] = s.last_bar_age_s(self._wall())
        return out

    async def _pump_loop(self) -> None:
        publish = self.bus.publish_events
        stats = self.stats
        last_bar = stats.last_bar_ts
        next_log = self._clock() + self.log_every_s
        source = self.source
        wall_ns = self._wall_ns
        archive = self.archive
        async for batch in source.stream():
            # Read at once: the source sets it just before yielding this batch.
            recv_ns: int = getattr(source, "last_recv_ns", 0) or wall_ns()
            if not batch:
                continue
            stats.received += len(batch)
            stats.batches += 1
            await publish(batch, recv_ns=recv_ns)
            if archive is not None:
                archive.add(batch, recv_ns)
            for ev in batch:
                if type(ev) is Bar and ev.ts > last_bar.get(ev.symbol, 0):
                    last_bar[ev.symbol] = ev.ts
            if self._clock() >= next_log:
                next_log = self._clock() + self.log_every_s
                log.info("ingest progress", extra={"fields": self.snapshot()})
            if self._stopping:
                break

    async def run(self) -> IngestStats:
        """Ingest until the source ends or ``stop()``; then wait for every ack and return."""
        started = self._clock()
        log.info(
            "ingest started",
            extra={"fields": {"source": self.source.name, "nats": self.bus.url}},
        )
        self._pump = asyncio.create_task(self._pump_loop())
        try:
            await self._pump
        except asyncio.CancelledError:
            if not self._stopping:
                raise
        finally:
            self.stats.elapsed_s = round(self._clock() - started, 3)
        await self.bus.flush_acks()
        if self.archive is not None:
            # Every event is on the bus: finish the archive's days (parts + complete manifest).
            self.stats.archive_complete = await self.archive.close(complete=True)
        log.info("ingest finished", extra={"fields": self.snapshot()})
        return self.stats

    def stop(self) -> None:
        """Ask the service to stop (safe from a signal handler); ``run()`` then flushes."""
        if self._stopping:
            return
        self._stopping = True
        log.info("ingest stopping", extra={"fields": {"source": self.source.name}})
        self._close_task = asyncio.get_running_loop().create_task(self._close_source())

    async def _close_source(self) -> None:
        await self.source.aclose()
        pump = self._pump
        if pump is None or pump.done():
            return
        done, _ = await asyncio.wait({pump}, timeout=self.stop_grace_s)
        if not done:
            log.warning("source did not end within %.1f s; cancelling it", self.stop_grace_s)
            pump.cancel()


async def notify_when_subscribed(
    source: MarketSource,
    notify: Callable[[str], object] | None = None,
    poll_s: float = 0.1,
) -> None:
    """Send systemd READY=1 once the source has subscribed (NATS is up when this starts):
    no market data is needed, the market may be closed. ``notify`` defaults to
    :func:`algostack.services.node.notify_ready`, a no-op outside a ``Type=notify`` unit."""
    if notify is None:
        from algostack.services.node import notify_ready

        notify = notify_ready
    while not source.stats.subscribed:  # noqa: ASYNC110 - plain counters; once per process
        await asyncio.sleep(poll_s)
    notify(f"ingest {source.name} -> NATS")


async def run_ingest(
    source: MarketSource,
    *,
    nats_url: str | None,
    user: str | None = None,
    password: str | None = None,
    connect_timeout_s: float = 60.0,
    embedded: bool = False,
    store_dir: Path | None = None,
    log_every_s: float = 10.0,
    max_age_s: float = 86_400.0,
    duplicate_window_s: float = DEFAULT_DUPLICATE_WINDOW_S,
    handle_signals: bool = True,
    on_ready: Callable[[str], None] | None = None,
    archive: ArchiveWriter | None = None,
) -> IngestStats:
    """Connect (or start an embedded nats-server), ensure MARKET, ingest, flush, close.

    SIGTERM and SIGINT stop the service gracefully: the source ends, every outstanding ack
    is awaited, the connection drains, and the function returns normally. ``on_ready`` gets
    the (credential-free) NATS URL once the stream is ready. ``archive`` archives the bars
    and statuses; a run that fails writes the archive's buffer but leaves its days incomplete.
    """
    from algostack.adapters.nats.server import EmbeddedNats
    from algostack.services.node.readiness import feed_watchdog

    server: EmbeddedNats | None = None
    loop = asyncio.get_running_loop()
    try:
        if embedded:
            server = EmbeddedNats(store_dir, user=user, password=password)
            await asyncio.to_thread(server.start)
            nats_url, user, password = server.url, server.user, server.password
        if not nats_url:
            raise ValueError("nats_url is required unless embedded=True")
        bus = await NatsBus.connect(
            nats_url,
            user=user,
            password=password,
            connect_timeout_s=connect_timeout_s,
            name=f"algostack-ingest-{source.name}",
        )
        try:
            await bus.ensure_market_stream(
                max_age_s=max_age_s, duplicate_window_s=duplicate_window_s
            )
            try:
                last = await bus.last_market_ts()
            except RetryableError as exc:
                # Resuming saves time, nothing more: without it the session is sent again
                # and de-duplicated.
                log.warning("cannot read where MARKET stands (%s): sending from the start", exc)
                last = 0
            if last:
                # A restarted ingest: the bus has the session up to ``last``. Re-send only its
                # last minute (de-duplicated), which may have been cut short mid-batch.
                source.resume_after(last - NS_PER_MIN)
                log.info("resuming after the stream's last event", extra={"fields": {"ts": last}})
            service = IngestService(source, bus, log_every_s=log_every_s, archive=archive)
            freeze_long_lived()  # imports, settings and connections (docs/ingest.md)
            if handle_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(sig, service.stop)
            if on_ready is not None:
                on_ready(bus.url)
            ready = asyncio.create_task(notify_when_subscribed(source))
            watchdog = asyncio.create_task(feed_watchdog())  # a hung ingest is restarted
            try:
                return await service.run()
            finally:
                ready.cancel()
                watchdog.cancel()
                if handle_signals:
                    for sig in (signal.SIGTERM, signal.SIGINT):
                        loop.remove_signal_handler(sig)
        finally:
            await source.aclose()
            await bus.close()
    finally:
        if archive is not None:
            await archive.close(complete=False)  # no-op after a finished run
        if server is not None:
            await asyncio.to_thread(server.stop)
