"""Drift: a day's live trades against the replay of the archived day, fill by fill.

For a day D, every model with a live trades journal in the bucket
(``models/<type>/<SYM>/<id>/live/<D>/trades_<D>.csv``) is replayed over the archived bars of D
(``market/bars/date=<D>/``, the same ``ModelRunner`` and simulated fills as ``algostack
replay``) and its fills are paired with the live ones by ``client_order_id`` (deterministic:
live and replay give the same id to the same decision). Each pair is *matched* (same side,
qty, price and time), or *differs*; a fill without a partner is *only live* or *only in
replay*. Per model the PnL of each side is its cash flow plus the end position marked at the
symbol's last archived close.

Each difference gets one likely cause, by the first rule that holds (``CAUSES``):

1. qty differs -> ``partial or missed fill``.
2. price or time differs, and the archive holds a revised bar (``market/updated_bars``) of the
   symbol at the live or replay fill minute or the minute before -> ``late or revised bar``.
3. price or time differs, and the replay's price is the archived bar's open at its fill time
   moved by the slippage (``core.simfill.FillRules.price``) -> ``live fill price differs from
   the bar (fill, not data)`` (``... fill time ...`` when only the time differs): the data
   is what live traded on, the fill is not what the bar gives.
4. only in replay, and the live log shows that order sent or refused -> ``partial or missed
   fill``.
5. only live with reason ``adopted``, or either side alone while the live log shows a
   resumed trader (``model trading: ... resumed``) -> ``restart``.
6. either side alone while the live log shows a risk event (``risk <kind>: ...``) that day
   -> ``risk state``.
7. anything else -> ``unexplained``.

The log rules (4-6) look at the whole day's ``live_trader.log`` beside the journal: its
timestamps are wall-clock, not bar time, so a risk event or a restart is not tied to one
trade. A model whose features run across sessions is warmed from the archive's earlier
sessions before the day is replayed, as its trader was at start
(``archive_reader.warm_from_archive``), and a model that held a position overnight starts the
replay holding what its live journals of the earlier days end on, as its trader did
(``services.trader.state.carried_position``); a session the archive lacks is a note.
"""

from __future__ import annotations

import asyncio
import csv
import html
import io
import json
import re
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from algostack.adapters.storage import BucketStore, LocalDirStore
from algostack.core.market import Bar
from algostack.core.naming import ModelSpec
from algostack.core.orders import Side
from algostack.core.simfill import FillRules
from algostack.errors import ConfigError, DataError
from algostack.services.archive_reader import warm_from_archive
from algostack.services.trader.runner import ModelRunner
from algostack.services.trader.types import ScoringModel

PARTIAL = "partial or missed fill"
REVISED = "late or revised bar"
FILL_PRICE = "live fill price differs from the bar (fill, not data)"
FILL_TIME = "live fill time differs from the bar (fill, not data)"
RESTART = "restart"
RISK = "risk state"
UNEXPLAINED = "unexplained"
CAUSES = (PARTIAL, REVISED, FILL_PRICE, FILL_TIME, RESTART, RISK, UNEXPLAINED)
"""Every cause a difference can get (the module docstring says when)."""

NS_PER_MIN = 60_000_000_000
PRICE_TOL = 5e-6  # the journals write prices with 6 decimals


@dataclass(frozen=True)
class Trade:
    """One fill of a trades journal (the columns drift compares)."""

    client_order_id: str
    side: str
    qty: int
    price: float
    ts_ns: int
    position_after: int
    commission: float
    reason: str

    @property
    def role(self) -> str:
        """``entry`` when the fill grows the position, ``exit`` when it shrinks it."""
        sign = 1 if self.side == Side.BUY else -1
        before = self.position_after - sign * self.qty
        return "entry" if abs(self.position_after) > abs(before) else "exit"


