"""algostack.services: the runnable processes (ingest, trader, gateway, dashboard, node)."""

from __future__ import annotations

import asyncio
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
    """Run ``service`` until SIGTERM or SIGINT asks it to stop; then close ``bus``."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.stop)
    try:
        await service.run()
    finally:
        await bus.close()
