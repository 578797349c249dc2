"""Replay as a backtest: bars from a file through the live trader's per-bar pipeline.

Each model gets its own ``ModelRunner`` (``services.trader.runner``, the class the live
trader runs) and its own ``SimBroker``, exactly as one trader process would; the bars are
fed in time order as fast as possible, in this process, without NATS. The summary is built
by the same bookkeeping as a live run's (``local.summary.ModelBook``), so backtest and live
cannot drift apart.

A replay streams: ``replay_bars`` takes any iterable of bars (``open_bars(path).bars()``
reads the file as it goes) and keeps per-model state only -- the runner, its broker, the
fills (per trade) and a ``ModelBook`` fed bar by bar -- plus, for the report, each curve and
price series downsampled to ``local.summary.CURVE_POINTS`` points. Memory does not grow with
the number of bars.

A decision's latency here is the pipeline's own time per bar (the bar is handed over ->
decision made): the live figure adds the NATS hop.

Minute bars go to ``ModelRunner.on_bar`` as the trader's do: a model of another timeframe
builds its bars from them. A file of daily bars (a symbol whose first bar is labelled at
midnight New York of a session, as Alpaca labels its ``1Day`` bars) is replayed through
``ModelRunner.on_built_bar``, each bar ending at its session's close, for ``1Day`` models
only (docs/models.md, "Timeframes").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from algostack.adapters.broker import SimBroker
from algostack.core import sessions
from algostack.core.market import Bar, datetime_to_ts, ts_to_datetime
from algostack.core.naming import ModelSpec
from algostack.core.orders import Fill
from algostack.core.risk import RiskLimits
from algostack.core.timeframes import NS_PER_HOUR
from algostack.errors import ConfigError, DataError
from algostack.local.summary import (
    CURVE_POINTS,
    Downsampled,
    ModelBook,
    ModelCurve,
    ModelSummary,
    PricePoint,
)
from algostack.services.trader.runner import ModelRunner
from algostack.services.trader.types import ScoringModel

if TYPE_CHECKING:
    from algostack.adapters.offline.bars_file import ReplaySource


@dataclass(repr=False)
class ReplayOutcome:
    """What a replay produced: per-model figures and curves, the runners, the timings."""

    models: list[ModelSummary]
    curves: list[ModelCurve]
    prices: dict[str, list[PricePoint]]
    """Per symbol, ``(ts, open, close)`` downsampled to at most ``CURVE_POINTS`` points."""
    runners: dict[str, ModelRunner]
    brokers: dict[str, SimBroker]
    bars: int
    bar_events: int
    """Bars handed to runners (a bar counts once per model of its symbol)."""
    loop_s: float
    """Wall time of the per-bar loop: the models, the summary's bookkeeping, and the reading
    of the file when ``bars`` reads it as it goes (no model loading, no report)."""
    notes: list[str] = field(default_factory=list)

    def __repr__(self) -> str:  # asyncio reprs task results: keep it cheap
        return (
            f"ReplayOutcome(bars={self.bars}, models={len(self.models)}, loop_s={self.loop_s:.3f})"
        )

    @property
    def bars_per_s(self) -> float:
        """Bars of the file processed per second of loop time."""
        return self.bars / self.loop_s if self.loop_s > 0 else 0.0


def open_bars(path: Path) -> ReplaySource:
    """Check a bar file (``adapters.offline.bars_file`` rules: one pass, nothing held) and
    return its source; ``src.bars()`` then reads it again as it is consumed. A file without
    a usable bar is a ``DataError``."""
    from algostack.adapters.offline.bars_file import ReplaySource

    src = ReplaySource(Path(path))
    if not src.bar_count:
        raise DataError(
            f"{path}: no usable bars" + (f" ({src.problems[0]})" if src.problems else "")
        )
    return src


def bad_rows_note(src: ReplaySource) -> str:
    """``N bad row(s) skipped, first: <file> row <n>: <why>``: what a replay's summary says
    of the rows ``open_bars`` refused, on one line ("" when it refused none)."""
    skipped = src.stats.malformed
    return f"{skipped} bad row(s) skipped, first: {src.problems[0]}" if skipped else ""


def refuse_untraded(where: str, held: Iterable[str], traded: Iterable[str]) -> None:
    """Refuse bars (a file, an archive range) none of whose symbols ``held`` the models
    trade: a ``DataError`` naming both, before anything starts (``replay`` and ``run
    --replay`` alike; it would replay nothing and exit 0)."""
    have, wanted = set(held), set(traded)
    if not have & wanted:
        shown = ", ".join(sorted(have)[:10]) or "none of them"
        raise DataError(
            f"{where}: none of its symbols ({shown}) is traded by the models "
            f"({', '.join(sorted(wanted))}): nothing to replay"
        )


def load_bars(path: Path) -> tuple[list[Bar], list[str]]:
    """Read a whole bar file into a list (what a short file or a test wants; a replay
    streams ``open_bars(path).bars()`` instead); return bars and the row problems kept."""
    src = open_bars(path)
    return list(src.bars()), list(src.problems)


def resolve_store_root(directory: Path) -> Path:
    """The store root for ``--models DIR``: DIR when it holds ``models/``, its parent when
    DIR is itself the ``models`` folder; ``ConfigError`` otherwise."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(f"model directory {directory} does not exist")
    if (directory / "models").is_dir():
        return directory
    if directory.name == "models":
        return directory.parent
    raise ConfigError(
        f"{directory} holds no models/ folder: "
        "expected models/<type>/<symbol>/<id>-outer_<X>_inner_<Y>.<ext>"
    )