def read_trades(data: bytes, where: str) -> list[Trade]:
    """The fills of a ``trades_<D>.csv`` (``services.journal.COLUMNS``); ``DataError`` naming
    ``where`` and the row when a column is missing or a value is not a number."""
    rows = csv.DictReader(io.StringIO(data.decode("utf-8")))
    out = []
    for i, r in enumerate(rows, start=2):
        try:
            out.append(
                Trade(
                    r["client_order_id"],
                    r["side"],
                    int(r["qty"]),
                    float(r["price"]),
                    int(r["ts_ns"]),
                    int(r["position_after"]),
                    float(r["commission"] or 0),
                    r.get("reason") or "",
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{where}: line {i}: not a trades journal row ({exc})") from None
    return out


@dataclass(frozen=True)
class LiveLog:
    """What the day's ``live_trader.log`` says that drift uses."""

    resumed: bool = False
    risk_events: int = 0
    orders: frozenset[str] = frozenset()
    """Client order ids the log shows sent or refused."""


_ORDER = re.compile(r"^order (\S+) (?:buy|sell) \d+ \S+ (?:sent|refused)")


def read_live_log(data: bytes) -> LiveLog:
    """Read the JSON lines of a ``live_trader.log`` (a line that is not JSON is skipped)."""
    resumed, risk, orders = False, 0, set()
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            msg = str(json.loads(line).get("msg", ""))
        except (ValueError, AttributeError):
            continue
        if msg.startswith("model trading:") and "resumed" in msg:
            resumed = True
        elif msg.startswith("risk "):
            risk += 1
        elif (m := _ORDER.match(msg)) is not None:
            orders.add(m.group(1))
    return LiveLog(resumed, risk, frozenset(orders))


@dataclass
class ArchivedDay:
    """The archived bars of one day by (symbol, minute), and its revised minutes."""

    ordered: list[Bar] = field(default_factory=list)
    """The bars in time order (as the replay reads them)."""
    bars: dict[tuple[str, int], Bar] = field(default_factory=dict)
    revised: set[tuple[str, int]] = field(default_factory=set)
    last_close: dict[str, float] = field(default_factory=dict)


@dataclass
class Difference:
    """One fill that is not matched: its kind, both sides (either may be absent), cause."""

    client_order_id: str
    kind: str
    """``only live``, ``only replay``, ``qty``, ``price``, ``time`` or ``price and time``."""
    role: str
    cause: str
    live: dict[str, Any] | None
    replay: dict[str, Any] | None
    time_diff_s: float | None = None
    """Live minus replay fill time, seconds (pairs only)."""
    price_diff: float | None = None
    """Live minus replay fill price (pairs only)."""


@dataclass
class ModelDrift:
    """One model's comparison."""

    key: str
    prefix: str
    symbol: str
    live_trades: int
    replay_trades: int
    matched: int
    differences: list[Difference]
    pnl_live: float
    pnl_replay: float

    @property
    def pnl_diff(self) -> float:
        """Live minus replay PnL."""
        return round(self.pnl_live - self.pnl_replay, 4)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d = asdict(self)
        d["pnl_diff"] = self.pnl_diff
        d["only_live"] = sum(x.kind == "only live" for x in self.differences)
        d["only_replay"] = sum(x.kind == "only replay" for x in self.differences)
        d["differ"] = len(self.differences) - d["only_live"] - d["only_replay"]
        return d


@dataclass
class DriftReport:
    """The day's comparison of every model that traded it live."""

    day: str
    bucket: str
    models_store: str
    slippage_bps: float
    models: list[ModelDrift]

    @property
    def differences(self) -> int:
        """Unmatched fills of every model."""
        return sum(len(m.differences) for m in self.models)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``drift_<D>.json``)."""
        return {
            "day": self.day,
            "bucket": self.bucket,
            "models_store": self.models_store,
            "slippage_bps": self.slippage_bps,
            "differences": self.differences,
            "models": [m.to_dict() for m in self.models],
        }


def _side(t: Trade) -> dict[str, Any]:
    return {"side": t.side, "qty": t.qty, "price": t.price, "ts_ns": t.ts_ns, "reason": t.reason}


def _pnl(trades: Iterable[Trade], last_close: float) -> float:
    cash, pos = 0.0, 0
    for t in trades:
        sign = 1 if t.side == Side.BUY else -1
        cash -= sign * t.qty * t.price + t.commission
        pos += sign * t.qty
    return round(cash + pos * last_close, 4)


def _pair_cause(
    live: Trade, rep: Trade, symbol: str, day: ArchivedDay, rules: FillRules
) -> tuple[str, str]:
    """The kind and cause of a pair that differs (rules 1-3)."""
    if live.qty != rep.qty or live.side != rep.side:
        return ("qty" if live.side == rep.side else "side"), PARTIAL
    price = abs(live.price - rep.price) > PRICE_TOL
    kind = "price and time" if price and live.ts_ns != rep.ts_ns else ("price" if price else "time")
    minutes = {live.ts_ns, rep.ts_ns, live.ts_ns - NS_PER_MIN, rep.ts_ns - NS_PER_MIN}
    if any((symbol, m) in day.revised for m in minutes):
        return kind, REVISED
    bar = day.bars.get((symbol, rep.ts_ns))
    if bar is not None and abs(rules.price(bar.open, Side(rep.side)) - rep.price) <= PRICE_TOL:
        return kind, FILL_PRICE if price else FILL_TIME
    return kind, UNEXPLAINED


def _alone_cause(t: Trade, only_live: bool, log: LiveLog) -> str:
    """The cause of a fill without a partner (rules 4-7)."""
    if not only_live and t.client_order_id in log.orders:
        return PARTIAL
    if (only_live and t.reason == "adopted") or log.resumed:
        return RESTART
    if log.risk_events:
        return RISK
    return UNEXPLAINED


def compare(
    spec: ModelSpec,
    live: list[Trade],
    replay: list[Trade],
    day: ArchivedDay,
    log: LiveLog,
    rules: FillRules,
) -> ModelDrift:
    """Pair ``live`` and ``replay`` fills by client order id; classify what is not matched."""
    by_id = {t.client_order_id: t for t in replay}
    live_ids = {t.client_order_id for t in live}
    diffs: list[Difference] = []
    matched = 0
    for t in live:
        r = by_id.get(t.client_order_id)
        if r is None:
            cause = _alone_cause(t, True, log)
            diffs.append(Difference(t.client_order_id, "only live", t.role, cause, _side(t), None))
            continue
        same_price = abs(t.price - r.price) <= PRICE_TOL
        if (t.side, t.qty, t.ts_ns) == (r.side, r.qty, r.ts_ns) and same_price:
            matched += 1
            continue
        kind, cause = _pair_cause(t, r, spec.symbol, day, rules)
        diffs.append(
            Difference(
                t.client_order_id,
                kind,
                t.role,
                cause,
                _side(t),
                _side(r),
                (t.ts_ns - r.ts_ns) / 1e9,
                round(t.price - r.price, 6),
            )
        )
    for r in replay:
        if r.client_order_id not in live_ids:
            cause = _alone_cause(r, False, log)
            diffs.append(
                Difference(r.client_order_id, "only replay", r.role, cause, None, _side(r))
            )
    close = day.last_close.get(spec.symbol, 0.0)
    return ModelDrift(
        spec.key,
        spec.prefix,
        spec.symbol,
        len(live),
        len(replay),
        matched,
        diffs,
        _pnl(live, close),
        _pnl(replay, close),
    )


def live_journal_keys(store: BucketStore, day: str) -> dict[str, str]:
    """Model prefix -> key of its live trades journal of ``day`` in the bucket."""
    tail = f"/live/{day}/trades_{day}.csv"
    return {k[: -len(tail)]: k for k in sorted(store.list_keys("models/")) if k.endswith(tail)}


def read_archived_day(store: BucketStore, day: date, symbols: list[str]) -> ArchivedDay:
    """The day's bars of ``symbols`` (checked by ``services.archive_reader``) and the minutes
    the archive holds a revised bar of."""
    from algostack.services.archive import decode_part
    from algostack.services.archive_reader import ArchiveRange, scan

    rng = ArchiveRange(store, day, day, symbols).check()
    out = ArchivedDay()
    for bar in rng.bars():
        out.ordered.append(bar)
        out.bars[(bar.symbol, bar.ts)] = bar
        out.last_close[bar.symbol] = bar.close
    for listing in scan(store, day=day, kind="updated_bars"):
        for symbol in set(symbols) & set(listing.symbols):
            for key in listing.symbols[symbol].parts:
                for ev, _recv in decode_part("updated_bars", symbol, store.get_bytes(key), key):
                    out.revised.add((symbol, ev.ts))
    return out


def load_models(store: BucketStore, prefixes: list[str]) -> list[tuple[ModelSpec, ScoringModel]]:
    """Load the models of ``prefixes`` from ``store`` with their trading config; a prefix
    missing or unusable is a ``ConfigError`` naming it (a drift needs every model)."""
    from algostack.adapters.artifacts.loader import load_models as load
    from algostack.services.catalog import list_catalog

    entries = {e.spec.prefix: e for e in list_catalog(store).entries}
    for p in prefixes:
        e = entries.get(p)
        if e is None:
            raise ConfigError(f"{store.url}/{p}: traded live but not in the model store")
        if not e.ok:
            raise ConfigError(f"{store.url}/{p}: {'; '.join(e.problems)}")
    loaded, failed = load(store, [entries[p].spec for p in prefixes])
    if failed:
        p, exc = next(iter(failed.items()))
        raise ConfigError(f"{store.url}/{p}: {exc}")
    return [(m.spec, m) for m in loaded]


def drift_day(
    bucket: BucketStore, models_store: BucketStore, day: date, *, slippage_bps: float = 1.0
) -> DriftReport:
    """Compare the live trades of ``day`` in ``bucket`` with the replay of its archived bars.

    ``DataError`` (one line naming the key) for a day not archived or without live trades.
    """
    from algostack.local.replay import replay_bars

    d = day.isoformat()
    journals = live_journal_keys(bucket, d)
    prefixes = sorted(journals)
    symbols = sorted({p.split("/")[2] for p in prefixes})
    archived = read_archived_day(bucket, day, symbols)  # the archive is checked first
    if not prefixes:
        raise DataError(f"{bucket.url}/models/*/*/*/live/{d}/trades_{d}.csv: no live trades")
    loaded = load_models(models_store, prefixes)
    rules = FillRules(slippage_bps)
    with tempfile.TemporaryDirectory(prefix="algostack-drift-") as tmp:

        def prepare(spec: ModelSpec, runner: ModelRunner) -> None:
            """As its trader started the day: features warmed, the overnight position held."""
            if runner.sessions_to_warm():
                warm_from_archive(bucket, runner, spec.symbol, day)
            qty, avg = _carried_in(bucket, spec, d, Path(tmp) / "carried" / spec.key)
            if qty:
                runner.restore(None, [], (qty, avg))
                runner.direction = 1  # long or flat: holding means long

        asyncio.run(
            replay_bars(
                archived.ordered,
                loaded,
                slippage_bps=slippage_bps,
                journal_root=Path(tmp),
                fsync=False,
                prepare=prepare,
            )
        )
        replayed = {spec.prefix: _replay_trades(Path(tmp) / spec.key, d) for spec, _ in loaded}
    models = []
    for spec, _ in loaded:
        key = journals[spec.prefix]
        live = read_trades(bucket.get_bytes(key), f"{bucket.url}/{key}")
        log_key = key.rsplit("/", 1)[0] + "/live_trader.log"
        log = read_live_log(bucket.get_bytes(log_key)) if bucket.stat(log_key) else LiveLog()
        models.append(compare(spec, live, replayed[spec.prefix], archived, log, rules))
    return DriftReport(d, bucket.url, models_store.url, slippage_bps, models)


def _carried_in(bucket: BucketStore, spec: ModelSpec, day: str, scratch: Path) -> tuple[int, float]:
    """The position model ``spec`` holds into ``day``: what its live trades journals of the
    days before it end on (``carried_position``, over copies of them in ``scratch``)."""
    from algostack.services.trader.state import carried_position

    scratch.mkdir(parents=True, exist_ok=True)
    for key in bucket.list_keys(f"{spec.prefix}/live/"):
        name = key.rsplit("/", 1)[-1]
        if name.startswith("trades_") and name.endswith(".csv") and name[7:-4] < day:
            (scratch / name).write_bytes(bucket.get_bytes(key))
    return carried_position(scratch, day, spec.symbol)


def _replay_trades(directory: Path, day: str) -> list[Trade]:
    path = directory / f"trades_{day}.csv"
    return read_trades(path.read_bytes(), str(path)) if path.exists() else []


def open_models_store(models: str | None, bucket: BucketStore) -> BucketStore:
    """``--models``: s3://<bucket> or a directory holding ``models/`` (default: the bucket)."""
    if models is None:
        return bucket
    if models.startswith("s3://"):
        from algostack.adapters.storage import open_store

        return open_store(models)
    from algostack.local.replay import resolve_store_root

    return LocalDirStore(resolve_store_root(Path(models)))


def _fmt_side(s: dict[str, Any] | None) -> str:
    if s is None:
        return "-"
    from algostack.core.market import ts_to_datetime

    when = ts_to_datetime(s["ts_ns"]).strftime("%H:%M:%S")
    return f"{s['side']} {s['qty']} @ {s['price']:.4f} {when}Z"


def table_lines(report: DriftReport) -> list[str]:
    """The report as text: a line per model, then a line per difference."""
    out = [f"drift {report.day}: {report.bucket} (models {report.models_store})"]
    for m in report.models:
        out.append(
            f"{m.key}: {m.matched}/{m.live_trades} live fills matched, "
            f"{m.replay_trades} in replay, {len(m.differences)} difference(s), "
            f"PnL live {m.pnl_live:.2f} replay {m.pnl_replay:.2f} diff {m.pnl_diff:.2f}"
        )
        for x in m.differences:
            out.append(
                f"  {x.kind} {x.role} {x.client_order_id}: live {_fmt_side(x.live)} | "
                f"replay {_fmt_side(x.replay)}: {x.cause}"
            )
    n = report.differences
    out.append(f"{n} difference(s)" if n else "no difference")
    return out


def to_html(report: DriftReport) -> str:
    """One page: a summary line and a table per model (no scripts)."""
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>drift {e(report.day)}</title>",
        "<style>body{font-family:sans-serif}table{border-collapse:collapse;margin-bottom:1em}"
        "td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body>",
        f"<h1>Drift {e(report.day)}: live vs replay</h1>",
        f"<p>{e(report.bucket)}, models {e(report.models_store)}, slippage "
        f"{report.slippage_bps} bps: {report.differences} difference(s)</p>",
    ]
    for m in report.models:
        parts.append(
            f"<h2>{e(m.key)}</h2><p>{m.matched} of {m.live_trades} live fills matched, "
            f"{m.replay_trades} in replay; PnL live {m.pnl_live:.2f}, replay "
            f"{m.pnl_replay:.2f}, difference {m.pnl_diff:.2f}</p>"
        )
        if not m.differences:
            continue
        parts.append(
            "<table><tr><th>client order id</th><th>kind</th><th>role</th><th>live</th>"
            "<th>replay</th><th>time diff s</th><th>price diff</th><th>cause</th></tr>"
        )
        for x in m.differences:
            cells = (
                x.client_order_id,
                x.kind,
                x.role,
                _fmt_side(x.live),
                _fmt_side(x.replay),
                "" if x.time_diff_s is None else f"{x.time_diff_s:g}",
                "" if x.price_diff is None else f"{x.price_diff:.6f}",
                x.cause,
            )
            parts.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in cells) + "</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(report: DriftReport, out: Path) -> tuple[Path, Path]:
    """Write ``drift_<D>.json`` and ``drift_<D>.html`` into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    js, page = out / f"drift_{report.day}.json", out / f"drift_{report.day}.html"
    js.write_text(json.dumps(report.to_dict(), indent=1) + "\n", encoding="utf-8")
    page.write_text(to_html(report), encoding="utf-8")
    return js, page
