"""TraderService on a real nats-server: durable consumers, warm-up, many models, kill switch."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from algostack.adapters.artifacts.loader import parse_fold
from algostack.adapters.artifacts.model import EnsembleModel
from algostack.adapters.artifacts.native_json import dump_native
from algostack.adapters.broker import SimBroker
from algostack.adapters.nats.bus import NatsBus
from algostack.adapters.nats.server import EmbeddedNats
from algostack.core.events import decode_event
from algostack.core.market import NS_PER_MIN, Bar, datetime_to_ts
from algostack.core.market_bus import BusMessage
from algostack.core.naming import ModelSpec, kill_subject, parse_artifact_key, trader_subject
from algostack.services.trader.service import ModelSlot, TraderService
from algostack.services.trader.state import decisions_file_name, read_journal_fills

DAY = "2024-03-05"
OPEN_NS = datetime_to_ts(datetime(2024, 3, 5, 14, 30, tzinfo=UTC))


def model_for(symbol: str, model_id: str) -> tuple[ModelSpec, EnsembleModel]:
    key = f"models/sma/{symbol}/{model_id}-outer_0_inner_0.json"
    art = parse_artifact_key(key)
    assert art is not None
    spec = ModelSpec("sma", symbol, model_id, int(model_id.split("_")[1]), (art,))
    data = dump_native(
        kind="linear",
        features=["sma_ratio_2_4"],
        coef=[1.0],
        intercept=0.0,
        thresholds={"long_entry": 0.0, "long_exit": 0.0},
    )
    return spec, EnsembleModel(spec, [parse_fold(key, data)])


def bars(symbol: str, prices: list[float], start: int = 0) -> list[Bar]:
    return [
        Bar(
            symbol=symbol,
            ts=OPEN_NS + (start + i) * NS_PER_MIN,
            open=p,
            high=p + 0.5,
            low=p - 0.5,
            close=p,
            volume=1000.0,
        )
        for i, p in enumerate(prices)
    ]


UP = [100.0 + i for i in range(8)]
DOWN = [107.0 - i for i in range(8)]


async def wait_for(cond: Callable[[], bool], limit_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit_s
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def decisions(root: Path, spec: ModelSpec) -> list[dict[str, str]]:
    with open(root / spec.key / decisions_file_name(DAY)) as fh:
        return list(csv.DictReader(fh))


def service_for(
    bus: NatsBus, models: list[tuple[ModelSpec, EnsembleModel]], root: Path, **kw: object
) -> TraderService:
    return TraderService(
        bus,
        models,
        journal_root=root,
        broker_factory=lambda spec: SimBroker(0.0, model=spec.key),
        fsync=False,
        heartbeat_s=0.1,
        commit_interval_s=0.05,
        **kw,  # type: ignore[arg-type]
    )


async def test_trader_two_models_one_process_no_cross_talk(bus: NatsBus, tmp_path: Path) -> None:
    a, b = model_for("AAPL", "model_1"), model_for("MSFT", "model_2")
    c = model_for("AAPL", "model_3")  # same symbol as a: its own consumer and position
    events: list[str] = []

    async def on_event(msg: BusMessage) -> None:
        events.append(msg.subject)

    await bus.subscribe("algostack.local.trader.>", on_event)
    service = service_for(bus, [a, b, c], tmp_path)
    await service.start()
    try:
        await bus.publish_events(bars("AAPL", UP) + bars("MSFT", DOWN))
        await bus.flush_acks()
        await wait_for(lambda: all(s.runner.stats.decisions == 8 for s in service.slots.values()))
        await wait_for(
            lambda: all(
                s.feed.committed_seq >= s.feed.gate.safe_seq for s in service.slots.values()
            )
        )
    finally:
        await service.shutdown()
    sa, sb, sc = (service.slots[m[0].key] for m in (a, b, c))
    assert sa.runner.position == sc.runner.position
    assert sa.runner.position > 0 and sb.runner.position == 0  # MSFT only fell: stays flat
    assert sb.runner.stats.wrong_bars == 0  # never saw an AAPL bar
    assert len(decisions(tmp_path, a[0])) == len(decisions(tmp_path, c[0])) == 8
    fa = read_journal_fills(tmp_path / a[0].key, DAY)
    assert {f.model for f in fa} == {a[0].key}
    assert any(s.endswith(f"{a[0].key}.decision") for s in events)
    assert any(s.endswith(f"{b[0].key}.heartbeat") for s in events)


async def test_trader_warmup_from_stream_history_places_no_orders_for_it(
    bus: NatsBus, tmp_path: Path
) -> None:
    spec_model = model_for("AAPL", "model_1")
    await bus.publish_events(bars("AAPL", UP))  # the day so far, before the trader starts
    await bus.flush_acks()
    service = service_for(bus, [spec_model], tmp_path)
    await service.start()
    runner = service.slots[spec_model[0].key].runner
    try:
        assert runner.stats.warmup_bars == 8 and runner.features.ready
        assert runner.stats.orders == 0
        await bus.publish_events(bars("AAPL", [108.0, 109.0], start=8))
        await bus.flush_acks()
        await wait_for(lambda: runner.stats.decisions == 2)
    finally:
        await service.shutdown()
    rows = decisions(tmp_path, spec_model[0])
    assert [r["status"] for r in rows] == ["submitted", "none"]  # warm at once: first bar trades


async def test_trader_kill_switch_halts_and_flattens(bus: NatsBus, tmp_path: Path) -> None:
    spec_model = model_for("AAPL", "model_1")
    service = service_for(bus, [spec_model], tmp_path)
    await service.start()
    runner = service.slots[spec_model[0].key].runner
    try:
        await bus.publish_events(bars("AAPL", UP))
        await bus.flush_acks()
        await wait_for(lambda: runner.position > 0)
        await bus.publish(kill_subject("local"), b"operator: test")
        await wait_for(lambda: runner.risk.killed)
        await bus.publish_events(bars("AAPL", [108.0, 109.0, 110.0], start=8))
        await bus.flush_acks()
        await wait_for(lambda: runner.position == 0)
    finally:
        await service.shutdown()
    assert str(runner.risk.state) == "HALTED"


async def test_trader_heartbeat_reports_position_and_state(bus: NatsBus, tmp_path: Path) -> None:
    spec_model = model_for("AAPL", "model_1")
    got: list[bytes] = []

    async def on_hb(msg: BusMessage) -> None:
        got.append(msg.data)

    await bus.subscribe(trader_subject("local", spec_model[0].key, "heartbeat"), on_hb)
    service = service_for(bus, [spec_model], tmp_path)
    await service.start()
    try:
        await wait_for(lambda: len(got) >= 2)
    finally:
        await service.shutdown()
    hb = decode_event(got[-1])
    assert hb.model == spec_model[0].key and getattr(hb, "state", "") == "ACTIVE"


async def test_trader_nats_restart_reconnects_no_lost_or_doubled_bar(tmp_path: Path) -> None:
    store = tmp_path / "nats"
    server = EmbeddedNats(store).start()
    port, user, password = server.port, server.user, server.password
    bus = await NatsBus.connect(server.url, user=user, password=password, connect_timeout_s=10)
    await bus.ensure_market_stream()
    spec_model = model_for("AAPL", "model_1")
    service = service_for(bus, [spec_model], tmp_path / "journal", ack_wait_s=1.0)
    await service.start()
    runner = service.slots[spec_model[0].key].runner
    try:
        await bus.publish_events(bars("AAPL", UP))
        await bus.flush_acks()
        await wait_for(lambda: runner.stats.decisions == 8)
        server.stop()  # the connection is lost
        await asyncio.sleep(0.3)
        assert not bus.connected
        server = EmbeddedNats(store, port=port or 0, user=user, password=password).start()
        await wait_for(lambda: bus.connected, limit_s=20)
        await bus.publish_events(bars("AAPL", DOWN, start=8))
        await bus.flush_acks(timeout_s=20)
        await wait_for(lambda: runner.stats.decisions == 16, limit_s=20)
        await asyncio.sleep(1.5)  # past ack_wait: any redelivery has happened
    finally:
        await service.shutdown()
        await bus.close()
        server.stop()
    rows = decisions(tmp_path / "journal", spec_model[0])
    assert [int(r["bar_ts"]) for r in rows] == [b.ts for b in bars("AAPL", UP + DOWN)]
    fills = read_journal_fills(tmp_path / "journal" / spec_model[0].key, DAY)
    assert len({f.client_order_id for f in fills}) == len(fills) == 2  # one buy, one sell


async def one_model_started(
    bus: NatsBus, root: Path
) -> tuple[tuple[ModelSpec, EnsembleModel], TraderService, ModelSlot]:
    """A started service trading one AAPL model, and that model's slot."""
    spec_model = model_for("AAPL", "model_1")
    service = service_for(bus, [spec_model], root)
    await service.start()
    return spec_model, service, service.slots[spec_model[0].key]


