"""Where the gateway's orders execute: the ``Venue`` seam, the bar history, the simulator.

A venue places the gateway's net orders and reports each order's progress as cumulative
figures (``VenueUpdate``: shares and value filled so far, done or not). Cumulative reports
make a duplicated, reordered or lost event harmless: the gateway books only what goes
beyond what it already booked, and a look-up after a reconnect (``sync``) reports the
order as it stands. The Alpaca venue is ``alpaca_venue.py``; ``SimVenue`` fills a market
order at the open of the first bar of its symbol after its decision bar (DESIGN.md 3.4),
at the raw open: the simulated slippage and commission are applied per model by the
attribution (``venue.rules``), so each model pays what it would have paid alone.
"""

from __future__ import annotations

import bisect
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Protocol

import msgspec

from algostack.core.market import Bar
from algostack.core.orders import Side
from algostack.core.simfill import FillRules

if TYPE_CHECKING:
    from algostack.core.desk_risk import AccountView

HISTORY_BARS = 2_000
"""Bars kept per symbol: enough to fill an intent that reaches the gateway late."""


class VenueOrder(msgspec.Struct, frozen=True, kw_only=True):
    """One net market order of the gateway."""

    client_order_id: str
    symbol: str
    side: Side
    qty: int
    bar_ts: int
    """The decision bar of the batch (the simulator fills on the next bar)."""


class VenueUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """Where one order stands: cumulative shares and value filled, and whether it is done."""

    client_order_id: str
    cum_qty: int
    cum_value: float
    ts: int
    done: bool = False
    reason: str = ""
    """Why it ended short (canceled, expired, rejected ...), when ``done``."""


OnUpdate = Callable[[VenueUpdate], Awaitable[None]]


