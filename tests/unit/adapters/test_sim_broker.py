"""SimBroker: next-bar fills, idempotent submits, determinism, reconciliation."""

from __future__ import annotations

import pytest

from algostack.adapters.broker import SimBroker
from algostack.core.market import Bar
from algostack.core.orders import Fill, OrderIntent, OrderStatus, Side

T = 1_704_294_000_000_000_000
M = 60_000_000_000


def bar(ts: int, open_: float, symbol: str = "AAPL") -> Bar:
    return Bar(symbol=symbol, ts=ts, open=open_, high=open_ + 1, low=open_ - 1,
               close=open_, volume=100)  # fmt: skip


def intent(side: Side, qty: int, bar_ts: int = T, symbol: str = "AAPL") -> OrderIntent:
    return OrderIntent(model="m", symbol=symbol, side=side, qty=qty, bar_ts=bar_ts)


async def test_sim_market_order_fills_at_next_bar_open_with_costs() -> None:
    b = SimBroker(slippage_bps=5.0, commission_per_share=0.01)
    ack = await b.submit(intent(Side.BUY, 10))
    assert ack.status is OrderStatus.ACCEPTED and ack.broker_order_id == "sim-00000001"
    assert await b.on_bar(bar(T, 99.0)) == []  # same bar: no fill
    fills = await b.on_bar(bar(T + M, 100.0))
    assert len(fills) == 1
    assert fills[0].price == pytest.approx(100.05) and fills[0].commission == pytest.approx(0.10)
    assert await b.positions() == {"AAPL": 10}
    assert await b.open_orders() == []


async def test_sim_sell_slippage_lowers_price() -> None:
    b = SimBroker(slippage_bps=5.0)
    await b.submit(intent(Side.SELL, 4))
    (f,) = await b.on_bar(bar(T + M, 100.0))
    assert f.price == pytest.approx(99.95)
    assert await b.positions() == {"AAPL": -4}


async def test_sim_no_next_bar_no_fill_and_order_stays_open() -> None:
    b = SimBroker()
    await b.submit(intent(Side.BUY, 10))
    assert await b.on_bar(bar(T + M, 50.0, symbol="MSFT")) == []
    assert [o.qty for o in await b.open_orders()] == [10]
    assert await b.positions() == {}


async def test_sim_duplicate_submit_places_nothing_new() -> None:
    b = SimBroker()
    first = await b.submit(intent(Side.BUY, 10))
    again = await b.submit(intent(Side.BUY, 10))
    assert again.duplicate and again.broker_order_id == first.broker_order_id
    fills = await b.on_bar(bar(T + M, 100.0))
    assert len(fills) == 1
    after = await b.submit(intent(Side.BUY, 10))
    assert after.duplicate and after.status is OrderStatus.FILLED
    assert await b.on_bar(bar(T + 2 * M, 100.0)) == []
    assert await b.positions() == {"AAPL": 10}


async def test_sim_bad_qty_rejected_with_message_and_nothing_queued() -> None:
    b = SimBroker()
    ack = await b.submit(intent(Side.BUY, 0))
    assert not ack.accepted and "positive" in ack.message
    assert await b.open_orders() == []


async def test_sim_cancel_and_closed_broker_refuses() -> None:
    b = SimBroker()
    ack = await b.submit(intent(Side.BUY, 1))
    assert await b.cancel(ack.client_order_id) and not await b.cancel(ack.client_order_id)
    await b.close()
    late = await b.submit(intent(Side.SELL, 1, bar_ts=T + M))
    assert not late.accepted and "closed" in late.message


async def _run_session() -> list[Fill]:
    b = SimBroker(slippage_bps=2.0, commission_per_share=0.005)
    out: list[Fill] = []
    for i in range(50):
        ts = T + i * M
        for sym, px in (("AAPL", 100.0 + i), ("MSFT", 300.0 - i)):
            out += await b.on_bar(bar(ts, px, symbol=sym))
            side = Side.BUY if (i + len(sym)) % 3 else Side.SELL
            await b.submit(intent(side, 1 + i % 4, bar_ts=ts, symbol=sym))
    return out


async def test_sim_same_input_same_fills() -> None:
    a, b = await _run_session(), await _run_session()
    assert a == b and len(a) == 98


async def test_sim_restore_reopens_orders_positions_and_numbering() -> None:
    first = SimBroker(0.0, model="m")
    await first.submit(intent(Side.BUY, 10))
    await first.submit(intent(Side.SELL, 4, bar_ts=T - M))
    assert first.seq == 2
    pending = [(o.broker_order_id, intent(o.side, o.qty, T if o.side is Side.BUY else T - M))
               for o in await first.open_orders()]  # fmt: skip

    second = SimBroker(0.0, model="m")  # the restarted trader's broker
    second.restore_state(pending, {"AAPL": 6, "MSFT": 0}, first.seq)
    assert second.seq == 2 and await second.positions() == {"AAPL": 6}
    assert [o.broker_order_id for o in await second.open_orders()] == ["sim-00000001",
                                                                       "sim-00000002"]  # fmt: skip
    again = await second.submit(intent(Side.BUY, 10))
    assert again.duplicate and again.broker_order_id == "sim-00000001"
    fills = await second.on_bar(bar(T + M, 100.0))
    assert [(f.broker_order_id, f.signed_qty) for f in fills] == [("sim-00000001", 10),
                                                                  ("sim-00000002", -4)]  # fmt: skip
    assert await second.positions() == {"AAPL": 12}
    new = await second.submit(intent(Side.BUY, 1, bar_ts=T + M))
    assert new.broker_order_id == "sim-00000003"


async def test_sim_restore_never_moves_numbering_backwards() -> None:
    b = SimBroker()
    for k in range(3):
        await b.submit(intent(Side.BUY, 1, bar_ts=T + k * M))
    b.restore_state([], {}, 1)
    assert b.seq == 3


@pytest.mark.parametrize(
    ("pending", "seq", "match"),
    [
        ([("sim-1", intent(Side.BUY, 0))], 1, "positive"),
        ([("sim-1", intent(Side.BUY, 5)), ("sim-1", intent(Side.SELL, 5))], 1, "given to"),
        ([], -1, ">= 0"),
    ],
)
async def test_sim_restore_bad_input_refused_and_nothing_changed(
    pending: list[tuple[str, OrderIntent]], seq: int, match: str
) -> None:
    b = SimBroker()
    await b.submit(intent(Side.BUY, 2, bar_ts=T - M))
    before = (await b.open_orders(), await b.positions(), b.seq)
    with pytest.raises(ValueError, match=match):
        b.restore_state(pending, {"AAPL": 99}, seq)
    assert (await b.open_orders(), await b.positions(), b.seq) == before
