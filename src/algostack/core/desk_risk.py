"""Desk-wide pre-trade risk for one broker account, across every model (pure; no I/O).

The desk books the account's positions from the gateway's attributed fills and refuses
OPENING intents that break a desk limit: kill switch, daily loss, a symbol halted by
reconciliation, shares per symbol, gross and net notional, buying power, and pattern day
trader protection. An intent that does not increase the account's exposure in its symbol
(position plus pending), or whose reason is ``flatten``, is always approved: the desk
never blocks a way out. State changes are ``core.risk.RiskEvent`` s with model ``desk``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Annotated, ClassVar

import msgspec

from algostack.core.bounds import NON_NEGATIVE, POSITIVE_FINITE, Bound, Bounded
from algostack.core.orders import Fill, OrderIntent, Side
from algostack.core.portfolio import Portfolio
from algostack.core.risk import RiskEvent, RiskState

DESK = "desk"


@dataclass(frozen=True)
class DeskLimits(Bounded):
    """Limits of the whole account. Amounts are in account currency and positive."""

    WHAT: ClassVar[str] = "desk limits"

    max_gross_notional: Annotated[float, POSITIVE_FINITE] = 2_000_000.0
    max_net_notional: Annotated[float, POSITIVE_FINITE] = 1_000_000.0
    max_symbol_shares: Annotated[int, Bound(1)] = 20_000
    """Account shares per symbol, all models together (position plus pending)."""
    daily_loss_limit: Annotated[float, POSITIVE_FINITE] = 25_000.0
    pdt_equity_threshold: Annotated[float, Bound(0, high_open=True)] = 25_000.0
    """Below this equity the account may make at most ``max_day_trades`` day trades."""
    max_day_trades: Annotated[int, NON_NEGATIVE] = 3
    """Day trades allowed in five business days below ``pdt_equity_threshold``."""


class AccountView(msgspec.Struct, frozen=True):
    """What the broker's account object says (Alpaca: ``equity``, ``buying_power``,
    ``pattern_day_trader``, ``daytrade_count`` over the last five business days)."""

    equity: float
    buying_power: float
    pattern_day_trader: bool = False
    daytrade_count: int = 0
    account_number: str = ""


class DeskSnapshot(msgspec.Struct, frozen=True):
    """``DeskRisk.snapshot()``: the desk's restart state."""

    positions: dict[str, tuple[int, float]] = msgspec.field(default_factory=dict)
    day_realised: float = 0.0
    opened_today: list[str] = msgspec.field(default_factory=list)
    day_trades: int = 0


class DeskVerdict(msgspec.Struct, frozen=True):
    """The desk's answer on one intent; ``reason`` says why, in one line."""

    approved: bool
    reason: str = ""


_HALTED, _ACTIVE = RiskState.HALTED, RiskState.ACTIVE


