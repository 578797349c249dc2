"""algostack.services: the runnable processes (ingest, trader, gateway, dashboard, node)."""

from __future__ import annotations

import asyncio
import gc
import signal
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from algostack.adapters.nats.bus import NatsBus


class Service(Protocol):
    """A process's main service: ``run()`` until ``stop()``."""

    async def run(self) -> None:
        """Start, serve until stopped, shut down."""
        ...

    def stop(self) -> None:
        """Ask ``run`` to end (safe from a signal handler)."""
        ...


async def serve_until_signalled(service: Service, bus: NatsBus) -> None:
    """Run ``service`` until SIGTERM or SIGINT asks it to stop, feeding systemd's watchdog
    meanwhile (on a host: a hung service is restarted); then close ``bus``."""
    from algostack.services.node.readiness import feed_watchdog

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.stop)
    watchdog = asyncio.create_task(feed_watchdog())
    try:
        await service.run()
    finally:
        watchdog.cancel()
        await bus.close()


def freeze_long_lived() -> None:
    """Move everything alive now (imports, settings, connections, models, the day's state)
    out of the GC's generations, so no collection rescans it mid-session: a full collection
    over it pauses a decision or an order for milliseconds (docs/performance.md). Called by
    each service once it has started."""
    gc.collect()
    gc.freeze()