def load_store_models(
    root: Path, *, only: Sequence[str] = ()
) -> tuple[list[tuple[ModelSpec, ScoringModel]], list[str]]:
    """Load every model of the store at ``root``; return (spec, model) pairs and the lines
    that report the keys the catalog ignores (``Catalog.ignored_lines``).

    Each spec carries its trading config (``services.catalog.list_catalog``). ``only`` keeps
    the models whose prefix or key is listed. As in ``algostack run``, nothing replays beside
    a half-understood model: a store without a usable model, or a model kept that cannot
    trade (its ``trading.json``, its timeframe, a fold that does not load) is a
    ``ConfigError`` naming each.
    """
    from algostack.adapters.artifacts.loader import load_models
    from algostack.adapters.storage import LocalDirStore
    from algostack.core.trading_config import TradingConfigError
    from algostack.services.catalog import list_catalog

    store = LocalDirStore(Path(root))
    catalog = list_catalog(store, environment="dev")  # each spec with its trading config
    wanted_entries = [
        e for e in catalog.entries if not only or e.spec.prefix in only or e.spec.key in only
    ]
    bad_config = next((e.config_error for e in wanted_entries if e.config_error), "")
    if bad_config:  # nothing replays on a half-understood model
        raise TradingConfigError(bad_config)
    if only:
        wanted = set(only)
        missing = (
            wanted - {e.spec.prefix for e in wanted_entries} - {e.spec.key for e in wanted_entries}
        )
        if missing:
            raise ConfigError(f"no such model(s) in {root}: {', '.join(sorted(missing))}")
    broken = {e.spec.prefix: "; ".join(e.problems) for e in wanted_entries if not e.ok}
    loaded, failed = load_models(store, [e.spec for e in wanted_entries if e.ok])
    broken.update({p: str(e) for p, e in failed.items()})
    ignored = catalog.ignored_lines()
    if not loaded and not broken:
        detail = "; ".join(ignored) or "no models/ keys"
        raise ConfigError(f"no usable model in {root} ({detail})")
    if broken:
        raise ConfigError(
            f"{len(broken)} model(s) in {root} cannot trade: "
            + "; ".join(f"{p}: {m}" for p, m in broken.items())
        )
    return [(m.spec, m) for m in loaded], ignored


