"""Positions and portfolio PnL."""

from __future__ import annotations

import pytest

from algostack.core.orders import Fill, Side
from algostack.core.portfolio import Portfolio, Position


def _fill(side: Side, qty: int, price: float, ts: int = 1, commission: float = 0.0) -> Fill:
    return Fill(client_order_id="c", broker_order_id="b", model="m", symbol="AAPL",
                side=side, qty=qty, price=price, ts=ts, commission=commission)  # fmt: skip


def test_position_average_price_and_realised_on_partial_close() -> None:
    p = Position("AAPL")
    p.apply(10, 100.0)
    p.apply(10, 110.0)
    assert p.avg_price == pytest.approx(105.0)
    assert p.apply(-5, 120.0) == pytest.approx(75.0)
    assert p.qty == 15 and p.avg_price == pytest.approx(105.0)


def test_position_flip_opens_remainder_at_fill_price() -> None:
    p = Position("AAPL")
    p.apply(10, 100.0)
    assert p.apply(-15, 90.0) == pytest.approx(-100.0)
    assert p.qty == -5 and p.avg_price == 90.0
    p.last_price = 80.0
    assert p.unrealised_pnl == pytest.approx(50.0)  # short gains when price falls


def test_position_bad_price_refused_and_unchanged() -> None:
    p = Position("AAPL")
    with pytest.raises(ValueError, match="positive"):
        p.apply(10, 0.0)
    assert p.qty == 0


def test_portfolio_pnl_commission_equity_and_drawdown() -> None:
    pf = Portfolio("m", starting_equity=1000.0)
    pf.apply_fill(_fill(Side.BUY, 10, 100.0, ts=1, commission=1.0))
    pf.mark("AAPL", 110.0, 2)  # +100
    pf.mark("AAPL", 95.0, 3)  # -50
    assert pf.unrealised_pnl == pytest.approx(-50.0)
    assert pf.max_drawdown == pytest.approx(150.0)
    pf.apply_fill(_fill(Side.SELL, 10, 95.0, ts=4, commission=1.0))
    assert pf.realised_pnl == pytest.approx(-52.0) and pf.qty("AAPL") == 0
    assert pf.equity == pytest.approx(948.0)
    assert pf.last_pnl == pytest.approx(-52.0)


def test_portfolio_loss_from_start_counts_as_drawdown() -> None:
    pf = Portfolio("m")
    pf.apply_fill(_fill(Side.BUY, 1, 100.0))
    pf.mark("AAPL", 90.0, 2)
    assert pf.max_drawdown == pytest.approx(10.0)


def test_portfolio_cached_realised_equals_a_recount_over_two_symbols() -> None:
    pf = Portfolio("m", starting_equity=100.0)
    prices = [101.3, 99.7, 102.9, 98.1, 100.05, 103.33]
    for i, px in enumerate(prices):
        for sym, side in (("AAPL", Side.BUY if i % 2 == 0 else Side.SELL), ("MSFT", Side.BUY)):
            f = Fill(client_order_id=f"c{i}{sym}", broker_order_id="b", model="m", symbol=sym,
                     side=side, qty=3 + i, price=px, ts=i, commission=0.37)  # fmt: skip
            pf.apply_fill(f)
        pf.mark("AAPL", px + 0.5, 10 + i)
        recount = sum(p.realised_pnl for p in pf.positions.values()) - pf.commissions
        assert pf.realised_pnl == recount
        assert pf.last_pnl == pf.total_pnl
        unrealised = sum(p.unrealised_pnl for p in pf.positions.values())
        assert pf.unrealised_pnl == unrealised
        assert pf.equity == pf.starting_equity + (recount + unrealised)


def test_portfolio_single_symbol_mark_equals_general_path() -> None:
    one = Portfolio("m", starting_equity=50.0)
    two = Portfolio("m", starting_equity=50.0)
    two.position("ZZZ")  # a second, flat position sends every mark down the general path
    paths: list[list[float]] = [[], []]
    for pf, path in zip((one, two), paths, strict=True):
        pf.apply_fill(_fill(Side.BUY, 7, 100.0, ts=1, commission=0.5))
        for t, px in enumerate([101.1, 99.3, 98.7, 102.2, 100.0]):
            pf.mark("AAPL", px, 2 + t)
            path.append(pf.equity)
    assert paths[0] == paths[1]
    assert (one.peak_equity, one.max_drawdown, one.last_pnl) == (
        two.peak_equity,
        two.max_drawdown,
        two.last_pnl,
    )


def test_portfolio_bad_mark_refused_and_unchanged() -> None:
    pf = Portfolio("m")
    pf.apply_fill(_fill(Side.BUY, 1, 100.0))
    before = (pf.equity, pf.last_pnl, pf.max_drawdown)
    with pytest.raises(ValueError, match="positive"):
        pf.mark("AAPL", 0.0, 5)
    assert (pf.equity, pf.last_pnl, pf.max_drawdown) == before
    assert pf.position("AAPL").last_price == 100.0
