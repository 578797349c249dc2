"""A full JetStream store against a real nats-server whose store sits on a small tmpfs: the
publish that gets "insufficient resources" is one fatal line naming the subject, not a
generic refusal, and every later publish fails at once."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import nats.js.errors
import pytest
from nats.js import api

from algostack.adapters.nats.bus import NatsBus
from algostack.adapters.nats.publisher import JetStreamStoreFullError, store_full_error
from algostack.adapters.nats.server import EmbeddedNats
from algostack.core.market import NS_PER_MIN, Bar, MarketEvent, datetime_to_ts
from algostack.errors import FatalError
from algostack.testing.tiny_disk import tiny_disk

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")

T0 = datetime_to_ts(datetime(2024, 3, 15, 13, 30, tzinfo=UTC))
HINT = ": free space on nats-server's store disk (or raise its max_file_store)"


@pytest.fixture
def small_store(tmp_path: Path) -> Iterator[EmbeddedNats]:
    # nats-server gives JetStream 75% of the free disk: about 0.75 MB here.
    with tiny_disk(tmp_path / "js", "1m") as store, EmbeddedNats(store) as server:
        yield server


@pytest.fixture
async def bus(small_store: EmbeddedNats) -> AsyncIterator[NatsBus]:
    b = await NatsBus.connect(small_store.url, user=small_store.user, password=small_store.password)
    try:
        yield b
    finally:
        await b.close()


def bars(start: int, n: int) -> list[MarketEvent]:
    return [
        Bar(symbol="AAPL", ts=T0 + (start + i) * NS_PER_MIN, open=100.0, high=101.0,
            low=99.0, close=100.5, volume=1000.0 + i)
        for i in range(n)
    ]  # fmt: skip


async def test_publish_into_a_full_store_is_one_fatal_line_naming_the_subject(
    bus: NatsBus,
) -> None:
    await bus.ensure_market_stream()
    with pytest.raises(JetStreamStoreFullError) as info:
        for batch in range(200):  # ~10k bars: far more than 0.75 MB holds
            await bus.publish_events(bars(batch * 500, 500))
            await bus.flush_acks(timeout_s=10)
    assert str(info.value) == (
        f"JetStream store full (insufficient resources) publishing to market.bars.AAPL{HINT}"
    )
    assert isinstance(info.value, FatalError) and "\n" not in str(info.value)
    stored = (await bus.stream_info()).state.messages
    assert 1000 < stored < 100_000
    # Nothing more is sent into a full store: the next publish fails at once.
    with pytest.raises(JetStreamStoreFullError):
        await bus.publish_events(bars(999_000, 1))
    assert (await bus.stream_info()).state.messages == stored


async def test_stream_limits_that_no_longer_fit_are_store_full_not_a_generic_error(
    bus: NatsBus,
) -> None:
    manager = bus.client.jsm()
    # nats-server's own answer to a stream whose reservation exceeds the store.
    with pytest.raises(nats.js.errors.APIError) as raw:
        await manager.add_stream(
            api.StreamConfig(name="BIG", subjects=["big.>"], storage=api.StorageType.FILE,
                             max_bytes=100_000_000)
        )  # fmt: skip
    full = store_full_error(raw.value.err_code, raw.value.description, "creating stream BIG")
    assert (raw.value.err_code, full is not None) == (10047, True)
    assert str(full) == (
        f"JetStream store full (insufficient storage resources available) creating stream BIG{HINT}"
    )
    # A stream's own byte limit is not a full store: left to the caller as before.
    await manager.add_stream(
        api.StreamConfig(name="SMALL", subjects=["small.>"], storage=api.StorageType.FILE,
                         max_bytes=10_000, discard=api.DiscardPolicy.NEW)
    )  # fmt: skip
    with pytest.raises(nats.js.errors.APIError) as limit:
        for _ in range(5):
            await bus.jetstream.publish("small.x", b"x" * 4000)
    assert limit.value.err_code == 10077
    assert store_full_error(limit.value.err_code, limit.value.description, "x") is None