def daily_session_close(ts: int) -> int | None:
    """The close (UTC ns) of the session whose daily bar ``ts`` labels, or ``None`` when
    ``ts`` is not midnight New York of a session date (Alpaca's ``1Day`` label; never a
    minute bar's time: extended hours run 04:00-20:00)."""
    if ts % NS_PER_HOUR:  # midnight New York is a whole UTC hour: most bars stop here
        return None
    day = sessions.new_york_date_of_ns(ts)
    if sessions.new_york_day_bounds_ns(day)[0] != ts:
        return None
    s = sessions.session(day)
    return datetime_to_ts(s.close) if s is not None else None


class _DailyFeed:
    """A daily symbol in the replay: each bar checked to be daily and given its close."""

    __slots__ = ("symbol",)

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol

    def end(self, bar: Bar) -> int:
        """The close of ``bar``'s session; ``DataError`` for a bar that is not daily."""
        end = daily_session_close(bar.ts)
        if end is None:
            when = ts_to_datetime(bar.ts).astimezone(sessions.NEW_YORK).isoformat()
            raise DataError(
                f"{bar.symbol} bar at {when} is not a daily bar (midnight New York of an NYSE "
                f"session) in a file whose first {bar.symbol} bar is: daily and minute bars "
                "mixed"
            )
        return end


def _daily_feed(bar: Bar, runners: Sequence[ModelRunner]) -> _DailyFeed | None:
    """Judge a symbol by its first bar: a ``_DailyFeed`` when it is a daily bar (every model
    of the symbol must then be a ``1Day`` model: ``DataError`` otherwise), else ``None``."""
    if daily_session_close(bar.ts) is None:
        return None
    day = sessions.new_york_date_of_ns(bar.ts).isoformat()
    for runner in runners:
        if not runner.timeframe.daily:
            raise DataError(
                f"{bar.symbol} bars are daily (the first is labelled {day} at midnight New "
                f"York): model {runner.spec.prefix} trades {runner.timeframe} bars, built from "
                "minute bars: replay it on minute bars"
            )
    return _DailyFeed(bar.symbol)


