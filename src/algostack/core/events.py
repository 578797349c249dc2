"""Trader events on NATS (DESIGN.md 3.3): ``algostack.<env>.trader.<model>.<kind>``.

Each kind has one typed struct, encoded with msgpack like market data. Fills are published as
``algostack.core.orders.Fill`` on the ``fill`` subject; the others are defined here.
"""

from __future__ import annotations

import msgspec


class _TraderEvent(msgspec.Struct, frozen=True, tag_field="T", kw_only=True):
    model: str
    """Subject-safe model key (``naming.ModelSpec.key``)."""
    ts: int
    """When the event was produced, UTC nanoseconds (wall clock of the trader)."""


class Heartbeat(_TraderEvent, frozen=True, tag="heartbeat", kw_only=True):
    """Sent every few seconds and after every bar: the trader is alive and where it is."""

    symbol: str
    state: str
    """Risk state: ACTIVE, REDUCING or HALTED."""
    position: int
    last_bar_ts: int
    bars: int
    decisions: int
    orders: int
    latency_p50_us: float
    latency_p99_us: float
    warmed_up: bool
    realised: float = 0.0
    """Realised PnL of the day so far (net of commissions)."""
    unrealised: float = 0.0
    """Unrealised PnL at the last mark."""
    restarts: int = 0
    """How often the trader started again on this trading day after its first start (a
    crash, a kill, a unit restart: the dashboard flags it)."""


class Decision(_TraderEvent, frozen=True, tag="decision", kw_only=True):
    """One bar's decision: score, direction and the order intent it led to (qty 0: none)."""

    symbol: str
    bar_ts: int
    score: float
    direction: int
    target_qty: int
    order_qty: int
    latency_us: float
    """Frame received by the ingest -> decision made (when the bar carries a receive time)."""


class RiskUpdate(_TraderEvent, frozen=True, tag="risk", kw_only=True):
    """A risk state transition with its reason."""

    state: str
    previous: str
    reason: str
    daily_pnl: float


class PnlUpdate(_TraderEvent, frozen=True, tag="pnl", kw_only=True):
    """Mark-to-market after each bar."""

    symbol: str
    position: int
    realised: float
    unrealised: float
    equity: float
    mark: float


class DeskStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The execution gateway's snapshot of the account (``algostack.<env>.gateway.status``)."""

    ts: int
    venue: str
    venue_ready: bool
    """The venue takes orders (at Alpaca: the ``trade_updates`` stream is listening)."""
    account: dict[str, int]
    """Symbol -> signed shares: the sum of the model books."""
    books: dict[str, dict[str, int]]
    """Model -> symbol -> signed shares."""
    reconciliation: dict[str, str]
    """Symbol -> ``ok``, ``halted: <why>`` or ``foreign: <what>``."""
    halted: dict[str, str]
    killed: bool
    loss_breached: bool
    desk_pnl: float
    day_trades_left: int | None
    """None when the account is not bound by the pattern-day-trader rule."""
    working: int
    """Venue orders open now."""
    counters: dict[str, int]
    """intents, refused, batches, venue_orders, crossed_shares, fills, ..."""
    models: dict[str, str] = msgspec.field(default_factory=dict)
    """Model -> symbol, for every model the gateway knows (from their heartbeats)."""
    unplaced: int = 0
    """Intents taken but not in a venue order yet (their batch open, or waiting its turn)."""


TraderEvent = Heartbeat | Decision | RiskUpdate | PnlUpdate

KIND_OF_EVENT: dict[type[_TraderEvent], str] = {
    Heartbeat: "heartbeat",
    Decision: "decision",
    RiskUpdate: "risk",
    PnlUpdate: "pnl",
}
FILL_KIND = "fill"

_ENCODER = msgspec.msgpack.Encoder()
_DECODER: msgspec.msgpack.Decoder[TraderEvent] = msgspec.msgpack.Decoder(TraderEvent)


def encode_event(event: msgspec.Struct) -> bytes:
    """Encode a trader event (or a Fill) as a NATS payload."""
    return _ENCODER.encode(event)


def decode_event(payload: bytes) -> TraderEvent:
    """Decode a heartbeat, decision, risk or pnl payload."""
    return _DECODER.decode(payload)


_DESK_DECODER = msgspec.msgpack.Decoder(DeskStatus)


def decode_desk_status(payload: bytes) -> DeskStatus:
    """Decode the gateway's ``DeskStatus``."""
    return _DESK_DECODER.decode(payload)


def event_kind(event: _TraderEvent) -> str:
    """The last subject token for an event: heartbeat, decision, risk or pnl."""
    return KIND_OF_EVENT[type(event)]
