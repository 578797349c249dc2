"""Desk risk: every refusal reason in order, never blocking a way out, day-trade counting."""

from __future__ import annotations

import math
from datetime import date

import pytest

from algostack.core.desk_risk import AccountView, DeskLimits, DeskRisk, DeskVerdict
from algostack.core.orders import Fill, OrderIntent, Side
from algostack.core.risk import RiskEvent, RiskState
from algostack.errors import ConfigError

BAR = 1_704_300_000_000_000_000
DAY = date(2024, 1, 3)
SMALL = AccountView(equity=20_000.0, buying_power=40_000.0)
BIG = AccountView(equity=100_000.0, buying_power=1_000_000.0)


def intent(
    qty: int,
    side: Side = Side.BUY,
    symbol: str = "AAPL",
    model: str = "m1",
    reason: str = "signal",
) -> OrderIntent:
    return OrderIntent(model=model, symbol=symbol, side=side, qty=qty, bar_ts=BAR, reason=reason)


def fill(qty: int, side: Side, price: float, symbol: str = "AAPL", ts: int = BAR) -> Fill:
    return Fill(
        client_order_id="c",
        broker_order_id="b",
        model="m1",
        symbol=symbol,
        side=side,
        qty=qty,
        price=price,
        ts=ts,
    )


def desk(**kw: float) -> tuple[DeskRisk, list[RiskEvent]]:
    events: list[RiskEvent] = []
    d = DeskRisk(DeskLimits(**kw), on_event=events.append)  # type: ignore[arg-type]
    d.reset_day(DAY)
    return d, events


def check(d: DeskRisk, it: OrderIntent, price: float = 100.0, **pending: int) -> DeskVerdict:
    return d.check(it, pending=pending, price=price)


def round_trip(d: DeskRisk, symbol: str, price: float = 10.0) -> None:
    d.on_fill(fill(10, Side.BUY, price, symbol))
    d.on_fill(fill(10, Side.SELL, price, symbol))


# -- limits ------------------------------------------------------------------------------


def test_desk_limits_validate_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"max_gross_notional=0\.0 .*; max_day_trades=-1"):
        DeskLimits(max_gross_notional=0.0, max_day_trades=-1)
    with pytest.raises(ConfigError, match=r"max_symbol_shares=0 \(must be >= 1\)"):
        DeskLimits(max_symbol_shares=0)
    with pytest.raises(ConfigError, match="pdt_equity_threshold"):
        DeskLimits(pdt_equity_threshold=-1.0)
    for cap in (math.inf, math.nan):  # the desk's caps are real amounts: no NaN, no "no cap"
        with pytest.raises(
            ConfigError, match=r"max_net_notional=(inf|nan) \(must be > 0, finite\)"
        ):
            DeskLimits(max_net_notional=cap)
    assert DeskLimits().max_day_trades == 3


# -- approvals ---------------------------------------------------------------------------


def test_desk_within_limits_approves() -> None:
    d, _ = desk()
    v = check(d, intent(100))
    assert v.approved and v.reason == "within desk limits"


def test_desk_bad_quantity_refused() -> None:
    d, _ = desk()
    assert "positive" in check(d, intent(0)).reason


def test_desk_reducing_pending_or_position_approved() -> None:
    d, _ = desk(max_symbol_shares=100)
    d.on_fill(fill(100, Side.BUY, 10.0))
    d.kill("test")
    assert check(d, intent(60, Side.SELL)).approved
    assert check(d, intent(200, Side.SELL)).approved  # +100 -> -100: abs does not grow
    assert not check(d, intent(201, Side.SELL)).approved
    # pending counts: +100 held and -150 pending is -50, so a buy of 50 reduces
    assert check(d, intent(50), AAPL=-150).approved
    assert not check(d, intent(50), AAPL=-50).approved


@pytest.mark.parametrize("blocker", ["kill", "loss", "halt", "pdt", "caps"])
def test_desk_never_blocks_a_flatten(blocker: str) -> None:
    d, _ = desk(max_symbol_shares=10, max_gross_notional=1.0, max_net_notional=1.0)
    d.on_account(SMALL)
    for s in ("A", "B", "C"):
        round_trip(d, s)
    if blocker == "kill":
        d.kill("operator")
    elif blocker == "loss":
        d.on_fill(fill(10, Side.BUY, 5_000.0, "LOSS"))
        d.on_mark("LOSS", 1.0, BAR + 1)
        assert d.loss_breached
    elif blocker == "halt":
        d.halt("AAPL", "reconciliation mismatch")
    assert not check(d, intent(500, Side.SELL)).approved
    # A model flattening its own book may even grow the account's exposure.
    v = check(d, intent(500, Side.SELL, reason="flatten"))
    assert v.approved and "flatten" in v.reason