async def replay_bars(
    bars: Iterable[Bar],
    models: Sequence[tuple[ModelSpec, ScoringModel]],
    *,
    limits: RiskLimits | None = None,
    slippage_bps: float = 1.0,
    commission_per_share: float = 0.0,
    journal_root: Path | None = None,
    fsync: bool = False,
    clock: Callable[[], int] = time.time_ns,
    timer: Callable[[], float] = time.perf_counter,
    curve_points: int = CURVE_POINTS,
    prepare: Callable[[ModelSpec, ModelRunner], None] | None = None,
) -> ReplayOutcome:
    """Run ``bars`` (time order) through one ``ModelRunner`` + ``SimBroker`` per model.

    ``prepare(spec, runner)`` is called for each model before the first bar: to warm its
    features or hand it the position it holds into the first day (``local.drift`` does).

    ``bars`` is consumed once, as the loop goes (a list or a file's ``bars()``): nothing per
    bar is kept. Each model's fills are booked bar by bar (``ModelBook``); its equity curve
    and each symbol's prices are downsampled to ``curve_points`` points for the report.
    ``journal_root`` writes each model's journals under ``journal_root/<model key>`` (as a
    live trader would); ``None`` keeps them in memory, which is what a backtest wants.
    A symbol whose first bar is a daily bar (``daily_session_close``) is replayed as daily
    bars: a model of it that is not ``1Day``, or a later bar of it that is not daily, is a
    ``DataError``.
    """
    runners: dict[str, ModelRunner] = {}
    brokers: dict[str, SimBroker] = {}
    lanes: dict[str, _Lane] = {}
    by_symbol: dict[str, list[_Lane]] = {}
    for spec, model in models:
        broker = SimBroker(slippage_bps, commission_per_share, model=spec.key)
        runner = ModelRunner(
            spec,
            model,
            broker,
            limits=limits,
            journal_dir=journal_root / spec.key if journal_root is not None else None,
            fsync=fsync,
            clock=clock,
        )
        if prepare is not None:
            prepare(spec, runner)
        book = ModelBook(spec.symbol, curve_points=curve_points)
        runners[spec.key], brokers[spec.key] = runner, broker
        lanes[spec.key] = _Lane(runner, broker.fills, book)
        by_symbol.setdefault(spec.symbol, []).append(lanes[spec.key])
    prices: dict[str, Downsampled] = {}
    count = events = 0
    empty: list[_Lane] = []
    t0 = timer()
    try:
        if len(runners) == 1:  # a backtest of one model: no per-bar lookup
            ((symbol, (lane,)),) = by_symbol.items()
            on_bar, fills, book = lane.runner.on_bar, lane.fills, lane.book
            series = prices[symbol] = Downsampled(curve_points)
            seen = 0
            judged = False
            daily: _DailyFeed | None = None
            for bar in bars:
                count += 1
                if bar.symbol == symbol:
                    if not judged:
                        daily, judged = _daily_feed(bar, (lane.runner,)), True
                    if daily is None:
                        await on_bar(bar, clock())
                    else:
                        await lane.runner.on_built_bar(bar, daily.end(bar), clock())
                    events += 1
                    if len(fills) > seen:
                        book.add_fills(fills[seen:])
                        seen = len(fills)
                    book.on_bar(bar.ts, bar.close)
                    series.add((bar.ts, bar.open, bar.close))
                else:
                    other = prices.get(bar.symbol)
                    if other is None:
                        other = prices[bar.symbol] = Downsampled(curve_points)
                    other.add((bar.ts, bar.open, bar.close))
            lane.seen = seen
        else:
            feeds: dict[str, _DailyFeed | None] = {}
            for bar in bars:
                count += 1
                sym = bar.symbol
                here = by_symbol.get(sym, empty)
                if here:
                    if sym in feeds:
                        feed = feeds[sym]
                    else:
                        feed = feeds[sym] = _daily_feed(bar, [lane.runner for lane in here])
                    end = feed.end(bar) if feed is not None else 0
                    for lane in here:
                        if feed is None:
                            await lane.runner.on_bar(bar, clock())
                        else:
                            await lane.runner.on_built_bar(bar, end, clock())
                        events += 1
                        lane.take(bar)
                points = prices.get(sym)
                if points is None:
                    points = prices[sym] = Downsampled(curve_points)
                points.add((bar.ts, bar.open, bar.close))
    finally:
        for runner in runners.values():
            runner.close()
    loop_s = timer() - t0
    summaries: list[ModelSummary] = []
    curves: list[ModelCurve] = []
    for key, runner in sorted(runners.items(), key=lambda kv: kv[1].spec.prefix):
        lane = lanes[key]
        lane.book.add_fills(lane.fills[lane.seen :])  # fills after the symbol's last bar
        s, c = lane.book.finish(
            key, runner.spec.prefix, runner.latencies_us, decisions=runner.stats.decisions
        )
        summaries.append(s)
        curves.append(c)
    notes = [
        f"{k}: no bars of {r.symbol} in the file" for k, r in runners.items() if r.stats.bars == 0
    ]
    return ReplayOutcome(
        summaries,
        curves,
        {sym: list(series.points) for sym, series in sorted(prices.items())},
        runners,
        brokers,
        count,
        events,
        loop_s,
        notes,
    )


class _Lane:
    """One model in the loop: its runner, its broker's fill list and its book."""

    __slots__ = ("book", "fills", "runner", "seen")

    def __init__(self, runner: ModelRunner, fills: list[Fill], book: ModelBook) -> None:
        self.runner, self.fills, self.book, self.seen = runner, fills, book, 0

    def take(self, bar: Bar) -> None:
        """Book the fills the bar brought, then mark the bar."""
        fills = self.fills
        if len(fills) > self.seen:
            self.book.add_fills(fills[self.seen :])
            self.seen = len(fills)
        self.book.on_bar(bar.ts, bar.close)