class DeskRisk:
    """Desk-wide limits over the account's positions, fed with attributed fills and marks.

    Day trades are counted as Alpaca counts them, per symbol round trip: a symbol is
    *opened today* when a fill today increases the size of its position; the first fill
    that then reduces it is one day trade (later reductions of the same shares are not),
    and a new increase starts a new round trip. A fill through zero both closes and opens.
    The count at the start of the day is the first ``AccountView`` after ``reset_day``.
    """

    def __init__(
        self, limits: DeskLimits, *, on_event: Callable[[RiskEvent], None] | None = None
    ) -> None:
        self.limits = limits
        self.portfolio = Portfolio(DESK)
        """The account's positions and PnL, booked from attributed fills."""
        self.account: AccountView | None = None
        self.killed = False
        self.loss_breached = False
        """Set when the day's PnL reaches ``-daily_loss_limit``: the gateway flattens
        everything. Cleared by ``reset_day``."""
        self.halted: dict[str, str] = {}
        """Symbol -> reason, for symbols halted (by reconciliation)."""
        self.events: list[RiskEvent] = []
        self.day: date | None = None
        self._on_event = on_event
        self._pnl_base = 0.0
        self._prices: dict[str, float] = {}
        self._now = 0
        self._opened_today: set[str] = set()
        self._day_trades = 0
        """Day trades the desk completed since ``reset_day``."""
        self._base_count: int | None = None
        """``daytrade_count`` of the first account view of the day."""
        self._day_trades_at_base = 0

    # -- state -----------------------------------------------------------------------------

    @property
    def desk_pnl(self) -> float:
        """The day's PnL: total PnL (realised net + unrealised) since ``reset_day``."""
        return self.portfolio.total_pnl - self._pnl_base

    @property
    def positions(self) -> dict[str, int]:
        """Signed account shares per symbol (open positions only)."""
        return {s: p.qty for s, p in self.portfolio.positions.items() if p.qty}

    @property
    def state(self) -> RiskState:
        """HALTED when killed or past the loss limit (only reducing intents pass)."""
        return _HALTED if self.killed or self.loss_breached else _ACTIVE

    @property
    def day_trades_used(self) -> int:
        """Day trades used in the five-day window: the broker's count or the desk's own,
        whichever is larger."""
        acct = self.account
        counted = self._day_trades - self._day_trades_at_base + (self._base_count or 0)
        return max(acct.daytrade_count if acct else 0, counted)

    @property
    def open_today(self) -> frozenset[str]:
        """Symbols opened today and still open: each needs a day trade to close today."""
        return frozenset(self._opened_today)

    @property
    def day_trades_left(self) -> int | None:
        """Day trades neither used nor needed to close symbols opened today; None when the
        equity is unknown or at least ``pdt_equity_threshold`` (no limit applies)."""
        acct = self.account
        if acct is None or acct.equity >= self.limits.pdt_equity_threshold:
            return None
        used = self.day_trades_used + len(self._opened_today)
        return max(0, self.limits.max_day_trades - used)

    # -- feeds -----------------------------------------------------------------------------

    def on_fill(self, fill: Fill) -> None:
        """Book an attributed fill in the account's positions and the day-trade count."""
        sym = fill.symbol
        before = self.portfolio.qty(sym)
        self.portfolio.apply_fill(fill)
        after = before + fill.signed_qty
        self._prices[sym] = fill.price
        self._now = max(self._now, fill.ts)
        flipped = before != 0 and after != 0 and (before > 0) != (after > 0)
        if before != 0 and (abs(after) < abs(before) or flipped) and sym in self._opened_today:
            self._opened_today.discard(sym)  # closes a round trip opened today
            self._day_trades += 1
        if after != 0 and (abs(after) > abs(before) or flipped):
            self._opened_today.add(sym)
        self._watch_loss(fill.ts)

    def on_mark(self, symbol: str, price: float, ts: int) -> None:
        """Mark ``symbol`` at ``price``; crossing the loss limit fires one event."""
        self.portfolio.mark(symbol, price, ts)
        self._prices[symbol] = price
        self._now = max(self._now, ts)
        self._watch_loss(ts)

    def on_account(self, view: AccountView) -> None:
        """Take the broker's account figures (equity, buying power, day-trade count)."""
        self.account = view
        if self._base_count is None:
            self._base_count = view.daytrade_count
            self._day_trades_at_base = self._day_trades

    def snapshot(self) -> DeskSnapshot:
        """What a restart needs: positions at their average prices, the day's PnL so far
        net of the open positions' unrealised part, and the symbols opened today."""
        return DeskSnapshot(
            positions={
                s: (p.qty, p.avg_price) for s, p in sorted(self.portfolio.positions.items())
                if p.qty
            },
            day_realised=self.desk_pnl - self.portfolio.unrealised_pnl,
            opened_today=sorted(self._opened_today),
            day_trades=self._day_trades,
        )  # fmt: skip

    def restore(self, snap: DeskSnapshot) -> None:
        """Resume from ``snapshot()`` (call after ``reset_day`` of the same day): the day's
        loss limit and day-trade bookkeeping go on where they were."""
        for sym, (qty, avg) in snap.positions.items():
            if qty and avg > 0:
                self.portfolio.apply_fill(
                    Fill(
                        client_order_id="restored", broker_order_id="restored", model=DESK,
                        symbol=sym, side=Side.BUY if qty > 0 else Side.SELL, qty=abs(qty),
                        price=avg, ts=0,
                    )
                )  # fmt: skip
                self._prices[sym] = avg
        self._pnl_base = self.portfolio.total_pnl - snap.day_realised
        self._opened_today = set(snap.opened_today)
        self._day_trades = snap.day_trades

    def reset_day(self, day: date) -> None:
        """Start trading day ``day``: PnL baseline, loss flag and day-trade bookkeeping.

        A kill stays thrown. Positions carried over are not opened today. The day's starting
        day-trade count is taken from the next ``on_account``.
        """
        self.day = day
        self._pnl_base = self.portfolio.total_pnl
        self._opened_today.clear()
        self._day_trades = 0
        self._base_count = None
        self._day_trades_at_base = 0
        if self.loss_breached:
            self.loss_breached = False
            self._record("state", _HALTED, f"new trading day {day.isoformat()}")

    def kill(self, reason: str) -> None:
        """The kill switch: no opening intent passes (flattening still does) until a new
        ``DeskRisk`` is made; ``reset_day`` does not lift it."""
        frm = self.state
        self.killed = True
        self._record("kill", frm, f"kill switch: {reason}")

    def halt(self, symbol: str, reason: str) -> None:
        """Refuse opening intents in ``symbol`` until ``resume``."""
        if self.halted.get(symbol) != reason:
            self.halted[symbol] = reason
            self._record("halt", self.state, f"{symbol} halted: {reason}", symbol)

    def resume(self, symbol: str) -> None:
        """Lift a ``halt`` of ``symbol``."""
        if self.halted.pop(symbol, None) is not None:
            self._record("resume", self.state, f"{symbol} resumed", symbol)

    # -- check -----------------------------------------------------------------------------

    def check(
        self, intent: OrderIntent, *, pending: Mapping[str, int], price: float
    ) -> DeskVerdict:
        """Approve or refuse ``intent``; ``pending`` holds the signed shares already accepted
        and not yet filled per symbol, ``price`` this symbol's latest price.

        Reducing intents always pass. Opening ones are refused, first reason wins: kill
        switch, loss limit, halted symbol, shares per symbol, gross notional, net notional
        (only when the intent takes the net above the cap or further above it), buying
        power (buys), pattern day trader protection.
        """
        sym = intent.symbol
        if intent.qty <= 0:
            return DeskVerdict(False, f"order quantity must be positive, got {intent.qty}")
        signed = intent.qty * Side(intent.side).sign
        exposure = self.portfolio.qty(sym) + pending.get(sym, 0)
        after = exposure + signed
        if intent.reason == "flatten":
            return DeskVerdict(True, "flatten: always allowed")
        if abs(after) <= abs(exposure):
            return DeskVerdict(True, "reduces exposure")

        if self.killed:
            return DeskVerdict(False, f"desk {self._last_reason('kill')}")
        if self.loss_breached:
            limit = self.limits.daily_loss_limit
            return DeskVerdict(
                False,
                f"desk daily loss limit breached: PnL {self.desk_pnl:,.2f} "
                f"(limit -{limit:,.2f}); only reducing orders allowed",
            )
        if sym in self.halted:
            return DeskVerdict(False, f"{sym} halted: {self.halted[sym]}")
        if not 0.0 < price < math.inf:  # also False for NaN
            return DeskVerdict(False, f"no valid price for {sym} (got {price})")
        self._prices[sym] = price

        cap = self.limits.max_symbol_shares
        if abs(after) > cap:
            return DeskVerdict(
                False,
                f"desk shares cap: {sym} would be {after:+,} shares (position "
                f"{self.portfolio.qty(sym):+,}, pending {pending.get(sym, 0):+,}), "
                f"cap {cap:,}",
            )

        gross, net, pending_buys = self._notionals(pending, sym, price)
        new_gross = gross + (abs(after) - abs(exposure)) * price
        if new_gross > self.limits.max_gross_notional:
            return DeskVerdict(
                False,
                f"desk gross notional would be ${new_gross:,.0f} "
                f"(cap ${self.limits.max_gross_notional:,.0f})",
            )
        new_net = net + signed * price
        if abs(new_net) > self.limits.max_net_notional and abs(new_net) > abs(net):
            return DeskVerdict(
                False,
                f"desk net notional would be ${new_net:,.0f} "
                f"(cap ${self.limits.max_net_notional:,.0f})",
            )

        acct = self.account
        if acct is not None and signed > 0:
            need = intent.qty * price + pending_buys
            if need > acct.buying_power:
                return DeskVerdict(
                    False,
                    f"buying power: buy of {intent.qty:,} {sym} at {price:,.2f} "
                    f"(${intent.qty * price:,.0f}) plus pending buys ${pending_buys:,.0f} "
                    f"exceeds ${acct.buying_power:,.0f}",
                )

        if (
            acct is not None
            and acct.equity < self.limits.pdt_equity_threshold
            and sym not in self._opened_today
        ):
            used, open_n = self.day_trades_used, len(self._opened_today)
            most = self.limits.max_day_trades
            if used + open_n + 1 > most:
                return DeskVerdict(
                    False,
                    f"pattern day trader protection: {used} of {most} day trades used in 5 "
                    f"days, {open_n} symbols open today; an opening order in {sym} could not "
                    f"be closed today (equity ${acct.equity:,.0f} < "
                    f"${self.limits.pdt_equity_threshold:,.0f})",
                )
        return DeskVerdict(True, "within desk limits")

    # -- helpers ---------------------------------------------------------------------------

    def _notionals(
        self, pending: Mapping[str, int], sym: str, price: float
    ) -> tuple[float, float, float]:
        """Gross and net notional of position + pending, and pending buys' notional."""
        gross = net = buys = 0.0
        symbols = set(pending) | {s for s, p in self.portfolio.positions.items() if p.qty}
        symbols.add(sym)
        for s in symbols:
            px = price if s == sym else self._prices.get(s, 0.0)
            pend = pending.get(s, 0)
            exposure = self.portfolio.qty(s) + pend
            gross += abs(exposure) * px
            net += exposure * px
            if pend > 0:
                buys += pend * px
        return gross, net, buys

    def _watch_loss(self, ts: int) -> None:
        limit = self.limits.daily_loss_limit
        pnl = self.desk_pnl
        if not self.loss_breached and pnl <= -limit:
            frm = self.state
            self.loss_breached = True
            self._record(
                "state", frm, f"desk daily loss {-pnl:,.2f} reached limit {limit:,.2f}", ts=ts
            )

    def _last_reason(self, kind: str) -> str:
        for ev in reversed(self.events):
            if ev.kind == kind:
                return ev.reason
        return ""

    def _record(
        self, kind: str, frm: RiskState, reason: str, symbol: str = "", ts: int | None = None
    ) -> None:
        ev = RiskEvent(
            ts=self._now if ts is None else ts,
            model=DESK,
            kind=kind,
            from_state=frm,
            to_state=self.state,
            reason=reason,
            symbol=symbol,
        )
        self.events.append(ev)
        if self._on_event is not None:
            self._on_event(ev)