async def test_trader_live_path_gap_is_filled_by_the_durable_path_in_order(
    bus: NatsBus, tmp_path: Path
) -> None:
    spec_model, service, slot = await one_model_started(bus, tmp_path)
    runner, gate = slot.runner, slot.feed.gate
    series = bars("AAPL", UP)

    async def one(i: int) -> None:
        await bus.publish_events([series[i]])
        await bus.flush_acks()

    try:
        await one(0)  # the first bar of a subject comes through the durable path
        await wait_for(lambda: runner.stats.decisions == 1 and gate.open)
        for i in (1, 2):
            await one(i)
            await wait_for(lambda n=i + 1: runner.stats.decisions == n)
        assert gate.live == 2 and gate.closes == 0
        # Bars 3 and 4 never reach the live subscription (as if dropped on the way).
        for sub in slot.feed.live_subs:
            await sub.unsubscribe()
        await one(3)
        await one(4)
        slot.feed.live_subs = [await bus.subscribe("market.bars.AAPL", slot.feed.on_live)]
        await bus.flush()
        for i in (5, 6, 7):
            await one(i)
            await wait_for(lambda n=i + 1: runner.stats.decisions == n)
    finally:
        await service.shutdown()
    assert gate.closes >= 1  # bar 5 was not the next one: the durable path took over
    assert gate.live >= 3  # and handed back once it had caught up
    rows = decisions(tmp_path, spec_model[0])
    assert [int(r["bar_ts"]) for r in rows] == [b.ts for b in series]  # each once, in order
    assert runner.stats.redelivered == 0 and runner.stats.skipped_bars == 0


