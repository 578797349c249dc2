"""TraderService periodic commits: all due models in one worker-thread hop, each acked alone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from ack_wait import server_ack_floor

from algostack.adapters.artifacts.loader import parse_fold
from algostack.adapters.artifacts.model import EnsembleModel
from algostack.adapters.artifacts.native_json import dump_native
from algostack.adapters.broker import SimBroker
from algostack.adapters.nats.bus import NatsBus
from algostack.core.market import NS_PER_MIN, Bar, datetime_to_ts
from algostack.core.naming import ModelSpec, parse_artifact_key
from algostack.errors import FileWriteError
from algostack.services.trader.service import TraderService
from algostack.services.trader.state import STATE_FILE, load_state

OPEN_NS = datetime_to_ts(datetime(2024, 3, 5, 14, 30, tzinfo=UTC))
SYMBOLS = ("AAPL", "MSFT", "NVDA")


def model_for(symbol: str, n: int) -> tuple[ModelSpec, EnsembleModel]:
    key = f"models/sma/{symbol}/model_{n}-outer_0_inner_0.json"
    art = parse_artifact_key(key)
    assert art is not None
    spec = ModelSpec("sma", symbol, f"model_{n}", n, (art,))
    data = dump_native(
        kind="linear",
        features=["sma_ratio_2_4"],
        coef=[1.0],
        intercept=0.0,
        # never trades: commits come only from the periodic tick, every model at once
        thresholds={"long_entry": 1e9, "long_exit": 1e9},
    )
    return spec, EnsembleModel(spec, [parse_fold(key, data)])


def bars(symbol: str, count: int) -> list[Bar]:
    return [
        Bar(symbol=symbol, ts=OPEN_NS + i * NS_PER_MIN, open=100.0 + i, high=100.5 + i,
            low=99.5 + i, close=100.0 + i, volume=1000.0)
        for i in range(count)
    ]  # fmt: skip


async def wait_for(cond: Callable[[], bool], limit_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit_s
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def make_service(bus: NatsBus, root: Path, commit_grace_s: float = 10.0) -> TraderService:
    return TraderService(
        bus,
        [model_for(s, i + 1) for i, s in enumerate(SYMBOLS)],
        journal_root=root,
        broker_factory=lambda spec: SimBroker(0.0, model=spec.key),
        fsync=True,
        heartbeat_s=5.0,
        commit_interval_s=0.1,
        commit_grace_s=commit_grace_s,
        follow_interval_s=0.05,
    )


async def test_trader_periodic_commit_all_models_one_group_each_acked(
    bus: NatsBus, tmp_path: Path
) -> None:
    service = make_service(bus, tmp_path)
    groups: list[int] = []
    real = service._commit_group

    async def spy(slots: list[Any]) -> None:
        groups.append(len(slots))
        await real(slots)

    service._commit_group = spy  # type: ignore[method-assign]
    await service.start()
    try:
        slots = list(service.slots.values())
        # Minute by minute, as the ingest publishes: the first bar of each subject comes
        # through the durable path, which opens the gate; the rest are decided live.
        for i in range(6):
            await bus.publish_events([bars(s, 6)[i] for s in SYMBOLS])
            await bus.flush_acks()
            await wait_for(lambda n=i + 1: all(s.runner.stats.decisions == n for s in slots))
            await wait_for(lambda: all(s.feed.gate.open for s in slots))
        last = await bus.last_stream_seq()
        # The live path decided the bars; once the feed is quiet the durable path reads the
        # stream up to its end, and the commits ack through the last message of each model.
        await wait_for(lambda: all(s.feed.committed_seq == s.feed.acked_seq > 0 for s in slots))
        for slot in slots:
            assert slot.feed.gate.live > 0  # decided on the live path
            assert slot.feed.consumer is not None
            # An ack is a plain publish that the server applies on its own queue, so an
            # info request can overtake it: wait for the server's floor, not only ours.
            info = await server_ack_floor(slot.feed.consumer, slot.feed.acked_seq)
            assert info.num_pending == 0 and slot.feed.acked_seq <= last
            state = load_state(slot.journal_dir, slot.spec.key)
            assert state is not None and state.stream_seq == slot.feed.committed_seq
    finally:
        await service.shutdown()
    assert groups and max(groups) >= 2  # several models committed through one hop


async def test_trader_group_commit_failed_write_not_acked_others_are(
    bus: NatsBus, tmp_path: Path
) -> None:
    service = make_service(bus, tmp_path)
    bad = next(iter(service.slots.values()))
    # A real failed write, even as root: a directory where the state's temporary file goes.
    blocker = (bad.journal_dir / STATE_FILE).with_suffix(".tmp")
    blocker.mkdir(parents=True)
    await service.start()
    try:
        await bus.publish_events([b for s in SYMBOLS for b in bars(s, 6)])
        await bus.flush_acks()
        slots = list(service.slots.values())
        good = [s for s in slots if s is not bad]
        await wait_for(lambda: all(s.runner.stats.decisions == 6 for s in slots))
        await wait_for(lambda: all(s.feed.committed_seq == s.feed.acked_seq > 0 for s in good))
        await asyncio.sleep(0.3)  # several more ticks: the failing model stays unacked
        assert bad.feed.committed_seq == 0 and bad.feed.gate.safe_seq > 0
        assert load_state(bad.journal_dir, bad.spec.key) is None
        assert bad.feed.consumer is not None
        info = await bad.feed.consumer.info()
        assert not info.ack_floor or not info.ack_floor.stream_seq
        blocker.rmdir()  # the disk recovers: the next tick commits and acks it
        await wait_for(
            lambda: bad.feed.committed_seq == bad.feed.gate.safe_seq == bad.feed.acked_seq
        )
    finally:
        await service.shutdown()
    state = load_state(bad.journal_dir, bad.spec.key)
    assert state is not None and state.stream_seq == bad.feed.gate.safe_seq


async def test_trader_commits_failing_past_the_grace_stop_it_naming_the_file(
    bus: NatsBus, tmp_path: Path
) -> None:
    service = make_service(bus, tmp_path, commit_grace_s=0.5)
    bad = next(iter(service.slots.values()))
    (bad.journal_dir / STATE_FILE).with_suffix(".tmp").mkdir(parents=True)  # never recovers
    run = asyncio.create_task(service.run())
    await wait_for(lambda: all(s.feed.consumer is not None for s in service.slots.values()))
    await bus.publish_events([b for s in SYMBOLS for b in bars(s, 6)])
    await bus.flush_acks()
    with pytest.raises(FileWriteError, match=str(bad.journal_dir / STATE_FILE)):
        await asyncio.wait_for(run, 30)  # it stops by itself: nothing of the model is durable
    for slot in service.slots.values():  # the others still made their last commit
        state = load_state(slot.journal_dir, slot.spec.key)
        assert (state is None) == (slot is bad)
