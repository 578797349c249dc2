"""The gateway's simulated account fills a market order at the open of the next bar of the
regular session: never on an after-hours or pre-market bar (Alpaca queues a market order
sent outside the session, without ``extended_hours``, for the next open)."""

from __future__ import annotations

import asyncio
from datetime import date

from algostack.core import sessions
from algostack.core.market import NS_PER_MIN, Bar, datetime_to_ts
from algostack.core.orders import Side
from algostack.services.gateway.venue import BarHistory, SimVenue, VenueOrder, VenueUpdate

FRI, MON = date(2024, 3, 15), date(2024, 3, 18)


def _at(day: date, minutes_from_open: int, price: float) -> Bar:
    s = sessions.session(day)
    assert s is not None
    ts = datetime_to_ts(s.open) + minutes_from_open * NS_PER_MIN
    return Bar(symbol="AAPL", ts=ts, open=price, high=price, low=price, close=price, volume=1.0)


async def _started(history: BarHistory) -> tuple[SimVenue, list[VenueUpdate]]:
    """A simulated account over ``history``, started; the updates it sends."""
    venue = SimVenue(history, slippage_bps=0.0)
    updates: list[VenueUpdate] = []

    async def on_update(u: VenueUpdate) -> None:
        updates.append(u)

    async def ready() -> None:
        return None

    await venue.start(on_update, ready)
    return venue, updates


def test_an_order_decided_at_the_close_fills_at_the_next_sessions_open() -> None:
    async def go() -> list[VenueUpdate]:
        history = BarHistory()
        venue, updates = await _started(history)
        last = _at(FRI, 389, 100.0)  # 15:59, the session's last minute
        history.add(last)
        await venue.on_bar(last)
        order = VenueOrder(client_order_id="c1", symbol="AAPL", side=Side.BUY, qty=5,
                           bar_ts=last.ts)  # fmt: skip
        assert await venue.place(order) == ""
        for bar in (_at(FRI, 390, 101.0), _at(FRI, 420, 102.0),  # after hours
                    _at(MON, -60, 103.0),  # Monday pre-market
                    _at(MON, 0, 104.0)):  # Monday 09:30  # fmt: skip
            history.add(bar)
            await venue.on_bar(bar)
        return updates

    updates = asyncio.run(go())
    assert len(updates) == 1
    assert updates[0].ts == _at(MON, 0, 0.0).ts and updates[0].cum_value == 5 * 104.0


def test_an_order_placed_after_bars_it_missed_takes_the_first_regular_one() -> None:
    async def go() -> list[VenueUpdate]:
        history = BarHistory()
        for bar in (_at(FRI, 389, 100.0), _at(FRI, 395, 101.0), _at(MON, 0, 104.0)):
            history.add(bar)
        venue, updates = await _started(history)
        order = VenueOrder(client_order_id="c2", symbol="AAPL", side=Side.SELL, qty=2,
                           bar_ts=_at(FRI, 389, 0.0).ts)  # fmt: skip
        await venue.place(order)
        return updates

    (update,) = asyncio.run(go())
    assert update.ts == _at(MON, 0, 0.0).ts and update.cum_value == 2 * 104.0
