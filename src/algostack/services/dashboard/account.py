"""The account panel's view model: the execution gateway's ``DeskStatus`` as the desk sees it.

Pure, like ``aggregate.py``: ``account_view`` turns the latest status and when it *arrived* (the
dashboard's clock) into an ``AccountView`` at ``now_ns``. The gateway publishes every second,
so a status older than ``HealthPolicy.gateway_silent_after_s`` means the gateway is SILENT
and everything else in the view is only its last word.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from algostack.core.events import DeskStatus
from algostack.core.market import NS_PER_S

HALTED_PREFIX = "halted:"
FOREIGN_PREFIX = "foreign:"
NOT_CHECKED = "not checked"


@dataclass(frozen=True)
class AccountRow:
    """One symbol: the account's net shares, each model's book and the reconciliation."""

    symbol: str
    account: int
    books: Mapping[str, int]
    """Model -> signed shares, only the models holding the symbol."""
    reconciliation: str
    """``ok``, ``halted: <why>``, ``foreign: <what>`` or ``not checked`` (in flight, or
    before the gateway's first reconciliation)."""
    halt_reason: str
    """Why opening orders are refused here ("" when they are not)."""

    @property
    def halted(self) -> bool:
        """True when the gateway refuses opening orders in the symbol."""
        return bool(self.halt_reason)

    @property
    def foreign(self) -> bool:
        """True for a position in the account that no model traded."""
        return self.reconciliation.startswith(FOREIGN_PREFIX)

    @property
    def state(self) -> str:
        """``ok``, ``HALTED: <why>``, ``FOREIGN: <what>`` or ``not checked``."""
        if self.halted:
            return f"HALTED: {self.halt_reason}"
        if self.foreign:
            return f"FOREIGN: {self.reconciliation.removeprefix(FOREIGN_PREFIX).strip()}"
        return self.reconciliation


@dataclass(frozen=True)
class AccountView:
    """Everything the account panel shows."""

    venue: str
    venue_ready: bool
    age_s: float
    silent: bool
    killed: bool
    loss_breached: bool
    desk_pnl: float
    day_trades_left: int | None
    """None when the account is not bound by the pattern-day-trader rule."""
    working: int
    crossed_shares: int
    venue_orders: int
    refused: int
    models: tuple[str, ...]
    rows: tuple[AccountRow, ...]

    @property
    def stream(self) -> str:
        """The gateway's health: ``SILENT`` (no status), ``VENUE DOWN`` or ``OK``."""
        if self.silent:
            return "SILENT"
        return "OK" if self.venue_ready else "VENUE DOWN"

    @property
    def flags(self) -> tuple[str, ...]:
        """Every raised flag: gateway health, kill switch, loss limit, halted symbols."""
        halted = [r.symbol for r in self.rows if r.halted]
        return tuple(
            name
            for name, on in (
                (self.stream, self.stream != "OK"),
                ("KILLED", self.killed),
                ("LOSS LIMIT", self.loss_breached),
                (f"HALTED {', '.join(halted)}", bool(halted)),
            )
            if on
        )

    @property
    def healthy(self) -> bool:
        """True when no flag is raised."""
        return not self.flags


def account_view(
    status: DeskStatus, arrival_ns: int, now_ns: int, silent_after_s: float
) -> AccountView:
    """The panel for the latest ``status``, which arrived at ``arrival_ns``, seen at ``now_ns``."""
    age = max(0.0, (now_ns - arrival_ns) / NS_PER_S)
    symbols = set(status.account) | set(status.reconciliation) | set(status.halted)
    symbols |= {s for book in status.books.values() for s in book}
    rows = []
    for sym in sorted(symbols):
        rec = status.reconciliation.get(sym, NOT_CHECKED)
        why = status.halted.get(sym, "")
        if rec.startswith(HALTED_PREFIX):
            why = rec.removeprefix(HALTED_PREFIX).strip()
        books = {m: b[sym] for m, b in sorted(status.books.items()) if b.get(sym)}
        rows.append(AccountRow(sym, status.account.get(sym, 0), books, rec, why))
    return AccountView(
        venue=status.venue,
        venue_ready=status.venue_ready,
        age_s=age,
        silent=age > silent_after_s,
        killed=status.killed,
        loss_breached=status.loss_breached,
        desk_pnl=status.desk_pnl,
        day_trades_left=status.day_trades_left,
        working=status.working,
        crossed_shares=status.counters.get("crossed_shares", 0),
        venue_orders=status.counters.get("venue_orders", 0),
        refused=status.counters.get("refused", 0),
        models=tuple(sorted(status.books)),
        rows=tuple(rows),
    )
