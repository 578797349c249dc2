"""The execution gateway on a real nats-server, against the simulator and the fake Alpaca.

Intents go in the way traders send them (``GatewayBroker`` over the ``ORDERS`` stream),
reports come back the same way; the fake Alpaca enforces wash-trade and PDT rules and
speaks ``trade_updates``. After every case the books of the models sum to the account.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from gateway_desk import Desk, bar, intent, wait_for

from algostack.adapters.alpaca.trading import AlpacaBroker
from algostack.adapters.nats import order_channel as orders
from algostack.adapters.nats.bus import NatsBus
from algostack.core.backoff import Backoff
from algostack.core.desk_risk import DeskLimits
from algostack.core.naming import kill_subject
from algostack.services.gateway.alpaca_venue import AlpacaVenue
from algostack.services.gateway.service import GatewayService
from algostack.services.gateway.venue import BarHistory, SimVenue, Venue
from algostack.testing.fake_alpaca_trading import FakeAlpacaTrading


@pytest.fixture
async def fresh_bus(bus: NatsBus) -> NatsBus:
    await bus.reset_stream(orders.STREAM, orders.SUBJECTS)
    return bus


def alpaca_venue(fake: FakeAlpacaTrading) -> AlpacaVenue:
    broker = AlpacaBroker(fake.key_id, fake.secret_key, url=fake.url, retry_wait_s=0.01)
    return AlpacaVenue(
        broker, key_id=fake.key_id, secret_key=fake.secret_key, stream_url=fake.stream_url,
        backoff=Backoff(0.05, 2.0, 0.2),
    )  # fmt: skip


async def start_desk(
    bus: NatsBus, venue: Venue, history: BarHistory, state_dir: Path, **kw: object
) -> Desk:
    options: dict[str, object] = dict(
        batch_window_s=0.05, reconcile_every_s=0.2, status_every_s=0.2, fsync=False
    )
    options.update(kw)
    gateway = GatewayService(bus, venue, history, state_dir=state_dir, **options)  # type: ignore[arg-type]
    await gateway.start()
    return Desk(bus, gateway)


@pytest.fixture
def fake() -> AsyncIterator[FakeAlpacaTrading]:
    f = FakeAlpacaTrading(fill_immediately=False)
    f.set_price("AAPL", 100.0)
    f.set_price("MSFT", 200.0)
    with f:
        yield f


@pytest.fixture
async def alpaca_desk(
    fresh_bus: NatsBus, fake: FakeAlpacaTrading, tmp_path: Path
) -> AsyncIterator[Desk]:
    history = BarHistory()
    desk = await start_desk(fresh_bus, alpaca_venue(fake), history, tmp_path)
    await wait_for(lambda: desk.gateway.venue.ready, what="trade_updates listening")
    try:
        yield desk
    finally:
        await desk.close()
        await desk.gateway.shutdown()


@pytest.fixture
async def sim_desk(fresh_bus: NatsBus, tmp_path: Path) -> AsyncIterator[Desk]:
    history = BarHistory()
    desk = await start_desk(fresh_bus, SimVenue(history, slippage_bps=0.0), history, tmp_path)
    try:
        yield desk
    finally:
        await desk.close()
        await desk.gateway.shutdown()


async def buy_10_filled(desk: Desk, fake: FakeAlpacaTrading) -> None:
    """Model m-AAPL buys 10 AAPL; the fake fills the venue order at 100 and the desk books it."""
    await desk.model("m-AAPL", "AAPL")
    await desk.send(intent("m-AAPL", "AAPL", "buy", 10, 1))
    await wait_for(lambda: len(fake.orders()) == 1)
    fake.fill_open(price=100.0)
    await desk.until(lambda: desk.filled("m-AAPL") == 10)


async def books_equal_account(desk: Desk) -> None:
    account = await desk.gateway.venue.positions()
    assert desk.gateway.account_books() == account
    by_model: dict[str, int] = {}
    for fills in desk.fills.values():
        for f in fills:
            by_model[f.symbol] = by_model.get(f.symbol, 0) + f.signed_qty
    assert {s: q for s, q in by_model.items() if q} == account


# -- netting and crossing ---------------------------------------------------------------------


async def test_opposite_intents_one_bar_cross_without_wash_trade(
    alpaca_desk: Desk, fake: FakeAlpacaTrading
) -> None:
    desk = alpaca_desk
    await desk.model("long-AAPL", "AAPL")
    await desk.model("short-AAPL", "AAPL")
    await desk.send(intent("long-AAPL", "AAPL", "buy", 100, 1))
    await desk.send(intent("short-AAPL", "AAPL", "sell", 60, 1))
    await wait_for(lambda: len(fake.orders()) == 1, what="one netted order at the broker")
    order = fake.orders()[0]
    assert (order["side"], order["qty"], order["client_order_id"][:3]) == ("buy", "40", "gw-")
    # the broker refuses what two models would have sent on their own
    direct = AlpacaBroker(fake.key_id, fake.secret_key, url=fake.url)
    refused = await direct.submit(intent("short-AAPL", "AAPL", "sell", 60, 1))
    assert "wash trade" in refused.message
    await direct.close()
    fake.fill_open(price=101.0)
    await desk.until(lambda: desk.filled("long-AAPL") == 100 and desk.filled("short-AAPL") == -60)
    assert {f.price for f in desk.fills["long-AAPL"] + desk.fills["short-AAPL"]} == {101.0}
    assert len(fake.orders()) == 1  # the refused direct order was never stored
    await books_equal_account(desk)
    assert desk.gateway.counters["crossed_shares"] == 60


async def test_net_zero_batch_crosses_at_next_bar_open_and_places_nothing(
    alpaca_desk: Desk, fake: FakeAlpacaTrading
) -> None:
    desk = alpaca_desk
    await desk.model("a-MSFT", "MSFT")
    await desk.model("b-MSFT", "MSFT")
    await desk.send(intent("a-MSFT", "MSFT", "buy", 50, 1), intent("b-MSFT", "MSFT", "sell", 50, 1))
    await desk.bus.publish_events([bar("MSFT", 1, 200.0), bar("MSFT", 2, 201.5)])
    await desk.until(lambda: desk.filled("a-MSFT") == 50 and desk.filled("b-MSFT") == -50)
    assert [f.price for f in desk.fills["a-MSFT"] + desk.fills["b-MSFT"]] == [201.5, 201.5]
    assert fake.count("POST", "/v2/orders") == 0
    await books_equal_account(desk)


# -- the trade_updates stream -------------------------------------------------------------


async def test_duplicated_dropped_reordered_events_each_booked_once(
    alpaca_desk: Desk, fake: FakeAlpacaTrading
) -> None:
    desk = alpaca_desk
    await desk.model("m-AAPL", "AAPL")
    await desk.send(intent("m-AAPL", "AAPL", "buy", 100, 1))
    await wait_for(lambda: len(fake.orders()) == 1)
    fake.stream_duplicate(2)
    fake.fill_open(qty=30, price=100.0)  # partial, sent twice
    fake.stream_reorder()
    fake.fill_open(qty=30, price=102.0)  # held back ...
    fake.fill_open(qty=10, price=104.0)  # ... and sent after this one
    fake.stream_drop()
    fake.fill_open(price=106.0)  # the final 30 never arrive on the stream
    await desk.until(lambda: desk.filled("m-AAPL") == 100, what="the backfill books the drop")
    fills = desk.fills["m-AAPL"]
    assert sum(f.qty * f.price for f in fills) == pytest.approx(
        30 * 100.0 + 30 * 102.0 + 10 * 104.0 + 30 * 106.0
    )
    await books_equal_account(desk)


async def test_updates_of_a_finished_order_are_repeats_or_errors_never_booked(
    alpaca_desk: Desk, fake: FakeAlpacaTrading
) -> None:
    desk = alpaca_desk
    gw = desk.gateway
    await buy_10_filled(desk, fake)
    await wait_for(lambda: not gw.batches, what="the batch finishes")
    done = fake.orders()[0]
    fill = {"event": "fill", "timestamp": done["updated_at"], "order": done}
    fake.emit_raw(fill)  # the same fill told again (the stream and the sync both tell it)
    await wait_for(lambda: gw.counters["late_updates"] == 1, what="a repeat, counted")
    assert gw.counters["foreign_updates"] == 0
    fake.emit_raw({**fill, "order": {**done, "filled_qty": "15"}})  # 5 shares nobody booked
    await wait_for(lambda: gw.counters["foreign_updates"] == 1, what="an error, not a booking")
    # A desk order this process never saw (it finished before a restart): not foreign.
    fake.emit_raw({**fill, "order": {**done, "client_order_id": "gw-AAPL-1709560200-0"}})
    await wait_for(lambda: gw.counters["late_updates"] == 2, what="an earlier desk order")
    assert gw.counters["foreign_updates"] == 1
    assert desk.filled("m-AAPL") == 10 and len(desk.fills["m-AAPL"]) == 1


async def test_stream_down_holds_orders_and_backfill_makes_books_exact(
    alpaca_desk: Desk, fake: FakeAlpacaTrading
) -> None:
    desk = alpaca_desk
    await desk.model("m-AAPL", "AAPL")
    await desk.send(intent("m-AAPL", "AAPL", "buy", 10, 1))
    await wait_for(lambda: len(fake.orders()) == 1)
    fake.refuse_stream(1.0)
    fake.disconnect_stream()
    await wait_for(lambda: not desk.gateway.venue.ready, what="the gateway sees the drop")
    fake.fill_open(price=99.0)  # filled while nobody listens
    await desk.send(intent("m-AAPL", "AAPL", "sell", 10, 2))
    await asyncio.sleep(0.3)
    assert len(fake.orders()) == 1, "no order while the stream is down"
    await desk.until(lambda: desk.filled("m-AAPL") == 10, what="backfill after reconnect")
    await wait_for(lambda: len(fake.orders()) == 2, what="the held order goes out")
    fake.fill_open(price=98.0)
    await desk.until(lambda: desk.filled("m-AAPL") == 0 and len(desk.fills["m-AAPL"]) == 2)
    await books_equal_account(desk)


async def test_unknown_event_and_foreign_fill_are_reported_not_booked(
    alpaca_desk: Desk, fake: FakeAlpacaTrading
) -> None:
    desk = alpaca_desk
    await desk.model("m-AAPL", "AAPL")
    fake.emit_raw({"event": "brand_new_event", "order": fake.orders()[0] if fake.orders() else {}})
    fake.add_order("someone-else", "MSFT", "buy", 5)
    fake.fill_open(symbol="MSFT", price=200.0)
    await wait_for(
        lambda: desk.gateway.reconciliation.get("MSFT", "").startswith("foreign"),
        what="foreign position reported",
    )
    await desk.send(intent("m-AAPL", "AAPL", "buy", 10, 1))
    await wait_for(lambda: any(o["symbol"] == "AAPL" for o in fake.orders()))
    fake.fill_open(symbol="AAPL", price=100.0)
    await desk.until(lambda: desk.filled("m-AAPL") == 10)
    assert desk.gateway.account_books() == {"AAPL": 10}
    assert isinstance(desk.gateway.venue, AlpacaVenue)
    await wait_for(lambda: desk.gateway.venue.foreign_fills >= 1, what="foreign fill seen")


async def test_a_restarted_venue_tells_the_desks_earlier_fills_from_foreign_ones(
    alpaca_desk: Desk, fake: FakeAlpacaTrading
) -> None:
    desk = alpaca_desk
    await buy_10_filled(desk, fake)  # the desk's order, finished and booked
    foreign = fake.add_order("someone-else", "MSFT", "buy", 5)
    fake.fill_open(symbol="MSFT", qty=2, price=200.0)  # two fills of one foreign order
    fake.fill_open(symbol="MSFT", price=201.0)
    # A gateway restarted now: its venue knows no order, and reads the last minute's fills.
    again = alpaca_venue(fake)

    async def on_update(u: object) -> None:
        del u

    async def on_ready() -> None:
        pass

    await again.start(on_update, on_ready)
    try:
        await again.sync([])
        assert again.foreign_fills == 2  # MSFT's; the desk's own AAPL fill is not foreign
        assert fake.requests.count(("GET", f"/v2/orders/{foreign}")) == 1  # once per order
    finally:
        await again.close()


# -- desk risk --------------------------------------------------------------------------------


async def test_fourth_day_trade_refused_by_the_gateway_before_the_broker(
    fresh_bus: NatsBus, tmp_path: Path
) -> None:
    with FakeAlpacaTrading(equity=20_000.0, buying_power=20_000.0) as fake:
        fake.set_price("AAPL", 100.0)
        fake.set_price("MSFT", 50.0)
        fake.set_daytrade_count(2)
        history = BarHistory()
        desk = await start_desk(fresh_bus, alpaca_venue(fake), history, tmp_path)
        try:
            await wait_for(lambda: desk.gateway.venue.ready)
            await desk.model("m-AAPL", "AAPL")
            await desk.model("m-MSFT", "MSFT")
            await desk.send(intent("m-AAPL", "AAPL", "buy", 10, 1))
            await desk.until(lambda: desk.filled("m-AAPL") == 10)
            await desk.send(intent("m-AAPL", "AAPL", "sell", 10, 2, reason="flatten"))
            await desk.until(lambda: desk.filled("m-AAPL") == 0 and len(desk.fills["m-AAPL"]) == 2)
            posts = fake.count("POST", "/v2/orders")
            await desk.send(intent("m-MSFT", "MSFT", "buy", 10, 3))
            await desk.until(lambda: bool(desk.closed["m-MSFT"]), what="refusal reported")
            assert "pattern day trader" in desk.closed["m-MSFT"][0].message
            assert fake.count("POST", "/v2/orders") == posts, "refused before the broker"
        finally:
            await desk.close()
            await desk.gateway.shutdown()


async def test_kill_switch_refuses_openings_but_never_a_flatten(sim_desk: Desk) -> None:
    desk = sim_desk
    await desk.model("m-AAPL", "AAPL")
    await desk.send(intent("m-AAPL", "AAPL", "buy", 10, 1))
    await desk.bus.publish_events([bar("AAPL", 1, 100.0), bar("AAPL", 2, 101.0)])
    await desk.until(lambda: desk.filled("m-AAPL") == 10)
    await desk.bus.publish(kill_subject("local"), b"test kill")
    await wait_for(lambda: desk.gateway.desk.killed)
    await desk.send(intent("m-AAPL", "AAPL", "buy", 10, 2))
    await desk.until(lambda: bool(desk.closed["m-AAPL"]))
    assert "kill switch" in desk.closed["m-AAPL"][0].message
    await desk.send(intent("m-AAPL", "AAPL", "sell", 10, 3, reason="flatten"))
    await desk.bus.publish_events([bar("AAPL", 3, 102.0), bar("AAPL", 4, 103.0)])
    await desk.until(lambda: desk.filled("m-AAPL") == 0 and len(desk.fills["m-AAPL"]) == 2)
    await books_equal_account(desk)


async def test_bad_intents_refused_with_a_reason_and_nothing_lost(sim_desk: Desk) -> None:
    desk = sim_desk
    await desk.model("m-AAPL", "AAPL")
    await desk.send(intent("m-AAPL", "MSFT", "buy", 10, 1))  # not the model's symbol
    await orders.publish(desk.bus, orders.intent_subject("m-AAPL"), b"\x93garbage", "junk-1")
    forged = intent("other-model", "AAPL", "buy", 10, 1)  # on m-AAPL's subject
    await orders.publish(desk.bus, orders.intent_subject("m-AAPL"), orders.encode(forged), "f-1")
    await desk.until(lambda: len(desk.closed["m-AAPL"]) == 1)
    assert "trades AAPL, not MSFT" in desk.closed["m-AAPL"][0].message
    await wait_for(lambda: desk.gateway.counters["malformed"] == 1)
    await wait_for(lambda: desk.gateway.counters["refused"] == 2)
    await desk.send(intent("m-AAPL", "AAPL", "buy", 10, 1))  # a good one still trades
    await desk.bus.publish_events([bar("AAPL", 1, 100.0), bar("AAPL", 2, 101.0)])
    await desk.until(lambda: desk.filled("m-AAPL") == 10)
    assert desk.fills["m-AAPL"][0].price == 101.0
    await books_equal_account(desk)


async def test_desk_loss_limit_throws_the_kill_switch(fresh_bus: NatsBus, tmp_path: Path) -> None:
    history = BarHistory()
    limits = DeskLimits(daily_loss_limit=500.0)
    desk = await start_desk(
        fresh_bus, SimVenue(history, slippage_bps=0.0), history, tmp_path, limits=limits
    )
    kills: list[bytes] = []

    async def on_kill(msg: object) -> None:
        kills.append(msg.data)  # type: ignore[attr-defined]

    await fresh_bus.subscribe(kill_subject("local"), on_kill)
    try:
        await desk.model("a-AAPL", "AAPL")
        await desk.model("b-MSFT", "MSFT")
        await desk.send(intent("a-AAPL", "AAPL", "buy", 100, 1))
        await desk.send(intent("b-MSFT", "MSFT", "buy", 100, 1))
        await desk.bus.publish_events(
            [bar("AAPL", 1, 100.0), bar("MSFT", 1, 50.0), bar("AAPL", 2, 100.0),
             bar("MSFT", 2, 50.0)]
        )  # fmt: skip
        await desk.until(lambda: desk.filled("a-AAPL") == 100 and desk.filled("b-MSFT") == 100)
        await desk.bus.publish_events([bar("AAPL", 3, 96.0), bar("MSFT", 3, 48.0)])
        await wait_for(lambda: bool(kills), what="the loss limit throws the kill switch")
        assert b"desk daily loss limit" in kills[0]
        assert desk.gateway.desk.loss_breached
        # every model's flatten passes; a new opening does not
        await desk.send(intent("a-AAPL", "AAPL", "sell", 100, 3, reason="flatten"))
        await desk.send(intent("b-MSFT", "MSFT", "sell", 100, 3, reason="flatten"))
        await desk.send(intent("b-MSFT", "MSFT", "buy", 1, 4))
        await desk.bus.publish_events([bar("AAPL", 4, 96.0), bar("MSFT", 4, 48.0)])
        await desk.until(lambda: desk.filled("a-AAPL") == 0 and desk.filled("b-MSFT") == 0)
        await desk.until(lambda: bool(desk.closed["b-MSFT"]))
        assert "loss" in desk.closed["b-MSFT"][0].message
        await books_equal_account(desk)
    finally:
        await desk.close()
        await desk.gateway.shutdown()


# -- broker faults ----------------------------------------------------------------------------


async def test_broker_5xx_and_429_storm_places_one_order_and_books_it_once(
    alpaca_desk: Desk, fake: FakeAlpacaTrading
) -> None:
    desk = alpaca_desk
    await desk.model("m-AAPL", "AAPL")
    for status in (500, 429, 500, 503, 429, 500):
        fake.inject(status)
    fake.inject(500, after=True)  # stored, then the answer is lost
    await desk.send(intent("m-AAPL", "AAPL", "buy", 25, 1))
    await wait_for(lambda: len(fake.orders()) == 1, 20, "placed through the storm")
    fake.fill_open(price=100.5)
    await desk.until(lambda: desk.filled("m-AAPL") == 25, 20)
    await asyncio.sleep(0.6)  # reconciliations later: still one order, one booking
    await desk.pump()
    assert len(fake.orders()) == 1 and desk.filled("m-AAPL") == 25
    await books_equal_account(desk)


async def test_order_the_broker_refuses_closes_every_intent_of_the_batch(
    alpaca_desk: Desk, fake: FakeAlpacaTrading
) -> None:
    desk = alpaca_desk
    await desk.model("a-ZZZZ", "ZZZZ")
    await desk.model("b-ZZZZ", "ZZZZ")
    await desk.send(intent("a-ZZZZ", "ZZZZ", "buy", 10, 1), intent("b-ZZZZ", "ZZZZ", "buy", 5, 1))
    await desk.until(lambda: bool(desk.closed["a-ZZZZ"]) and bool(desk.closed["b-ZZZZ"]))
    for key in ("a-ZZZZ", "b-ZZZZ"):
        assert 'asset "ZZZZ" not found' in desk.closed[key][0].message
    assert desk.fills == {"a-ZZZZ": [], "b-ZZZZ": []} and fake.orders() == []
    assert desk.gateway.pending.get("ZZZZ", 0) == 0


async def test_a_later_bar_never_reaches_the_venue_before_an_earlier_one(
    fresh_bus: NatsBus, tmp_path: Path
) -> None:
    """Bar 1's batch waits for a silent model; bar 2's is complete at once: bar 1 goes first."""
    history = BarHistory()
    venue = SimVenue(history, slippage_bps=0.0)
    desk = await start_desk(fresh_bus, venue, history, tmp_path, batch_window_s=5.0)
    try:
        await desk.model("a-AAPL", "AAPL")
        await desk.model("b-AAPL", "AAPL")
        await desk.send(intent("a-AAPL", "AAPL", "buy", 10, 1))  # b decides no order on bar 1
        await desk.send(
            intent("a-AAPL", "AAPL", "sell", 10, 2), intent("b-AAPL", "AAPL", "buy", 5, 2)
        )
        await desk.bus.publish_events([bar("AAPL", m, 100.0 + m) for m in (1, 2, 3)])
        await desk.until(lambda: desk.filled("a-AAPL") == 0 and desk.filled("b-AAPL") == 5)
        sides = [(f.side, f.price) for f in desk.fills["a-AAPL"]]
        assert sides == [("buy", 102.0), ("sell", 103.0)]  # the sell: 5 crossed, 5 at the venue
        await books_equal_account(desk)
    finally:
        await desk.close()
        await desk.gateway.shutdown()


async def test_reconciliation_difference_halts_the_symbol_and_names_the_figures(
    alpaca_desk: Desk, fake: FakeAlpacaTrading
) -> None:
    desk = alpaca_desk
    await desk.model("m-AAPL", "AAPL")
    await desk.send(intent("m-AAPL", "AAPL", "buy", 10, 1))
    await wait_for(lambda: len(fake.orders()) == 1)
    fake.fill_open(price=100.0)
    await desk.until(lambda: desk.filled("m-AAPL") == 10)
    fake.set_position("AAPL", 15, 100.0)  # 5 shares appear that no model bought
    await wait_for(lambda: desk.gateway.reconciliation.get("AAPL", "").startswith("halted"))
    why = desk.gateway.reconciliation["AAPL"]
    assert "account holds 15" in why and "sum to 10" in why and "m-AAPL" in why
    assert desk.gateway.status().halted["AAPL"].startswith("reconciliation")
    await desk.send(intent("m-AAPL", "AAPL", "buy", 10, 2))  # opening: refused
    await desk.until(lambda: bool(desk.closed["m-AAPL"]))
    assert "halted" in desk.closed["m-AAPL"][0].message
    await desk.send(intent("m-AAPL", "AAPL", "sell", 10, 3, reason="flatten"))  # never blocked
    await wait_for(lambda: len(fake.orders()) == 2)
    fake.set_position("AAPL", 10, 100.0)  # the difference is explained: trading resumes
    fake.fill_open(price=101.0)
    await desk.until(lambda: desk.filled("m-AAPL") == 0)
    await wait_for(lambda: desk.gateway.reconciliation.get("AAPL") == "ok", what="resumed")
    assert "AAPL" not in desk.gateway.desk.halted


async def test_the_gateway_waits_for_the_market_stream_at_start(
    fresh_bus: NatsBus, tmp_path: Path
) -> None:
    await fresh_bus.delete_stream_if_exists()  # the ingest has not created MARKET yet
    history = BarHistory()
    gateway = GatewayService(fresh_bus, SimVenue(history), history, state_dir=tmp_path, fsync=False)
    starting = asyncio.create_task(gateway.start())
    await asyncio.sleep(0.5)
    assert not starting.done()
    await fresh_bus.ensure_market_stream()
    await asyncio.wait_for(starting, 10)
    try:
        assert gateway.ready.is_set()
        await fresh_bus.publish_events([bar("AAPL", 1, 100.0)])
        await wait_for(lambda: history.last("AAPL") is not None, what="bars followed")
    finally:
        await gateway.shutdown()
