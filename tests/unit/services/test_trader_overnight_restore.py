"""A model that holds overnight keeps its position across a restart on a later day: the
position is rebuilt from every earlier session's journal (``carried_position``), and the
day's PnL counts the carried shares from the first price the restarted trader sees."""

from __future__ import annotations

import asyncio
from pathlib import Path

from test_trader_runner_timeframes import DAYS, minute_bars, runner_for

from algostack.core import sessions
from algostack.core.orders import Fill, Side
from algostack.services.journal import TradeJournal
from algostack.services.trader.runner import ModelRunner
from algostack.services.trader.state import carried_position


def _fill(cid: str, side: Side, qty: int, price: float, ts: int) -> Fill:
    return Fill(client_order_id=cid, broker_order_id=cid, model="m", symbol="AAPL", side=side,
                qty=qty, price=price, ts=ts)  # fmt: skip


def test_the_carried_position_is_every_earlier_session_in_order(tmp_path: Path) -> None:
    d1, d2, d3 = (d.isoformat() for d in DAYS[:3])
    for day, fills in (
        (d1, [_fill("a", Side.BUY, 5, 100.0, 1), _fill("b", Side.BUY, 5, 102.0, 2)]),
        (d2, [_fill("c", Side.SELL, 3, 110.0, 3)]),
    ):
        with TradeJournal(tmp_path, day, fsync=False) as journal:
            for f in fills:
                journal.append(f, score=0.0, latency_us=0.0, position_after=0,
                               realised_pnl=0.0, reason="signal")  # fmt: skip
    assert carried_position(tmp_path, d1, "AAPL") == (0, 0.0)  # nothing before the first
    assert carried_position(tmp_path, d2, "AAPL") == (10, 101.0)
    assert carried_position(tmp_path, d3, "AAPL") == (7, 101.0)  # a sale keeps the entry price
    assert carried_position(tmp_path, d3, "MSFT") == (0, 0.0)


def test_a_restarted_trader_on_a_later_day_holds_what_it_carried(tmp_path: Path) -> None:
    first = runner_for("1Day")  # a daily model: holds overnight, features across sessions
    first.journal_dir = tmp_path
    bars = minute_bars(DAYS[:5])

    async def trade() -> None:
        for bar in bars:
            await first.on_bar(bar)

    asyncio.run(trade())
    first.close()
    held = first.position
    assert held != 0  # the trend leaves it long overnight: the case to restore
    day = DAYS[5].isoformat()
    second = runner_for("1Day")
    second.restore(None, [], carried_position(tmp_path, day, "AAPL"))
    assert second.position == held

    # the restarted trader's first mark (a daily model marks at the close): the day's PnL
    # starts there, not at the overnight move since the entry
    async def next_day() -> None:
        for bar in minute_bars(DAYS[5:6], premarket=False):
            await second.on_bar(bar)

    asyncio.run(next_day())
    assert second.portfolio.unrealised_pnl != 0.0
    assert second.risk.daily_pnl == 0.0


def test_a_daily_model_warmed_from_earlier_sessions_decides_on_its_first_live_close() -> None:
    cold, warm = runner_for("1Day"), runner_for("1Day")
    assert warm.sessions_to_warm() == 4  # sma_ratio_2_4: four daily bars
    assert runner_for("5Min").sessions_to_warm() == 0  # its features restart each session
    bars = minute_bars(DAYS[:4])  # four sessions of an up trend
    today = sessions.new_york_day_bounds_ns(DAYS[3])[0]
    earlier, live = [b for b in bars if b.ts < today], [b for b in bars if b.ts >= today]
    used = warm.warm_history(earlier)  # what the archive holds
    assert used == 3 and warm.position == 0 and warm.day is None  # features only

    async def trade(runner: ModelRunner) -> None:
        for bar in live:
            await runner.on_bar(bar)

    asyncio.run(trade(cold))
    asyncio.run(trade(warm))
    # the warmed model decided its first live close on four daily bars (three from the
    # archive) and bought into the trend; the cold one is still warming up (one of four)
    assert warm.stats.orders == 1 and warm.pending_qty > 0
    assert cold.stats.orders == 0