# -- refusals in order -------------------------------------------------------------------


def test_desk_kill_switch_refuses_opening_and_fires_one_event() -> None:
    d, events = desk()
    d.kill("operator pressed the button")
    v = check(d, intent(1))
    assert not v.approved and v.reason == "desk kill switch: operator pressed the button"
    assert [(e.kind, e.from_state, e.to_state) for e in events] == [
        ("kill", RiskState.ACTIVE, RiskState.HALTED)
    ]
    d.reset_day(date(2024, 1, 4))
    assert d.killed and not check(d, intent(1)).approved


def test_desk_loss_limit_crossing_emits_one_event_and_refuses() -> None:
    d, events = desk(daily_loss_limit=1_000.0)
    d.on_fill(fill(100, Side.BUY, 100.0))
    d.on_mark("AAPL", 95.0, BAR + 1)  # -500
    assert not d.loss_breached and events == []
    d.on_mark("AAPL", 90.0, BAR + 2)  # -1000: crosses
    d.on_mark("AAPL", 80.0, BAR + 3)
    d.on_mark("AAPL", 99.0, BAR + 4)  # back above: stays breached for the day
    assert d.loss_breached and d.state is RiskState.HALTED
    assert len(events) == 1
    ev = events[0]
    assert (ev.kind, ev.model, ev.ts, ev.to_state) == ("state", "desk", BAR + 2, RiskState.HALTED)
    assert "desk daily loss 1,000.00 reached limit 1,000.00" in ev.reason
    v = check(d, intent(1, symbol="MSFT"))
    assert not v.approved
    assert v.reason.startswith("desk daily loss limit breached: PnL -100.00 (limit -1,000.00)")
    d.reset_day(date(2024, 1, 4))
    assert not d.loss_breached and d.desk_pnl == 0.0 and check(d, intent(1)).approved
    assert events[-1].to_state is RiskState.ACTIVE


def test_desk_pnl_measured_from_start_of_day() -> None:
    d, _ = desk(daily_loss_limit=1_000.0)
    d.on_fill(fill(100, Side.BUY, 100.0))
    d.on_mark("AAPL", 80.0, BAR + 1)  # -2000 on day one
    d.reset_day(date(2024, 1, 4))
    d.on_mark("AAPL", 75.0, BAR + 2)
    assert d.desk_pnl == pytest.approx(-500.0) and not d.loss_breached


def test_desk_halted_symbol_refused_until_resume() -> None:
    d, events = desk()
    d.halt("AAPL", "reconciliation: broker 100, books 90")
    d.halt("AAPL", "reconciliation: broker 100, books 90")  # no second event
    v = check(d, intent(1))
    assert not v.approved and v.reason == "AAPL halted: reconciliation: broker 100, books 90"
    assert check(d, intent(1, symbol="MSFT")).approved
    assert d.halted == {"AAPL": "reconciliation: broker 100, books 90"}
    d.resume("AAPL")
    d.resume("AAPL")
    assert check(d, intent(1)).approved
    assert [(e.kind, e.symbol) for e in events] == [("halt", "AAPL"), ("resume", "AAPL")]


def test_desk_invalid_price_refuses_opening() -> None:
    d, _ = desk()
    assert "no valid price" in check(d, intent(1), price=float("nan")).reason


def test_desk_symbol_share_cap_counts_position_and_pending() -> None:
    d, _ = desk(max_symbol_shares=1_000)
    d.on_fill(fill(600, Side.BUY, 10.0))
    assert check(d, intent(200), AAPL=200).approved
    v = check(d, intent(201), AAPL=200)
    assert not v.approved
    assert v.reason == (
        "desk shares cap: AAPL would be +1,001 shares (position +600, pending +200), cap 1,000"
    )
    assert not check(d, intent(1_001, Side.SELL, symbol="MSFT")).approved


