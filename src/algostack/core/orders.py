"""Orders, fills and acknowledgements: the typed values that pass between risk and brokers.

A ``client_order_id`` is derived from (model, symbol, bar timestamp, side), so a retried
submit of the same decision can never place a second order (DESIGN.md 3.5).
"""

from __future__ import annotations

import functools
import hashlib
import re
import time
from enum import StrEnum

import msgspec

MAX_CLIENT_ORDER_ID = 128  # Alpaca's limit
_UNSAFE_RE = re.compile(r"[^A-Za-z0-9_]")
_MODEL_CHARS = 40


class Side(StrEnum):
    """Order side, spelled as Alpaca spells it."""

    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell."""
        return 1 if self is Side.BUY else -1

    @staticmethod
    def for_delta(delta: int) -> Side:
        """The side that moves a position by ``delta`` shares (``delta`` != 0)."""
        if delta == 0:
            raise ValueError("a zero position change needs no order")
        return Side.BUY if delta > 0 else Side.SELL


class OrderIntent(msgspec.Struct, frozen=True, kw_only=True):
    """A model's decision to trade, before risk and before the broker."""

    model: str
    symbol: str
    side: Side
    qty: int
    bar_ts: int
    """Start (UTC ns) of the bar the decision was made on; the sim fills on the next bar."""
    decided_ns: int = 0
    """Wall-clock time (UTC ns) of the decision; journals the decision latency."""
    score: float = 0.0
    reason: str = ""
    price: float = 0.0
    """Close of the decision bar: the desk's price for its exposure checks (0: unknown)."""

    @property
    def client_order_id(self) -> str:
        """The deterministic client order id of this intent."""
        return client_order_id(self.model, self.symbol, self.bar_ts, self.side)

    @property
    def signed_qty(self) -> int:
        """``qty`` with the side's sign."""
        return self.qty * self.side.sign


class Fill(msgspec.Struct, frozen=True, kw_only=True):
    """An execution of (part of) an order."""

    client_order_id: str
    broker_order_id: str
    model: str
    symbol: str
    side: Side
    qty: int
    price: float
    ts: int
    """Execution time, UTC ns."""
    commission: float = 0.0

    @property
    def signed_qty(self) -> int:
        """``qty`` with the side's sign."""
        return self.qty * self.side.sign


class OrderStatus(StrEnum):
    """Where an order stands, as far as the trader needs to know."""

    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"


class OrderAck(msgspec.Struct, frozen=True, kw_only=True):
    """A broker's answer to a submit.

    ``duplicate`` is True when the client order id was already known: no new order was
    placed and ``broker_order_id`` names the existing one. A rejection carries the broker's
    message in ``message``; nothing was placed.
    """

    client_order_id: str
    broker_order_id: str
    status: OrderStatus
    duplicate: bool = False
    message: str = ""

    @property
    def accepted(self) -> bool:
        """True unless the broker refused the order."""
        return self.status is not OrderStatus.REJECTED

    @classmethod
    def rejected(cls, client_order_id: str, message: str) -> OrderAck:
        """A refusal: nothing was placed, ``message`` says why."""
        return cls(
            client_order_id=client_order_id,
            broker_order_id="",
            status=OrderStatus.REJECTED,
            message=message,
        )


def bad_qty(intent: OrderIntent, client_order_id: str = "") -> OrderAck | None:
    """The refusal every broker gives an intent without a positive whole quantity; None
    when the quantity is good."""
    if intent.qty > 0:
        return None
    return OrderAck.rejected(
        client_order_id or intent.client_order_id,
        f"qty must be a positive whole number of shares, got {intent.qty}",
    )


class OrderReport(msgspec.Struct, frozen=True, kw_only=True):
    """What the execution gateway tells a model about one of its orders (``orders.report``).

    ``kind`` is ``fill`` (``fill`` set) or ``closed``: the order will get no more shares
    (``unfilled`` of them never came; ``reason`` says why: a desk risk refusal, a broker
    rejection, a cancel or expiry). ``report_id`` is unique per report and de-duplicates
    re-deliveries.
    """

    kind: str
    report_id: str
    client_order_id: str
    model: str
    fill: Fill | None = None
    unfilled: int = 0
    reason: str = ""


class OpenOrder(msgspec.Struct, frozen=True, kw_only=True):
    """An order the broker still works."""

    client_order_id: str
    broker_order_id: str
    symbol: str
    side: Side
    qty: int
    filled_qty: int = 0
    status: str = "new"


@functools.lru_cache(maxsize=256)
def order_prefix(model: str) -> str:
    """The readable prefix every client order id of ``model`` starts with.

    ``as-<model, made safe, at most 40 chars>.<4 hex of the full model>-``; the short hash keeps
    two models whose truncated names agree apart, so reconciliation can tell our orders.
    """
    safe = _UNSAFE_RE.sub("_", model)[:_MODEL_CHARS]
    digest = hashlib.sha256(model.encode()).hexdigest()[:4]
    return f"as-{safe}.{digest}-"


@functools.lru_cache(maxsize=4096)
def client_order_id(model: str, symbol: str, bar_ts: int, side: Side) -> str:
    """Derive the client order id of one decision: same inputs, same id, <= 128 chars.

    Layout: ``<order_prefix(model)><SYMBOL>-<b|s>-<YYYYmmddTHHMM>-<hash>``; the hash (12 hex
    of SHA-256 over every input) makes the id unique even where the readable part is cut.
    Cached: the trader, the order channel and the gateway each ask for the same few ids.
    """
    side = Side(side)
    stamp = time.strftime("%Y%m%dT%H%M", time.gmtime(bar_ts // 1_000_000_000))
    digest = hashlib.sha256(f"{model}\x00{symbol}\x00{bar_ts}\x00{side.value}".encode())
    sym = _UNSAFE_RE.sub("_", symbol)[:12]
    cid = f"{order_prefix(model)}{sym}-{side.value[0]}-{stamp}-{digest.hexdigest()[:12]}"
    assert len(cid) <= MAX_CLIENT_ORDER_ID  # bounded by construction
    return cid


# Position and Portfolio live in portfolio.py; re-exported here as part of the orders API.
from algostack.core.portfolio import Portfolio, Position  # noqa: E402

__all__ = [
    "MAX_CLIENT_ORDER_ID",
    "Fill",
    "OpenOrder",
    "OrderAck",
    "OrderIntent",
    "OrderReport",
    "OrderStatus",
    "Portfolio",
    "Position",
    "Side",
    "client_order_id",
    "order_prefix",
]