class Venue(Protocol):
    """The broker account behind the gateway."""

    name: str
    rules: FillRules
    """Slippage and commission the attribution applies per model (zero at a real broker)."""
    failure: BaseException | None
    """Set when the venue can no longer work (refused keys): the gateway stops."""

    @property
    def ready(self) -> bool:
        """True when orders may be placed (a real venue: its update stream is listening)."""
        ...

    async def start(self, on_update: OnUpdate, on_ready: Callable[[], Awaitable[None]]) -> None:
        """Connect; ``on_update`` gets every order update, ``on_ready`` each (re)connect."""
        ...

    async def place(self, order: VenueOrder) -> str:
        """Place ``order`` (idempotent per client order id); "" or the venue's refusal."""
        ...

    async def sync(self, orders: list[VenueOrder]) -> None:
        """Look these working orders up and report them through ``on_update`` (after a gap
        or a restart); place again one the venue does not hold."""
        ...

    async def on_bar(self, bar: Bar) -> None:
        """A bar the desk saw (the simulator fills on it)."""
        ...

    async def account(self) -> AccountView | None:
        """Equity, buying power and day-trade figures; None when the venue has none."""
        ...

    async def positions(self) -> dict[str, int]:
        """Signed shares per symbol held by the account."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class BarHistory:
    """The latest bars per symbol, to price an intent that arrives after its next bar."""

    def __init__(self, keep: int = HISTORY_BARS) -> None:
        self.keep = keep
        self._ts: dict[str, list[int]] = {}
        self._bars: dict[str, list[Bar]] = {}

    def add(self, bar: Bar) -> bool:
        """Keep ``bar``; False (ignored) when a bar of that start is already kept or older."""
        ts = self._ts.setdefault(bar.symbol, [])
        if ts and bar.ts <= ts[-1]:
            return False
        bars = self._bars.setdefault(bar.symbol, [])
        ts.append(bar.ts)
        bars.append(bar)
        if len(ts) > self.keep * 2:
            del ts[: self.keep], bars[: self.keep]
        return True

    def first_after(
        self, symbol: str, ts: int, accept: Callable[[int], bool] | None = None
    ) -> Bar | None:
        """The first kept bar of ``symbol`` starting after ``ts`` (and ``accept``-ed)."""
        stamps = self._ts.get(symbol)
        if not stamps:
            return None
        bars = self._bars[symbol]
        for i in range(bisect.bisect_right(stamps, ts), len(stamps)):
            if accept is None or accept(stamps[i]):
                return bars[i]
        return None

    def last(self, symbol: str) -> Bar | None:
        """The latest bar of ``symbol``."""
        bars = self._bars.get(symbol)
        return bars[-1] if bars else None


class RegularSession:
    """Is a bar start inside NYSE's regular session? (one calendar look-up per New York
    day). A market order sent outside it waits for the next open, as Alpaca queues one
    without ``extended_hours``: the simulator never fills on a pre-market or after-hours bar."""

    def __init__(self) -> None:
        self._day = (0, 0)
        self._open = (0, 0)

    def __call__(self, ts: int) -> bool:
        lo, hi = self._day
        if not lo <= ts < hi:
            from algostack.core import sessions
            from algostack.core.market import datetime_to_ts

            day = sessions.new_york_date_of_ns(ts)
            self._day = sessions.new_york_day_bounds_ns(day)
            s = sessions.session(day)
            self._open = (datetime_to_ts(s.open), datetime_to_ts(s.close)) if s else (0, 0)
        return self._open[0] <= ts < self._open[1]


class SimVenue:
    """The simulated account: deterministic fills at the next bar's open (module docstring)."""

    name = "sim"
    failure: BaseException | None = None

    def __init__(
        self,
        history: BarHistory,
        *,
        slippage_bps: float = 1.0,
        commission_per_share: float = 0.0,
        equity: float = 1_000_000.0,
    ) -> None:
        self.rules = FillRules(slippage_bps, commission_per_share)
        self.history = history
        self.equity = equity
        self._pending: dict[str, VenueOrder] = {}
        self._known: set[str] = set()
        self._positions: dict[str, int] = {}
        self._on_update: OnUpdate | None = None
        self._regular = RegularSession()

    @property
    def ready(self) -> bool:
        """Always: the simulator has no connection to lose."""
        return True

    async def start(self, on_update: OnUpdate, on_ready: Callable[[], Awaitable[None]]) -> None:
        """Remember where updates go; the simulator is ready at once."""
        self._on_update = on_update
        await on_ready()

    def hold(self, positions: Mapping[str, int]) -> None:
        """Resume holding ``positions`` (the desk's books after a restart)."""
        self._positions = {s: q for s, q in positions.items() if q}

    async def place(self, order: VenueOrder) -> str:
        """Queue ``order``; fill it at once when its next bar is already known."""
        if order.client_order_id in self._known:
            return ""
        if order.qty <= 0:
            return f"qty must be positive, got {order.qty}"
        self._known.add(order.client_order_id)
        bar = self.history.first_after(order.symbol, order.bar_ts, self._regular)
        if bar is None:
            self._pending[order.client_order_id] = order
        else:
            await self._fill(order, bar)
        return ""

    async def sync(self, orders: list[VenueOrder]) -> None:
        """Take back the orders of a restarted gateway (a restarted simulator holds none)."""
        for order in orders:
            await self.place(order)

    async def on_bar(self, bar: Bar) -> None:
        """Fill every pending order of ``bar``'s symbol decided before it, in order (on a bar
        of the regular session only)."""
        if not self._pending or not self._regular(bar.ts):
            return
        due = [o for o in self._pending.values() if o.symbol == bar.symbol and bar.ts > o.bar_ts]
        for order in due:
            del self._pending[order.client_order_id]
            await self._fill(order, bar)

    async def _fill(self, order: VenueOrder, bar: Bar) -> None:
        signed = order.qty * order.side.sign
        self._positions[order.symbol] = self._positions.get(order.symbol, 0) + signed
        assert self._on_update is not None, "start() the venue first"
        await self._on_update(
            VenueUpdate(
                client_order_id=order.client_order_id,
                cum_qty=order.qty,
                cum_value=order.qty * bar.open,
                ts=bar.ts,
                done=True,
            )
        )

    async def account(self) -> AccountView | None:
        """A simulated account with ``equity`` and as much buying power."""
        from algostack.core.desk_risk import AccountView

        return AccountView(equity=self.equity, buying_power=self.equity)

    async def positions(self) -> dict[str, int]:
        """Signed shares per symbol (flat symbols omitted)."""
        return {s: q for s, q in sorted(self._positions.items()) if q}

    async def close(self) -> None:
        """Nothing to release."""