def test_desk_gross_notional_summed_across_symbols() -> None:
    d, _ = desk(max_gross_notional=100_000.0, max_net_notional=1e9)
    d.on_fill(fill(300, Side.BUY, 100.0, "AAPL"))  # 30k
    d.on_fill(fill(200, Side.SELL, 100.0, "MSFT"))  # 20k short
    d.on_mark("MSFT", 150.0, BAR + 1)  # latest mark: 30k
    # 30k + 30k + pending TSLA 100 @ (checked at) 200 = 20k -> 80k; 100 NVDA @ 200 -> 100k
    assert check(d, intent(100, symbol="TSLA"), price=200.0).approved
    assert check(d, intent(100, symbol="NVDA"), price=200.0, TSLA=100).approved
    v = check(d, intent(101, symbol="NVDA"), price=200.0, TSLA=100)
    assert not v.approved
    assert v.reason == "desk gross notional would be $100,200 (cap $100,000)"
    # the symbol itself is valued at this intent's price
    assert not check(d, intent(1, symbol="AAPL"), price=400.0).approved


def test_desk_net_notional_cap_but_hedges_pass() -> None:
    d, _ = desk(max_net_notional=50_000.0)
    d.on_fill(fill(400, Side.BUY, 100.0, "AAPL"))  # +40k
    d.on_fill(fill(100, Side.BUY, 50.0, "MSFT"))  # +5k
    assert check(d, intent(50, symbol="TSLA")).approved  # 50k
    v = check(d, intent(51, symbol="TSLA"))
    assert not v.approved and v.reason == "desk net notional would be $50,100 (cap $50,000)"
    d2, _ = desk(max_net_notional=10_000.0)
    d2.on_fill(fill(400, Side.BUY, 100.0, "AAPL"))  # already above the cap
    assert check(d2, intent(50, Side.SELL, symbol="TSLA")).approved  # a short hedge lowers it
    assert not check(d2, intent(1, symbol="TSLA")).approved


def test_desk_buying_power_counts_pending_buys() -> None:
    d, _ = desk()
    d.on_account(AccountView(equity=100_000.0, buying_power=50_000.0))
    d.on_fill(fill(10, Side.BUY, 100.0, "MSFT"))
    assert check(d, intent(300), price=100.0, MSFT=100).approved  # 30k + 10k pending
    v = check(d, intent(300), price=100.0, MSFT=201)
    assert not v.approved
    assert v.reason == (
        "buying power: buy of 300 AAPL at 100.00 ($30,000) plus pending buys $20,100 "
        "exceeds $50,000"
    )
    assert check(d, intent(300, Side.SELL), price=100.0, MSFT=201).approved  # buys only


def test_desk_buying_power_unknown_account_not_checked() -> None:
    d, _ = desk()
    assert check(d, intent(10_000), price=100.0).approved


# -- pattern day trader ------------------------------------------------------------------


def test_desk_counts_one_day_trade_per_round_trip() -> None:
    d, _ = desk()
    d.on_account(SMALL)
    d.on_fill(fill(10, Side.BUY, 10.0))
    d.on_fill(fill(5, Side.BUY, 10.0))
    assert d.open_today == {"AAPL"} and d.day_trades_used == 0
    d.on_fill(fill(5, Side.SELL, 10.0))  # the closing order: one day trade
    d.on_fill(fill(10, Side.SELL, 10.0))  # the rest of the same shares
    assert d.day_trades_used == 1 and d.open_today == frozenset()
    d.on_fill(fill(10, Side.SELL, 10.0))  # opens a short: a new round trip
    d.on_fill(fill(20, Side.BUY, 10.0))  # flips: closes it (2) and opens a long
    assert d.day_trades_used == 2 and d.open_today == {"AAPL"}
    assert d.day_trades_left == 0


def test_desk_overnight_position_reduced_is_no_day_trade() -> None:
    d, _ = desk()
    d.on_fill(fill(10, Side.BUY, 10.0))
    d.reset_day(date(2024, 1, 4))
    d.on_account(SMALL)
    d.on_fill(fill(5, Side.SELL, 10.0))
    assert d.day_trades_used == 0 and d.open_today == frozenset()
    assert d.day_trades_left == 3


