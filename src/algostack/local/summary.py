"""The run summary: per model (trades, PnL, drawdown, exposure, hit rate, latency) and per
component (errors, restarts), as a Rich table and as JSON.

Figures are recomputed from the fills (the journal CSV in a live run, the sim broker's in a
replay) and the bars, through the same ``Portfolio`` the trader books with, so a live run
and a replay of the same bars are summarised by one function and cannot disagree.
"""

from __future__ import annotations

import csv
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from algostack.core.market import NS_PER_MIN, Bar
from algostack.core.orders import Fill, Side
from algostack.core.portfolio import Position
from algostack.errors import DataError

PricePoint = tuple[int, float, float]
"""``(bar start ns, open, close)`` of one bar of one symbol."""


@dataclass(frozen=True)
class ModelSummary:
    """The figures of one model over the run."""

    key: str
    prefix: str
    symbol: str
    trades: int
    """Fills (one per order: the sim fills whole orders)."""
    round_trips: int
    """Positions opened and closed again (flat -> position -> flat, or flipped)."""
    realised_pnl: float
    unrealised_pnl: float
    total_pnl: float
    max_drawdown: float
    """Largest fall of equity (PnL) from an earlier peak, currency, >= 0."""
    exposure: float
    """Share of bars that ended with an open position (0..1)."""
    max_notional: float
    hit_rate: float | None
    """Share of closed round trips with a positive PnL (``None`` without any)."""
    latency_p50_us: float | None
    latency_p99_us: float | None
    decisions: int
    final_position: int
    commissions: float


@dataclass(frozen=True)
class ModelCurve:
    """What the report draws for one model (not part of the JSON summary)."""

    key: str
    symbol: str
    equity: list[tuple[int, float]]
    fills: list[Fill]
    latencies_us: list[float]


@dataclass(frozen=True)
class ComponentSummary:
    """One supervised component: how it ended, its restarts and the errors it logged."""

    name: str
    kind: str
    status: str
    """``ok``, ``stopped`` (by us, at shutdown) or ``failed``."""
    exit_code: int | None
    restarts: int
    errors: int
    log: str = ""

    @property
    def failed(self) -> bool:
        """True when the component failed (the run then exits non-zero)."""
        return self.status == "failed"


