"""Pure aggregation of market and trader events into the dashboard's view models.

No Streamlit, no NATS, no files: the feed thread calls the ``on_*`` methods with decoded
events and the time they arrived; the Streamlit script calls ``snapshot()`` and renders what it
gets. One lock guards the mutable state, so the two threads never see half an update.

Ages are measured on the dashboard's own clock (when an event *arrived*), never against the
producer's timestamp: traders on other hosts may have skewed clocks, and an offline session
replays bars stamped with a past date.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from algostack.core.events import (
    Decision,
    DeskStatus,
    Heartbeat,
    PnlUpdate,
    RiskUpdate,
    TraderEvent,
)
from algostack.core.market import (
    NS_PER_S,
    Bar,
    MarketEvent,
    TradingStatus,
    UpdatedBar,
    datetime_to_ts,
)
from algostack.services.dashboard.account import AccountView, account_view

RISK_STATES = ("ACTIVE", "REDUCING", "HALTED")
MAX_PRICE_POINTS = 5_000
MAX_PNL_POINTS = 5_000
MAX_TRADES = 2_000

_TS_KEYS = ("ts", "timestamp", "time", "filled_at", "fill_ts", "bar_ts")
_SIDE_KEYS = ("side", "direction")
_QTY_KEYS = ("qty", "quantity", "filled_qty", "size")
_PRICE_KEYS = ("price", "fill_price", "filled_avg_price", "avg_price")
_ID_KEYS = ("client_order_id", "order_id", "fill_id", "id")


@dataclass(frozen=True)
class HealthPolicy:
    """When a model is flagged: data stale after ``stale_after_s`` without a bar for its symbol
    (only while ``market_open`` says the market trades), trader silent after ``silent_after_s``
    without a heartbeat, execution gateway silent after ``gateway_silent_after_s`` without a
    status (it publishes one every second)."""

    stale_after_s: float = 120.0
    silent_after_s: float = 30.0
    gateway_silent_after_s: float = 5.0
    market_open: Callable[[datetime], bool] = field(default=lambda _at: True)


@dataclass(frozen=True)
class TradeRow:
    """One trade of a model today, from its journal or from a live fill."""

    ts: int
    symbol: str
    side: str
    qty: float
    price: float
    order_id: str
    source: str
    """``journal`` or ``live``."""

    @property
    def dedupe_key(self) -> tuple[Any, ...]:
        """What identifies the same fill seen in the journal and on NATS."""
        if self.order_id:
            return ("id", self.order_id)
        return ("fill", self.ts, self.side, self.qty, self.price)


@dataclass(frozen=True)
class PnlPoint:
    """Mark-to-market of a model at ``ts`` (producer's time, UTC ns)."""

    ts: int
    realised: float
    unrealised: float
    equity: float
    bar_ts: int = 0
    """Start of the symbol's latest bar when the update arrived (0: none seen yet): the
    session's own clock, which an accelerated offline session runs far ahead of the wall."""
    position: int = 0
    mark: float = 0.0
    """Position and the price ``unrealised`` was marked at: enough to re-mark it per bar."""

    @property
    def session_ts(self) -> int:
        """Where the point sits on the price charts' time axis."""
        return self.bar_ts or self.ts


def pnl_curve(
    points: Iterable[PnlPoint], closes: Iterable[tuple[int, float]]
) -> list[tuple[int, float, float]]:
    """(session ts, realised, unrealised) at every PnL update and every later bar close.

    Between two updates the position is constant, so the unrealised PnL at a close is the last
    update's plus ``position * (close - mark)``: exact, without knowing the average cost.
    """
    pts = sorted(points, key=lambda p: p.session_ts)
    if not pts:
        return []
    first = pts[0].session_ts
    merged: list[tuple[int, int, PnlPoint | float]] = [(p.session_ts, 0, p) for p in pts]
    merged += [(ts, 1, close) for ts, close in closes if ts >= first]
    merged.sort(key=lambda e: (e[0], e[1]))
    out: list[tuple[int, float, float]] = []
    cur: PnlPoint | None = None
    for ts, _kind, item in merged:
        if isinstance(item, PnlPoint):
            cur = item
            out.append((ts, item.realised, item.unrealised))
        elif cur is not None:
            moved = cur.position * (item - cur.mark) if cur.mark else 0.0
            out.append((ts, cur.realised, cur.unrealised + moved))
    return out


@dataclass
class _Symbol:
    closes: dict[int, float] = field(default_factory=dict)
    last_bar_ts: int = 0
    last_arrival_ns: int = 0
    halted: bool = False
    bars: int = 0


@dataclass
class _Model:
    key: str
    symbol: str = ""
    state: str = "UNKNOWN"
    risk_reason: str = ""
    position: int = 0
    realised: float = 0.0
    unrealised: float = 0.0
    equity: float = 0.0
    last_heartbeat_arrival_ns: int = 0
    latency_p50_us: float = math.nan
    latency_p99_us: float = math.nan
    last_decision_latency_us: float = math.nan
    decisions: int = 0
    orders: int = 0
    warmed_up: bool = False
    restarts: int = 0
    pnl: deque[PnlPoint] = field(default_factory=lambda: deque(maxlen=MAX_PNL_POINTS))
    trades: dict[tuple[Any, ...], TradeRow] = field(default_factory=dict)
    log_tail: tuple[str, ...] = ()


@dataclass(frozen=True)
class FleetRow:
    """One model in the fleet table, with its health flags."""

    model: str
    symbol: str
    state: str
    position: int
    realised: float
    unrealised: float
    heartbeat_age_s: float | None
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    last_bar_age_s: float | None
    trades: int
    stale_data: bool
    silent: bool
    halted: bool
    restarts: int = 0
    """How often the model's trader started again today (``Heartbeat.restarts``)."""

    @property
    def healthy(self) -> bool:
        """True when no flag is raised (a trader that had to restart is not healthy)."""
        return not (self.stale_data or self.silent or self.halted or self.restarts)

    @property
    def health(self) -> str:
        """``OK`` or the raised flags, e.g. ``STALE DATA, SILENT``."""
        flags = [
            name
            for name, on in (
                ("STALE DATA", self.stale_data),
                ("SILENT", self.silent),
                ("HALTED", self.halted),
                (f"RESTARTED x{self.restarts}", self.restarts > 0),
            )
            if on
        ]
        return ", ".join(flags) if flags else "OK"


@dataclass(frozen=True)
class ModelDetail:
    """Everything the per-model panel shows."""

    row: FleetRow
    risk_reason: str
    decisions: int
    orders: int
    warmed_up: bool
    last_decision_latency_us: float | None
    trades: tuple[TradeRow, ...]
    pnl: tuple[PnlPoint, ...]
    log_tail: tuple[str, ...]


@dataclass(frozen=True)
class SymbolRow:
    """One symbol's market-data health."""

    symbol: str
    bars: int
    last_close: float | None
    last_bar_ts: int
    last_bar_age_s: float | None
    stale: bool
    halted: bool


@dataclass(frozen=True)
class Snapshot:
    """An immutable copy of the state at ``now_ns``, ready to render."""

    now_ns: int
    market_open: bool
    feed_status: str
    feed_error: str
    fleet: tuple[FleetRow, ...]
    models: dict[str, ModelDetail]
    symbols: tuple[SymbolRow, ...]
    prices: dict[str, tuple[tuple[int, float], ...]]
    ignored: int
    account: AccountView | None = None
    """The execution gateway's latest status; None until one was heard."""

    @property
    def alerts(self) -> int:
        """How many models have a raised flag."""
        return sum(1 for r in self.fleet if not r.healthy)


def _opt(x: float) -> float | None:
    return None if math.isnan(x) else x


class DashboardState:
    """Thread-safe aggregate of everything the dashboard shows."""

    def __init__(self, policy: HealthPolicy | None = None) -> None:
        self.policy = policy or HealthPolicy()
        self._lock = threading.Lock()
        self._symbols: dict[str, _Symbol] = {}
        self._models: dict[str, _Model] = {}
        self._feed_status = "starting"
        self._feed_error = ""
        self._ignored = 0
        self._desk: DeskStatus | None = None
        self._desk_arrival_ns = 0

    # -- writers (feed thread) -------------------------------------------------------------

    def set_feed_status(self, status: str, error: str = "") -> None:
        """Record the feed's connection status (``connecting``, ``live``, ``error``...)."""
        with self._lock:
            self._feed_status, self._feed_error = status, error

    def count_ignored(self, n: int = 1) -> None:
        """Count payloads that could not be decoded (they are skipped, never fatal)."""
        with self._lock:
            self._ignored += n

    def on_market(self, event: MarketEvent, arrival_ns: int) -> None:
        """Apply one market event that arrived (or was stored by JetStream) at ``arrival_ns``."""
        with self._lock:
            sym = self._symbols.setdefault(event.symbol, _Symbol())
            if isinstance(event, Bar | UpdatedBar):
                if isinstance(event, Bar) and event.ts not in sym.closes:
                    sym.bars += 1
                sym.closes[event.ts] = event.close
                if len(sym.closes) > MAX_PRICE_POINTS:
                    del sym.closes[min(sym.closes)]
                sym.last_bar_ts = max(sym.last_bar_ts, event.ts)
                sym.last_arrival_ns = max(sym.last_arrival_ns, arrival_ns)
            elif isinstance(event, TradingStatus):
                sym.halted = event.is_halted

    def on_desk_status(self, status: DeskStatus, arrival_ns: int) -> None:
        """Keep the gateway's latest status (one publisher on core NATS: arrival order)."""
        with self._lock:
            self._desk, self._desk_arrival_ns = status, arrival_ns

    def _model(self, key: str) -> _Model:
        m = self._models.get(key)
        if m is None:
            m = self._models[key] = _Model(key)
        return m

    def on_trader(self, event: TraderEvent, arrival_ns: int) -> None:
        """Apply one heartbeat, decision, risk or pnl event."""
        with self._lock:
            m = self._model(event.model)
            if isinstance(event, Heartbeat):
                m.symbol = event.symbol
                m.state = event.state
                m.position = event.position
                m.last_heartbeat_arrival_ns = max(m.last_heartbeat_arrival_ns, arrival_ns)
                m.latency_p50_us = event.latency_p50_us
                m.latency_p99_us = event.latency_p99_us
                m.decisions, m.orders = event.decisions, event.orders
                m.warmed_up = event.warmed_up
                m.restarts = event.restarts
                # A dashboard opened mid-session learns PnL from the next heartbeat, not only
                # from the next fill's PnL update.
                m.realised, m.unrealised = event.realised, event.unrealised
            elif isinstance(event, Decision):
                m.symbol = event.symbol
                m.last_decision_latency_us = event.latency_us
            elif isinstance(event, RiskUpdate):
                m.state = event.state
                m.risk_reason = event.reason
            elif isinstance(event, PnlUpdate):
                m.symbol = event.symbol
                m.position = event.position
                m.realised, m.unrealised, m.equity = event.realised, event.unrealised, event.equity
                sym = self._symbols.get(event.symbol)
                bar_ts = sym.last_bar_ts if sym is not None else 0
                m.pnl.append(
                    PnlPoint(
                        event.ts,
                        event.realised,
                        event.unrealised,
                        event.equity,
                        bar_ts,
                        event.position,
                        event.mark,
                    )
                )

    def on_fill(self, model: str, fields: Mapping[str, Any]) -> bool:
        """Apply one live fill (decoded to a mapping); False when it lacks the basics."""
        row = normalize_trade(fields, source="live")
        if row is None:
            self.count_ignored()
            return False
        with self._lock:
            m = self._model(model)
            m.symbol = m.symbol or row.symbol
            _add_trade(m, row)
        return True

    def register_model(self, key: str, symbol: str) -> None:
        """Make a model known before it says anything (so its silence is visible)."""
        with self._lock:
            m = self._model(key)
            m.symbol = m.symbol or symbol

    def load_journal(
        self, key: str, symbol: str, trades: Iterable[TradeRow], log_tail: Iterable[str] = ()
    ) -> None:
        """Merge a model's journal for today; live fills already seen are not doubled."""
        with self._lock:
            m = self._model(key)
            m.symbol = m.symbol or symbol
            for row in trades:
                _add_trade(m, row)
            m.log_tail = tuple(log_tail)

    # -- reader (Streamlit thread) ---------------------------------------------------------

    def snapshot(self, now_ns: int) -> Snapshot:
        """Copy the state and evaluate health at ``now_ns``."""
        now_dt = datetime.fromtimestamp(now_ns / NS_PER_S, UTC)
        market_open = self.policy.market_open(now_dt)
        with self._lock:
            symbols = tuple(self._symbol_row(s, v, now_ns, market_open) for s, v in self._sorted())
            by_symbol = {r.symbol: r for r in symbols}
            models: dict[str, ModelDetail] = {}
            for key in sorted(self._models):
                m = self._models[key]
                row = self._fleet_row(m, by_symbol.get(m.symbol), now_ns, market_open)
                models[key] = ModelDetail(
                    row=row,
                    risk_reason=m.risk_reason,
                    decisions=m.decisions,
                    orders=m.orders,
                    warmed_up=m.warmed_up,
                    last_decision_latency_us=_opt(m.last_decision_latency_us),
                    trades=tuple(sorted(m.trades.values(), key=lambda t: t.ts)),
                    pnl=tuple(m.pnl),
                    log_tail=m.log_tail,
                )
            prices = {s: tuple(sorted(v.closes.items())) for s, v in self._sorted()}
            account = None
            if self._desk is not None:
                silent_after = self.policy.gateway_silent_after_s
                account = account_view(self._desk, self._desk_arrival_ns, now_ns, silent_after)
            return Snapshot(
                now_ns=now_ns,
                market_open=market_open,
                feed_status=self._feed_status,
                feed_error=self._feed_error,
                fleet=tuple(d.row for d in models.values()),
                models=models,
                symbols=symbols,
                prices=prices,
                ignored=self._ignored,
                account=account,
            )

    def _sorted(self) -> list[tuple[str, _Symbol]]:
        return sorted(self._symbols.items())

    def _symbol_row(self, symbol: str, s: _Symbol, now_ns: int, market_open: bool) -> SymbolRow:
        age = (now_ns - s.last_arrival_ns) / NS_PER_S if s.last_arrival_ns else None
        stale = market_open and (age is None or age > self.policy.stale_after_s)
        last_close = s.closes.get(s.last_bar_ts)
        return SymbolRow(symbol, s.bars, last_close, s.last_bar_ts, age, stale, s.halted)

    def _fleet_row(
        self, m: _Model, sym: SymbolRow | None, now_ns: int, market_open: bool
    ) -> FleetRow:
        hb_age = (
            (now_ns - m.last_heartbeat_arrival_ns) / NS_PER_S
            if m.last_heartbeat_arrival_ns
            else None
        )
        bar_age = sym.last_bar_age_s if sym is not None else None
        stale = market_open and (bar_age is None or bar_age > self.policy.stale_after_s)
        silent = hb_age is None or hb_age > self.policy.silent_after_s
        p50, p99 = _opt(m.latency_p50_us), _opt(m.latency_p99_us)
        unrealised = m.unrealised
        last = m.pnl[-1] if m.pnl else None
        if last is not None and last.mark and sym is not None and sym.last_close:
            # re-marked at the latest close, as the PnL curve (updates come only with fills)
            unrealised = last.unrealised + last.position * (sym.last_close - last.mark)
        return FleetRow(
            model=m.key,
            symbol=m.symbol,
            state=m.state,
            position=m.position,
            realised=m.realised,
            unrealised=unrealised,
            heartbeat_age_s=hb_age,
            latency_p50_ms=None if p50 is None else p50 / 1_000,
            latency_p99_ms=None if p99 is None else p99 / 1_000,
            last_bar_age_s=bar_age,
            trades=len(m.trades),
            stale_data=stale,
            silent=silent,
            halted=m.state == "HALTED",
            restarts=m.restarts,
        )


def _add_trade(m: _Model, row: TradeRow) -> None:
    key = row.dedupe_key
    if key in m.trades:
        return
    if len(m.trades) >= MAX_TRADES:
        del m.trades[min(m.trades, key=lambda k: m.trades[k].ts)]
    m.trades[key] = row


def _first(fields: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for k in keys:
        v = fields.get(k)
        if v not in (None, ""):
            return v
    return None


def parse_ts(value: Any) -> int | None:
    """Parse a timestamp (UTC ns, us, ms or s as a number, or ISO 8601) to UTC ns."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        return datetime_to_ts(dt)
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text) if any(c in text for c in ".eE") else int(text)
        except ValueError:
            try:
                dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                return None
            return parse_ts(dt)
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        return None
    # Magnitude tells the unit: ns ~1.7e18, us ~1.7e15, ms ~1.7e12, s ~1.7e9.
    for bound, scale in ((1e17, 1), (1e14, 1_000), (1e11, 1_000_000)):
        if value > bound:
            return int(value * scale)
    return int(value * NS_PER_S)


def _side(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "buy" if value > 0 else "sell" if value < 0 else ""
    text = str(value or "").strip().lower()
    return {"b": "buy", "long": "buy", "s": "sell", "short": "sell"}.get(text, text)


def normalize_trade(fields: Mapping[str, Any], *, source: str) -> TradeRow | None:
    """Read a journal row or a fill payload (any column names we know); None when it has no
    usable time, quantity or price."""
    ts = parse_ts(_first(fields, _TS_KEYS))
    try:
        qty = float(_first(fields, _QTY_KEYS))
        price = float(_first(fields, _PRICE_KEYS))
    except (TypeError, ValueError):
        return None
    if ts is None or not math.isfinite(qty) or not math.isfinite(price):
        return None
    side = _side(_first(fields, _SIDE_KEYS))
    if not side and qty < 0:
        side = "sell"
    return TradeRow(
        ts=ts,
        symbol=str(fields.get("symbol") or ""),
        side=side,
        qty=abs(qty),
        price=price,
        order_id=str(_first(fields, _ID_KEYS) or ""),
        source=source,
    )
