"""Fill rules of the simulated broker (DESIGN.md 3.4). Pure and deterministic.

A market order decided on bar ``t`` fills at the open of the next bar of its symbol (the
first bar whose start is later than ``t``), moved against the trader by ``slippage_bps``,
and pays ``commission_per_share`` (at least ``min_commission`` when that is set).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from algostack.core.market import Bar
from algostack.core.orders import Fill, OrderIntent, Side

BPS = 1e-4


@dataclass(frozen=True)
class FillRules:
    """Slippage (basis points of the price, against the trader) and commission."""

    slippage_bps: float = 1.0
    commission_per_share: float = 0.0
    min_commission: float = 0.0

    def __post_init__(self) -> None:
        if self.slippage_bps < 0 or self.commission_per_share < 0 or self.min_commission < 0:
            raise ValueError(
                "slippage_bps, commission_per_share and min_commission must be >= 0, got "
                f"{self.slippage_bps}, {self.commission_per_share}, {self.min_commission}"
            )

    def price(self, open_price: float, side: Side) -> float:
        """The fill price for ``side`` at a bar opening at ``open_price``: buys pay more."""
        return open_price * (1.0 + Side(side).sign * self.slippage_bps * BPS)

    def commission(self, qty: int) -> float:
        """Commission for ``qty`` shares."""
        return max(self.min_commission, abs(qty) * self.commission_per_share)


def can_fill(intent: OrderIntent, bar: Bar) -> bool:
    """True when ``bar`` is a next bar for ``intent``: same symbol, starting after its bar."""
    return bar.symbol == intent.symbol and bar.ts > intent.bar_ts


def fill(
    intent: OrderIntent,
    bar: Bar,
    rules: FillRules,
    broker_order_id: str,
    client_order_id: str | None = None,
) -> Fill:
    """The fill of ``intent`` at ``bar`` (check ``can_fill`` first).

    ``client_order_id`` is ``intent.client_order_id`` when the caller already has it (it is
    a SHA-256 to derive).
    """
    if not can_fill(intent, bar):
        raise ValueError(
            f"bar {bar.symbol}@{bar.ts} cannot fill {intent.client_order_id} "
            f"(decided on {intent.symbol}@{intent.bar_ts})"
        )
    return Fill(
        client_order_id=client_order_id or intent.client_order_id,
        broker_order_id=broker_order_id,
        model=intent.model,
        symbol=intent.symbol,
        side=intent.side,
        qty=intent.qty,
        price=rules.price(bar.open, intent.side),
        ts=bar.ts,
        commission=rules.commission(intent.qty),
    )


def match(pending: Iterable[tuple[str, OrderIntent]], bar: Bar, rules: FillRules) -> list[Fill]:
    """Fill every pending ``(broker_order_id, intent)`` that ``bar`` can fill, in order."""
    return [fill(intent, bar, rules, oid) for oid, intent in pending if can_fill(intent, bar)]


def match_by_id(
    pending: Mapping[str, tuple[str, OrderIntent]], bar: Bar, rules: FillRules
) -> list[Fill]:
    """``match`` over ``{client_order_id: (broker_order_id, intent)}`` (a broker's book),
    reusing the ids it already holds."""
    return [
        fill(intent, bar, rules, oid, cid)
        for cid, (oid, intent) in pending.items()
        if can_fill(intent, bar)
    ]
