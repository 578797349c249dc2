"""Positions and a model's portfolio: average price, realised and unrealised PnL, equity curve.

Pure bookkeeping driven by fills and marks; the same numbers feed risk, the journal and the
run summary, whichever broker produced the fills.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from algostack.core.orders import Fill


@dataclass
class Position:
    """A signed position in one symbol (negative = short)."""

    symbol: str
    qty: int = 0
    avg_price: float = 0.0
    """Average entry price of the open quantity (0 when flat)."""
    realised_pnl: float = 0.0
    """Gross realised PnL of closed quantity (commissions are kept by the portfolio)."""
    last_price: float = 0.0

    @property
    def unrealised_pnl(self) -> float:
        """Mark-to-market PnL of the open quantity at ``last_price``."""
        if self.qty == 0 or self.last_price == 0.0:
            return 0.0
        return (self.last_price - self.avg_price) * self.qty

    @property
    def notional(self) -> float:
        """Absolute market value at ``last_price``."""
        return abs(self.qty) * self.last_price

    def apply(self, signed_qty: int, price: float) -> float:
        """Apply an execution of ``signed_qty`` at ``price``; return the PnL it realised."""
        if signed_qty == 0:
            return 0.0
        if price <= 0:
            raise ValueError(f"{self.symbol}: fill price must be positive, got {price}")
        realised = 0.0
        if self.qty == 0 or (self.qty > 0) == (signed_qty > 0):
            total = abs(self.qty) + abs(signed_qty)
            self.avg_price = (self.avg_price * abs(self.qty) + price * abs(signed_qty)) / total
            self.qty += signed_qty
        else:
            closed = min(abs(self.qty), abs(signed_qty))
            direction = 1 if self.qty > 0 else -1
            realised = (price - self.avg_price) * closed * direction
            self.qty += signed_qty
            if self.qty == 0:
                self.avg_price = 0.0
            elif (self.qty > 0) != (direction > 0):
                self.avg_price = price  # crossed through zero: the remainder opened here
        self.realised_pnl += realised
        self.last_price = price
        return realised


@dataclass
class Portfolio:
    """One model's positions and PnL, with an equity curve and its maximum drawdown.

    Equity is ``starting_equity + realised - commissions + unrealised``. Book fills through
    ``apply_fill`` (it keeps the realised total, which ``mark`` reads every bar, up to date).
    """

    model: str
    starting_equity: float = 0.0
    positions: dict[str, Position] = field(default_factory=dict)
    commissions: float = 0.0
    peak_equity: float | None = None
    max_drawdown: float = 0.0
    """Largest fall from a previous equity peak, in currency (>= 0)."""
    last_pnl: float = field(default=0.0, init=False, compare=False)
    """Total PnL (``total_pnl``) at the last fill or mark: read it right after ``mark``."""
    _realised: float = field(default=0.0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._realised = self._sum_realised()
        self.last_pnl = self.total_pnl

    def _sum_realised(self) -> float:
        return sum(p.realised_pnl for p in self.positions.values()) - self.commissions

    def position(self, symbol: str) -> Position:
        """The position in ``symbol`` (created flat on first use)."""
        pos = self.positions.get(symbol)
        if pos is None:
            pos = self.positions[symbol] = Position(symbol)
        return pos

    def qty(self, symbol: str) -> int:
        """Signed shares held in ``symbol``."""
        pos = self.positions.get(symbol)
        return pos.qty if pos else 0

    def apply_fill(self, fill: Fill) -> float:
        """Book ``fill``; return the PnL it realised (gross of its commission)."""
        realised = self.position(fill.symbol).apply(fill.signed_qty, fill.price)
        self.commissions += fill.commission
        self._realised = self._sum_realised()
        self._record(fill.ts)
        return realised

    def mark(self, symbol: str, price: float, ts: int) -> float:
        """Mark ``symbol`` at ``price``; return the new equity."""
        if price <= 0:
            raise ValueError(f"{symbol}: mark price must be positive, got {price}")
        positions = self.positions
        pos = positions.get(symbol)
        if pos is None:
            pos = self.position(symbol)
        pos.last_price = price
        if len(positions) != 1:
            return self._record(ts)
        # One symbol (every trader): ``unrealised_pnl`` inlined, same floats.
        q = pos.qty
        return self._record_pnl(
            ts, self._realised + (0.0 + (price - pos.avg_price) * q if q else 0.0)
        )

    @property
    def realised_pnl(self) -> float:
        """Realised PnL net of commissions."""
        return self._realised

    @property
    def unrealised_pnl(self) -> float:
        """Mark-to-market PnL of every open position."""
        total = 0.0
        for p in self.positions.values():
            q = p.qty
            if q and p.last_price:
                total += (p.last_price - p.avg_price) * q
        return total

    @property
    def total_pnl(self) -> float:
        """Realised (net) plus unrealised PnL: what the daily loss limit watches."""
        return self._realised + self.unrealised_pnl

    @property
    def equity(self) -> float:
        """Current equity."""
        return self.starting_equity + (self._realised + self.unrealised_pnl)

    def _record(self, ts: int) -> float:
        return self._record_pnl(ts, self._realised + self.unrealised_pnl)

    def _record_pnl(self, ts: int, pnl: float) -> float:
        """Book the total PnL ``pnl`` at ``ts``: peak, drawdown; the equity. Nothing is kept
        per mark (a replay may mark years of bars; curves are the summary's, downsampled)."""
        self.last_pnl = pnl
        eq = self.starting_equity + pnl
        peak = self.peak_equity
        if peak is None:
            peak = self.starting_equity  # a loss from the start is a drawdown
        if eq > peak:
            peak = eq
        self.peak_equity = peak
        if peak - eq > self.max_drawdown:
            self.max_drawdown = peak - eq
        return eq
