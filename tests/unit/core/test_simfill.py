"""Sim fill rules: next bar's open, slippage sign, commission."""

from __future__ import annotations

import pytest

from algostack.core.market import Bar
from algostack.core.orders import OrderIntent, Side
from algostack.core.simfill import FillRules, can_fill, fill, match, match_by_id

T = 1_704_294_000_000_000_000
M = 60_000_000_000


def bar(ts: int, open_: float = 100.0, symbol: str = "AAPL") -> Bar:
    return Bar(symbol=symbol, ts=ts, open=open_, high=open_, low=open_, close=open_, volume=1)


def intent(side: Side, qty: int = 10) -> OrderIntent:
    return OrderIntent(model="m", symbol="AAPL", side=side, qty=qty, bar_ts=T)


def test_simfill_slippage_moves_price_against_trader() -> None:
    rules = FillRules(slippage_bps=10.0)
    assert rules.price(100.0, Side.BUY) == pytest.approx(100.10)
    assert rules.price(100.0, Side.SELL) == pytest.approx(99.90)


def test_simfill_commission_per_share_with_minimum() -> None:
    rules = FillRules(commission_per_share=0.005, min_commission=1.0)
    assert rules.commission(100) == 1.0
    assert rules.commission(1000) == pytest.approx(5.0)


def test_simfill_fills_at_next_bar_open_only() -> None:
    it = intent(Side.BUY)
    assert not can_fill(it, bar(T))  # the decision bar itself (or its update)
    assert not can_fill(it, bar(T - M))
    assert not can_fill(it, bar(T + M, symbol="MSFT"))
    f = fill(it, bar(T + M, 101.0), FillRules(slippage_bps=0), "sim-1")
    assert (f.price, f.ts, f.qty, f.broker_order_id) == (101.0, T + M, 10, "sim-1")
    with pytest.raises(ValueError, match="cannot fill"):
        fill(it, bar(T), FillRules(), "sim-1")


def test_simfill_match_keeps_order_and_skips_unfillable() -> None:
    a, b = intent(Side.BUY), intent(Side.SELL, 3)
    later = OrderIntent(model="m", symbol="AAPL", side=Side.BUY, qty=1, bar_ts=T + M)
    fills = match([("1", a), ("2", later), ("3", b)], bar(T + M), FillRules())
    assert [f.broker_order_id for f in fills] == ["1", "3"]


def test_simfill_negative_costs_refused() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        FillRules(slippage_bps=-1)


def test_simfill_match_by_id_equals_match_and_reuses_the_ids() -> None:
    a, b = intent(Side.BUY), intent(Side.SELL, 3)
    later = OrderIntent(model="m", symbol="AAPL", side=Side.BUY, qty=1, bar_ts=T + M)
    book = {it.client_order_id: (oid, it) for oid, it in [("1", a), ("2", later), ("3", b)]}
    rules = FillRules(slippage_bps=2.0, commission_per_share=0.01)
    by_id = match_by_id(book, bar(T + M, 99.5), rules)
    assert by_id == match(book.values(), bar(T + M, 99.5), rules)
    assert [f.client_order_id for f in by_id] == [a.client_order_id, b.client_order_id]