@dataclass
class RunSummary:
    """Everything ``algostack run`` / ``algostack replay`` prints and writes at the end."""

    mode: str
    run_id: str
    day: str
    source: str
    wall_s: float
    bars: int
    models: list[ModelSummary]
    components: list[ComponentSummary] = field(default_factory=list)
    interrupted: bool = False
    report: str = ""
    summary_path: str = ""
    bucket: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """True when any component failed or the run was interrupted."""
        return self.interrupted or any(c.failed for c in self.components)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (floats rounded; NaN never appears)."""
        out = asdict(self)
        out["failed"] = self.failed
        out["models"] = [_round_dict(asdict(m)) for m in self.models]
        out["totals"] = _round_dict(self.totals())
        return out

    def totals(self) -> dict[str, float]:
        """Sums over the models: trades and PnL."""
        return {
            "trades": float(sum(m.trades for m in self.models)),
            "realised_pnl": sum(m.realised_pnl for m in self.models),
            "unrealised_pnl": sum(m.unrealised_pnl for m in self.models),
            "total_pnl": sum(m.total_pnl for m in self.models),
        }


def _round_dict(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by linear interpolation; ``None`` for no values."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


CURVE_POINTS = 2000
"""Points a drawn curve keeps per series (a report chart is ~700 px wide): past it the series
is downsampled as it grows (``Downsampled``), whatever the length of the run."""


class Downsampled:
    """A series kept in bounded memory as points are added one at a time.

    Every ``stride``-th point is kept, the stride doubling (and every other kept point
    dropped) each time more than ``limit`` points are held, so at most ``limit`` points
    spaced evenly over the whole series remain. Points added with ``keep=True`` (fills:
    per trade, not per bar) are always kept. A series of at most ``limit`` points is kept
    whole.
    """

    def __init__(self, limit: int = CURVE_POINTS) -> None:
        self.limit = max(2, limit)
        self.stride = 1
        self.points: list[Any] = []
        self._tags: list[int] = []  # the point's index among the sampled ones; -1: kept
        self._added = 0
        self._sampled = 0

    def add(self, point: Any, *, keep: bool = False) -> None:
        """Add the next point of the series."""
        if keep:
            self.points.append(point)
            self._tags.append(-1)
            return
        n = self._added
        self._added = n + 1
        if n % self.stride:
            return
        self.points.append(point)
        self._tags.append(n)
        self._sampled += 1
        if self._sampled > self.limit:
            self.stride *= 2
            stride = self.stride
            kept = [(p, t) for p, t in zip(self.points, self._tags, strict=True)
                    if t < 0 or t % stride == 0]  # fmt: skip
            self.points = [p for p, _ in kept]
            self._tags = [t for _, t in kept]
            self._sampled = sum(1 for t in self._tags if t >= 0)


class ModelBook:
    """One model's fills booked against its symbol's bars as they come, in bounded memory.

    Fills are booked with ``core.portfolio.Position`` (the trader's bookkeeping). A fill at a
    bar's open is booked before that bar's close marks the position. The figures (PnL,
    drawdown, exposure, round trips) are exact over every bar; the equity (PnL) curve kept
    for the report has one point per fill and at most ``curve_points`` per-bar points (at the
    bar's end), downsampled as the run grows (``Downsampled``). What is held grows with the
    trades, not with the bars.
    """

    def __init__(self, symbol: str, *, curve_points: int = CURVE_POINTS) -> None:
        self.symbol = symbol
        self.pos = Position(symbol)
        self.commissions = 0.0
        self.curve = Downsampled(curve_points)
        self.fills: list[Fill] = []
        """Fills booked so far, in time order."""
        self._pending: deque[Fill] = deque()
        self.peak = 0.0  # equity starts at 0 (PnL): a loss from the start is a drawdown
        self.max_dd = 0.0
        self.exposed = 0
        self.bars = 0
        self.max_notional = 0.0
        self.trips = 0
        self.wins = 0
        self._trip_start = 0.0

    def add_fills(self, fills: Iterable[Fill]) -> None:
        """Queue fills to book at the first bar at or after their time."""
        pending = self._pending
        for f in fills:
            if pending and f.ts < pending[-1].ts:  # out of time order: rare, keep the queue sorted
                self._pending = pending = deque(sorted([*pending, f], key=lambda x: x.ts))
            else:
                pending.append(f)

    def _book(self, f: Fill) -> None:
        pos = self.pos
        before = pos.qty
        pos.apply(f.signed_qty, f.price)
        self.commissions += f.commission
        after = pos.qty
        realised = pos.realised_pnl - self.commissions
        if before != 0 and (after == 0 or (after > 0) != (before > 0)):
            self.trips += 1
            if realised - self._trip_start > 0:
                self.wins += 1
        if after != 0 and (before == 0 or (after > 0) != (before > 0)):
            self._trip_start = realised
        eq = realised + pos.unrealised_pnl
        self.curve.add((f.ts, eq), keep=True)
        self.fills.append(f)
        self.peak = max(self.peak, eq)
        self.max_dd = max(self.max_dd, self.peak - eq)

    def on_bar(self, ts: int, close: float) -> None:
        """Book the queued fills up to ``ts``, then mark the position at the bar's close."""
        pending = self._pending
        while pending and pending[0].ts <= ts:
            self._book(pending.popleft())
        pos = self.pos
        qty = pos.qty
        pos.last_price = close
        eq = pos.realised_pnl - self.commissions
        if qty:
            self.exposed += 1
            eq += (close - pos.avg_price) * qty
            self.max_notional = max(self.max_notional, abs(qty) * close)
        self.bars += 1
        self.curve.add((ts + NS_PER_MIN, eq))
        if eq > self.peak:
            self.peak = eq
        elif self.peak - eq > self.max_dd:
            self.max_dd = self.peak - eq

    def finish(
        self,
        key: str,
        prefix: str,
        latencies_us: Sequence[float] = (),
        *,
        decisions: int = 0,
    ) -> tuple[ModelSummary, ModelCurve]:
        """Book the fills after the last bar (no price to mark them); the figures and curve."""
        for f in self._pending:
            self._book(f)
        self._pending.clear()
        pos, commissions = self.pos, self.commissions
        summary = ModelSummary(
            key=key,
            prefix=prefix,
            symbol=self.symbol,
            trades=len(self.fills),
            round_trips=self.trips,
            realised_pnl=pos.realised_pnl - commissions,
            unrealised_pnl=pos.unrealised_pnl,
            total_pnl=pos.realised_pnl - commissions + pos.unrealised_pnl,
            max_drawdown=self.max_dd,
            exposure=self.exposed / self.bars if self.bars else 0.0,
            max_notional=self.max_notional,
            hit_rate=self.wins / self.trips if self.trips else None,
            latency_p50_us=percentile(latencies_us, 0.5),
            latency_p99_us=percentile(latencies_us, 0.99),
            decisions=decisions,
            final_position=pos.qty,
            commissions=commissions,
        )
        curve = ModelCurve(key, self.symbol, list(self.curve.points), self.fills,
                           list(latencies_us))  # fmt: skip
        return summary, curve


def summarize_model(
    key: str,
    prefix: str,
    symbol: str,
    fills: Sequence[Fill],
    prices: Sequence[PricePoint],
    latencies_us: Sequence[float] = (),
    *,
    decisions: int = 0,
) -> tuple[ModelSummary, ModelCurve]:
    """Book ``fills`` against the bars in ``prices`` and compute the model's figures
    (``ModelBook``, which a replay feeds bar by bar instead)."""
    book = ModelBook(symbol)
    book.add_fills(sorted(fills, key=lambda f: f.ts))
    for ts, _open, close in sorted(prices):
        book.on_bar(ts, close)
    return book.finish(key, prefix, latencies_us, decisions=decisions)


def price_points(bars: Iterable[Bar]) -> dict[str, list[PricePoint]]:
    """Group bars into per-symbol ``(ts, open, close)`` series, in time order."""
    out: dict[str, list[PricePoint]] = {}
    for b in bars:
        out.setdefault(b.symbol, []).append((b.ts, b.open, b.close))
    for series in out.values():
        series.sort()
    return out


def read_journal_fills(path: Path) -> list[Fill]:
    """Read the fills of a ``trades_<date>.csv`` journal (``[]`` when it does not exist)."""
    if not path.exists():
        return []
    fills: list[Fill] = []
    with path.open(newline="", encoding="utf-8") as fh:
        for n, row in enumerate(csv.DictReader(fh), start=2):
            try:
                fills.append(
                    Fill(
                        client_order_id=row["client_order_id"],
                        broker_order_id=row["broker_order_id"],
                        model=row["model"],
                        symbol=row["symbol"],
                        side=Side(row["side"]),
                        qty=int(row["qty"]),
                        price=float(row["price"]),
                        ts=int(row["ts_ns"]),
                        commission=float(row.get("commission") or 0.0),
                    )
                )
            except (KeyError, ValueError, TypeError) as exc:
                raise DataError(f"{path}:{n}: bad journal row ({exc})") from None
    return fills


def _money(x: float) -> str:
    return f"{x:,.2f}"


def _opt(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def render(summary: RunSummary) -> Any:
    """Build a Rich renderable (two tables and the footer lines) for ``summary``."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    t = Table(title=f"algostack {summary.mode} {summary.day} — models", title_justify="left")
    for col, justify in (
        ("model", "left"),
        ("trades", "right"),
        ("realised", "right"),
        ("unreal.", "right"),
        ("max DD", "right"),
        ("expo.", "right"),
        ("hits", "right"),
        ("p50 µs", "right"),
        ("p99 µs", "right"),
    ):
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    for m in summary.models:
        pnl_style = "green" if m.total_pnl >= 0 else "red"
        t.add_row(
            m.prefix.removeprefix("models/"),
            str(m.trades),
            Text(_money(m.realised_pnl), style=pnl_style),
            _money(m.unrealised_pnl),
            _money(m.max_drawdown),
            f"{m.exposure:.0%}",
            "-" if m.hit_rate is None else f"{m.hit_rate:.0%}",
            _opt(m.latency_p50_us, ".0f"),
            _opt(m.latency_p99_us, ".0f"),
        )
    parts: list[Any] = [t]
    if summary.components:
        c = Table(title="components", title_justify="left")
        for col in ("component", "status", "exit", "restarts", "errors"):
            c.add_column(col)
        for comp in summary.components:
            style = {"failed": "red", "ok": "green"}.get(comp.status, "yellow")
            c.add_row(
                comp.name,
                Text(comp.status, style=style),
                "-" if comp.exit_code is None else str(comp.exit_code),
                str(comp.restarts),
                str(comp.errors),
            )
        parts.append(c)
    tot = summary.totals()
    # Plain text, not markup: a note quotes files, rows and errors ('[/x]' is not a tag).
    lines = [
        Text(
            f"bars {summary.bars:,}  trades {int(tot['trades'])}  PnL {_money(tot['total_pnl'])}  "
            f"wall {summary.wall_s:.1f} s"
        )
    ]
    lines += [Text(note) for note in summary.notes]
    if summary.interrupted:
        lines.append(Text("interrupted: stopped early, journals synced", style="yellow"))
    if summary.bucket:
        lines.append(Text(f"bucket:  {summary.bucket}"))
    if summary.summary_path:
        lines.append(Text(f"summary: {summary.summary_path}"))
    if summary.report:
        lines.append(Text(f"report:  {summary.report}"))
    parts.extend(lines)
    return Group(*parts)