def test_desk_fourth_day_trade_refused_before_it_happens() -> None:
    d, _ = desk()
    d.on_account(SMALL)
    for s in ("A", "B", "C"):
        assert check(d, intent(10, symbol=s), price=10.0).approved
        round_trip(d, s)
    assert d.day_trades_used == 3 and d.day_trades_left == 0
    v = check(d, intent(10, symbol="AAPL"), price=10.0)
    assert not v.approved
    assert v.reason == (
        "pattern day trader protection: 3 of 3 day trades used in 5 days, 0 symbols open "
        "today; an opening order in AAPL could not be closed today "
        "(equity $20,000 < $25,000)"
    )


def test_desk_open_symbols_reserve_their_closing_day_trade() -> None:
    d, _ = desk()
    d.on_account(AccountView(equity=20_000.0, buying_power=40_000.0, daytrade_count=1))
    d.on_fill(fill(10, Side.BUY, 10.0, "A"))  # opened today, still open: needs trade 2
    assert check(d, intent(10, symbol="B"), price=10.0).approved  # would need trade 3
    d.on_fill(fill(10, Side.BUY, 10.0, "B"))
    assert d.day_trades_left == 0
    v = check(d, intent(10, symbol="C"), price=10.0)
    assert not v.approved and "1 of 3 day trades used in 5 days, 2 symbols open today" in v.reason
    assert check(d, intent(10, symbol="A"), price=10.0).approved  # adding: no extra trade
    assert check(d, intent(10, Side.SELL, symbol="A"), price=10.0).approved  # closing


def test_desk_day_trades_used_is_broker_or_own_count_whichever_larger() -> None:
    d, _ = desk()
    d.on_account(AccountView(equity=20_000.0, buying_power=40_000.0, daytrade_count=1))
    round_trip(d, "A")
    round_trip(d, "B")
    d.on_account(AccountView(equity=20_000.0, buying_power=40_000.0, daytrade_count=1))
    assert d.day_trades_used == 3  # broker's view is stale: 1 at the start + 2 today
    d.on_account(AccountView(equity=20_000.0, buying_power=40_000.0, daytrade_count=3))
    assert d.day_trades_used == 3  # now it agrees: not counted twice
    assert not check(d, intent(1, symbol="C"), price=10.0).approved


def test_desk_day_trades_of_the_day_before_first_account_view_counted_once() -> None:
    d, _ = desk()
    round_trip(d, "A")  # before the first view of the day
    d.on_account(AccountView(equity=20_000.0, buying_power=40_000.0, daytrade_count=1))
    assert d.day_trades_used == 1


def test_desk_pdt_only_below_the_equity_threshold() -> None:
    d, _ = desk()
    assert d.day_trades_left is None
    d.on_account(BIG)
    for s in ("A", "B", "C", "D"):
        round_trip(d, s)
    assert d.day_trades_left is None and check(d, intent(1), price=10.0).approved


def test_desk_positions_and_pnl() -> None:
    d, _ = desk()
    d.on_fill(fill(10, Side.BUY, 10.0, "A"))
    d.on_fill(fill(5, Side.SELL, 20.0, "B"))
    round_trip(d, "C")
    assert d.positions == {"A": 10, "B": -5}
    d.on_mark("A", 11.0, BAR + 1)
    assert d.desk_pnl == pytest.approx(10.0)


def test_snapshot_and_restore_keep_the_day_pnl_positions_and_day_trades() -> None:
    d, _ = desk()
    d.on_account(AccountView(equity=20_000.0, buying_power=20_000.0, daytrade_count=1))
    round_trip(d, "MSFT")  # one day trade
    d.on_fill(fill(10, Side.BUY, 100.0))  # AAPL opened today, still open
    d.on_fill(fill(5, Side.SELL, 50.0, symbol="XYZ"))
    d.on_mark("AAPL", 90.0, BAR)
    before = (d.desk_pnl, d.positions, d.day_trades_left)
    again, _ = desk()
    again.on_account(AccountView(equity=20_000.0, buying_power=20_000.0, daytrade_count=1))
    again.restore(d.snapshot())
    again.on_mark("AAPL", 90.0, BAR)
    assert again.desk_pnl == pytest.approx(before[0])
    assert (again.positions, again.day_trades_left) == before[1:]
    assert again.open_today == d.open_today == frozenset({"AAPL", "XYZ"})