async def test_trader_ingest_restart_new_epoch_every_bar_once_then_live_again(
    bus: NatsBus, tmp_path: Path, embedded_nats: EmbeddedNats
) -> None:
    spec_model, service, slot = await one_model_started(bus, tmp_path)
    runner, gate = slot.runner, slot.feed.gate
    series = bars("AAPL", UP + DOWN)
    first = await NatsBus.connect(
        embedded_nats.url, user=embedded_nats.user, password=embedded_nats.password
    )
    try:
        for i in range(8):  # the first ingest process
            await first.publish_events([series[i]])
            await first.flush_acks()
            await wait_for(lambda n=i + 1: runner.stats.decisions == n)
        await first.close()  # the ingest restarts: a new bus, a new epoch, numbering from 1
        live_before = gate.live
        second = await NatsBus.connect(
            embedded_nats.url, user=embedded_nats.user, password=embedded_nats.password
        )
        try:
            for i in range(8, 16):
                await second.publish_events([series[i]])
                await second.flush_acks()
                await wait_for(lambda n=i + 1: runner.stats.decisions == n)
        finally:
            await second.close()
    finally:
        await service.shutdown()
    assert live_before >= 6 and gate.live >= live_before + 6  # live again after the switch
    rows = decisions(tmp_path, spec_model[0])
    assert [int(r["bar_ts"]) for r in rows] == [b.ts for b in series]
    fills = read_journal_fills(tmp_path / spec_model[0].key, DAY)
    assert len({f.client_order_id for f in fills}) == len(fills)
