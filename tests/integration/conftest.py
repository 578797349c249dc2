"""Integration fixtures: a real nats-server on a free loopback port and a connected bus.

``embedded_nats`` is one server per test module (fast); every test gets a fresh ``MARKET``
stream through the ``bus`` fixture, which deletes the stream first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from algostack.adapters.nats.bus import NatsBus
from algostack.adapters.nats.server import EmbeddedNats


@pytest.fixture(scope="module")
def embedded_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """A running nats-server with JetStream and generated credentials (one per module)."""
    store: Path = tmp_path_factory.mktemp("nats-store")
    with EmbeddedNats(store) as server:
        yield server


@pytest.fixture
async def bus(embedded_nats: EmbeddedNats) -> AsyncIterator[NatsBus]:
    """A connected ``NatsBus`` with an empty ``MARKET`` stream."""
    b = await NatsBus.connect(
        embedded_nats.url,
        user=embedded_nats.user,
        password=embedded_nats.password,
        connect_timeout_s=10,
    )
    await b.reset_stream()
    try:
        yield b
    finally:
        await b.close()
