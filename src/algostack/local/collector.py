"""What the supervisor hears on NATS: every bar published and every trader event.

Bars (``market.bars.*``) give the price series for the summary and the report and the last
bar per symbol, so the supervisor knows when each trader has caught up. Trader events
(``algostack.<env>.trader.<model>.<kind>``) feed the progress bar and the latency figures.
Decoding is tolerant: a payload that does not decode is counted, never fatal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from algostack.core import codec
from algostack.core.events import (
    Decision,
    DeskStatus,
    Heartbeat,
    PnlUpdate,
    RiskUpdate,
    decode_event,
)
from algostack.core.market import Bar
from algostack.core.orders import Fill
from algostack.local.summary import PricePoint

_FILL_DECODER = msgspec.msgpack.Decoder(Fill)


@dataclass
class TraderView:
    """The latest state of one model as its events tell it."""

    key: str
    symbol: str = ""
    bars: int = 0
    decisions: int = 0
    orders: int = 0
    last_bar_ts: int = 0
    position: int = 0
    realised: float = 0.0
    unrealised: float = 0.0
    state: str = ""
    heartbeat_at: float = 0.0
    """Monotonic time of the last heartbeat (0: none yet)."""
    latencies_us: list[float] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    reported_fills: set[str] = field(default_factory=set)
    """Report ids of the fills the execution gateway reported to this model. A restarted
    gateway sends again the reports its last save did not cover: JetStream drops the copy,
    but this subscription hears it, so a count of messages would never settle."""
    risk_events: list[str] = field(default_factory=list)
    decided: set[int] = field(default_factory=set)
    """The bars (start ns) a decision was heard for: a trader that restarts decides again
    the bars its last commit did not cover, so events alone would count them twice."""

    @property
    def pnl(self) -> float:
        """Realised plus unrealised PnL as last reported."""
        return self.realised + self.unrealised


class Collector:
    """Keep prices and per-model views from raw NATS messages (subject, payload)."""

    def __init__(
        self,
        env: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.env = env
        self.trader_prefix = f"algostack.{env}.trader."
        self.prices: dict[str, list[PricePoint]] = {}
        self.bar_log: list[Bar] = []
        """Every distinct bar heard, in arrival order (written to the run's bars.csv)."""
        self.last_bar_ts: dict[str, int] = {}
        self.bars = 0
        self.models: dict[str, TraderView] = {}
        self.undecodable = 0
        self._clock = clock
        self._wall_ns = wall_ns
        self.last_report_at = 0.0
        self.desk: DeskStatus | None = None
        """The gateway's latest status."""
        self.desk_at = 0.0
        """Monotonic time of the gateway's latest status (0: none yet)."""
        self.market_at = 0.0
        """Monotonic time of the latest bar message, re-sent ones included (0: none yet)."""
        self._heard_ns: dict[tuple[str, int], int] = {}
        """(symbol, bar ts) -> wall time the bar was heard here (latency fallback)."""

    @property
    def market_subject(self) -> str:
        """The subject the supervisor subscribes to for bars."""
        return codec.subject_for("bars", "*")

    @property
    def trader_subject(self) -> str:
        """The subject the supervisor subscribes to for trader events."""
        return self.trader_prefix + ">"

    def view(self, key: str) -> TraderView:
        """The view of model ``key`` (created empty on first use)."""
        v = self.models.get(key)
        if v is None:
            v = self.models[key] = TraderView(key)
        return v

    def on_market(self, payload: bytes) -> None:
        """Record one published market event (only bars matter here)."""
        self.market_at = self._clock()
        try:
            ev = codec.decode(payload)
        except msgspec.DecodeError:
            self.undecodable += 1
            return
        if type(ev) is not Bar:
            return
        last = self.last_bar_ts.get(ev.symbol, 0)
        if ev.ts <= last:  # a re-sent bar (ingest restart): already counted
            return
        self.last_bar_ts[ev.symbol] = ev.ts
        self._heard_ns[(ev.symbol, ev.ts)] = self._wall_ns()
        self.prices.setdefault(ev.symbol, []).append((ev.ts, ev.open, ev.close))
        self.bar_log.append(ev)
        self.bars += 1

    def on_trader(self, subject: str, payload: bytes) -> None:
        """Record one trader event from ``algostack.<env>.trader.<model>.<kind>``."""
        if not subject.startswith(self.trader_prefix):
            return
        rest = subject[len(self.trader_prefix) :]
        key, _, kind = rest.rpartition(".")
        if not key:
            return
        v = self.view(key)
        try:
            if kind == "fill":
                v.fills.append(_FILL_DECODER.decode(payload))
                return
            ev = decode_event(payload)
        except msgspec.DecodeError:
            self.undecodable += 1
            return
        if isinstance(ev, Heartbeat):
            v.symbol = ev.symbol
            v.bars = max(v.bars, ev.bars)
            v.decisions = max(v.decisions, ev.decisions)
            v.orders = max(v.orders, ev.orders)
            v.last_bar_ts = max(v.last_bar_ts, ev.last_bar_ts)
            v.position = ev.position
            v.state = ev.state
            v.heartbeat_at = self._clock()
        elif isinstance(ev, Decision):
            v.symbol = ev.symbol
            v.last_bar_ts = max(v.last_bar_ts, ev.bar_ts)
            v.decided.add(ev.bar_ts)
            if ev.latency_us > 0:
                v.latencies_us.append(ev.latency_us)
            else:
                # No ingest receive time on the bar: measure bar published (heard here, same
                # host clock) -> decision made, which includes the JetStream hop.
                heard = self._heard_ns.get((ev.symbol, ev.bar_ts))
                if heard is not None and ev.ts >= heard:
                    v.latencies_us.append((ev.ts - heard) / 1e3)
        elif isinstance(ev, PnlUpdate):
            v.symbol = ev.symbol
            v.position = ev.position
            v.realised, v.unrealised = ev.realised, ev.unrealised
        elif isinstance(ev, RiskUpdate):
            v.state = ev.state
            v.risk_events.append(f"{ev.previous}->{ev.state}: {ev.reason}")

    def on_report(self, payload: bytes) -> None:
        """Record one report of the execution gateway (``orders.report.<model>``)."""
        from algostack.adapters.nats.order_channel import decode_report

        try:
            report = decode_report(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.undecodable += 1
            return
        self.last_report_at = self._clock()
        if report.kind == "fill":
            self.view(report.model).reported_fills.add(report.report_id)

    def on_desk(self, payload: bytes) -> None:
        """Keep the execution gateway's latest ``DeskStatus``."""
        from algostack.core.events import decode_desk_status

        try:
            self.desk = decode_desk_status(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.undecodable += 1
            return
        self.desk_at = self._clock()

    def desk_line(self) -> str:
        """One line on the gateway's work, from its last status ("" before any)."""
        d = self.desk
        if d is None:
            return ""
        c = d.counters
        bad = {s: r for s, r in d.reconciliation.items() if r != "ok"}
        left = [f"{d.working} order(s) still working"] if d.working else []
        left += [f"{d.unplaced} intent(s) never placed"] if d.unplaced else []
        return (
            f"gateway: {c.get('intents', 0)} intents in {c.get('batches', 0)} batches, "
            f"{c.get('venue_orders', 0)} orders to the {d.venue} account, "
            f"{c.get('crossed_shares', 0)} shares crossed inside the desk, "
            f"{c.get('refused', 0)} refused; "
            + (f"at its last report {' and '.join(left)}; " if left else "")
            + "reconciliation "
            + (", ".join(f"{s} {r}" for s, r in sorted(bad.items())) if bad else "ok")
        )

    def settled(self, key: str) -> bool:
        """True when model ``key`` has booked every fill the gateway reported to it."""
        v = self.models.get(key)
        return v is None or len(v.fills) >= len(v.reported_fills)

    def quiet_for(self) -> float:
        """Seconds since the gateway's last report."""
        return self._clock() - self.last_report_at

    def caught_up(self, key: str, symbol: str) -> bool:
        """True when model ``key`` has reported the last bar seen for ``symbol``."""
        last = self.last_bar_ts.get(symbol)
        if last is None:
            return True
        v = self.models.get(key)
        return v is not None and v.last_bar_ts >= last

    def session_ts(self) -> int:
        """The newest bar start seen on any symbol (0 before the first bar)."""
        return max(self.last_bar_ts.values(), default=0)

    def totals(self) -> tuple[int, float]:
        """Orders and PnL summed over every model."""
        return (
            sum(v.orders for v in self.models.values()),
            sum(v.pnl for v in self.models.values()),
        )
