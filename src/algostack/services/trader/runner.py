"""The per-bar pipeline of one model, shared by the live trader and the in-process replay.

``ModelRunner.on_bar(bar, recv_ns)``: the bar's checks and features -> fills of earlier orders
(``broker.on_bar``) -> ensemble score -> target direction (thresholds) -> target position
(risk) -> order intent -> risk check -> ``broker.submit``. It never touches NATS: the service
(``service.py``) feeds it from a durable consumer, a replay loop feeds it from a list, both
get the same decisions.

A ``1Min`` model decides on each minute bar as it comes. Every other timeframe
(``core.timeframes``) is built from the minute bars by a ``BarBuilder``: the broker sees every
session minute bar (an order fills at the open of the first minute bar after its decision),
and the model decides on each bar the builder completes, at that bar's ``end``
(docs/models.md, "Timeframes"). ``on_built_bar`` takes a bar already at the model's
timeframe (a replay of a daily file).

Bad input never reaches the broker: a bar of another symbol or kind, with NaN/inf or
impossible prices, not on a whole minute, duplicate or out of order is refused, counted in
``stats`` and logged once with the reason. A bar at or before ``last_decided_ts`` (NATS
redelivering after a restart) only updates the features.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from enum import Enum
from pathlib import Path
from typing import Final, NamedTuple

import msgspec
import numpy as np

from algostack.adapters.broker import Broker
from algostack.core import sessions
from algostack.core.events import Decision, PnlUpdate, RiskUpdate
from algostack.core.features import BadBarError, FeatureEngine
from algostack.core.market import NS_PER_MIN, Bar, TradingStatus
from algostack.core.naming import ModelSpec
from algostack.core.orders import Fill, OrderAck, OrderIntent, OrderStatus, Portfolio, Side
from algostack.core.risk import RiskEngine, RiskEvent, RiskLimits
from algostack.core.signals import target_direction
from algostack.core.timeframes import BarBuilder, BuiltBar, parse_timeframe
from algostack.errors import RetryableError
from algostack.services.journal import TradeJournal
from algostack.services.trader.state import DecisionLog, PendingOrder, RunnerState
from algostack.services.trader.types import RunnerStats, ScoringModel

log = logging.getLogger("algostack.trader")


class _Refused(Enum):
    REFUSED = "refused"


_REFUSED: Final = _Refused.REFUSED
"""What ``ModelRunner._take`` returns for a bar it refused."""


class _Booked(NamedTuple):
    """A fill as booked: the position and realised PnL right after it (for the journal)."""

    fill: Fill
    order: PendingOrder | None
    position_after: int
    realised_pnl: float


class Submitted(NamedTuple):
    """What became of one order a decision made (a column group of the decision log)."""

    status: str
    """``submitted``, ``duplicate`` (the broker already held it), ``rejected``, ``risk``."""
    reason: str
    """Why it was refused (empty when submitted)."""
    qty: int
    """Shares sent (0 when refused)."""
    client_order_id: str


class ModelRunner:
    """One model's decisions, orders, fills and journals (no NATS; see module docstring).

    ``journal_dir=None`` keeps everything in memory (fast replays). ``fsync=False`` writes the
    journals without fsync. ``clock`` gives the wall time in UTC ns for latency figures. A
    timeframe the trader cannot build is a ``ConfigError`` (one line).
    """

    def __init__(
        self,
        spec: ModelSpec,
        model: ScoringModel,
        broker: Broker,
        *,
        limits: RiskLimits | None = None,
        journal_dir: Path | None = None,
        fsync: bool = True,
        emit: Callable[[str, msgspec.Struct], None] | None = None,
        clock: Callable[[], int] = time.time_ns,
        starting_equity: float = 0.0,
    ) -> None:
        self.spec = spec
        self.key = spec.key
        self.symbol = spec.symbol
        self.model = model
        self.broker = broker
        self.timeframe = parse_timeframe(model.timeframe)
        self.bar_ns = NS_PER_MIN  # bars are minute bars, or built on whole minutes
        self._builder: BarBuilder | None = (
            None
            if self.timeframe.width_ns == NS_PER_MIN
            else BarBuilder(self.timeframe, spec.symbol)
        )
        """Builds the model's bars from minute bars (``None`` for ``1Min``: each minute bar
        is decided as it comes, today's path and cost)."""
        self.thresholds = model.thresholds
        self.journal_dir = Path(journal_dir) if journal_dir is not None else None
        self.fsync = fsync
        self._emit = emit
        self._clock = clock
        # The model's trading config (services.catalog.with_trading); ``limits`` overrides its
        # limits (a bench, a test), no config is RiskLimits() sized up to the caps.
        trading = spec.trading
        self.limits = limits or (trading.limits if trading is not None else RiskLimits())
        daily = self.timeframe.daily
        flatten = trading.flatten_before_close if trading is not None else None
        self.flatten_before_close = (not daily) if flatten is None else flatten
        """Flat before each close (the default of minute and hour models), or positions held
        overnight (the default of daily ones)."""
        # A session holds one daily bar: a daily model's features always run across sessions.
        self.continuous = daily or (trading is not None and trading.features == "continuous")
        """Features (and the signal's direction) run across sessions instead of restarting."""
        self.risk = RiskEngine(
            self.limits,
            self.key,
            sizing=trading.sizing if trading is not None else None,
            flatten_before_close=self.flatten_before_close,
            on_event=self._on_risk_event,
        )
        self.portfolio = Portfolio(self.key, starting_equity=starting_equity)
        self._pos = self.portfolio.position(self.symbol)  # the one position this model holds
        self.features = FeatureEngine(model.features)
        self.stats = RunnerStats()
        self.day: date | None = None
        self._day_lo = 0
        self._day_hi = 0
        """``[lo, hi)``: the current New York day in UTC ns (one date conversion per day)."""
        self._pnl_day_start = 0.0
        """Total PnL at the previous day's last mark: the loss limit watches the day's PnL."""
        self._carried: tuple[int, float] | None = None
        """A position restored from earlier sessions, until the first mark rebases the day."""
        self.direction = 0
        self.last_decided_ts = 0
        self.last_bar_ts = 0
        self.pending: dict[str, PendingOrder] = {}
        self.latencies_us: deque[float] = deque(maxlen=4096)
        """The latest decision latencies (µs) of bars that carried a receive time."""
        self.needs_commit = False
        """Set when an order or a fill happened since the last commit (commit before ack)."""
        self._journaled_ahead: dict[str, int] = {}
        self._journal: TradeJournal | None = None
        self._decisions: DecisionLog | None = None
        self._decisions_committed: int | None = None

    # -- events --------------------------------------------------------------------------------

    def _on_risk_event(self, ev: RiskEvent) -> None:
        log.warning(
            "risk %s: %s -> %s: %s",
            ev.kind,
            ev.from_state,
            ev.to_state,
            ev.reason,
            extra={"fields": {"model": self.key, "symbol": ev.symbol}},
        )
        if self._emit is not None:
            self._emit(
                "risk",
                RiskUpdate(
                    model=self.key,
                    ts=self._clock(),
                    state=str(ev.to_state),
                    previous=str(ev.from_state),
                    reason=ev.reason,
                    daily_pnl=self.risk.daily_pnl,
                ),
            )

    # -- position ------------------------------------------------------------------------------

    @property
    def position(self) -> int:
        """Signed shares held (from fills)."""
        return self._pos.qty

    @property
    def pending_qty(self) -> int:
        """Signed shares ordered and not filled yet."""
        return sum(
            (p.intent.qty - p.filled_qty) * p.intent.side.sign for p in self.pending.values()
        )

    # -- days ----------------------------------------------------------------------------------

    def _roll_day(self, day: date) -> None:
        if self.day is not None:
            self.risk.reset_day(0)
            # the loss limit watches the day's PnL: measure it from the last mark of the day
            # before (a restart's portfolio holds only its own day's fills: baseline 0)
            self._pnl_day_start = self.portfolio.last_pnl
            if not self.continuous:
                self.features = FeatureEngine(self.model.features)
                self.direction = 0
        self.day = day
        self._day_lo, self._day_hi = sessions.new_york_day_bounds_ns(day)
        if self.journal_dir is not None:
            self._close_files()
            iso = day.isoformat()
            # fills are fsynced by the service's commit (before the state that covers them),
            # so their write never blocks a decision; ``fsync`` forces one per fill.
            self._journal = TradeJournal(self.journal_dir, iso, fsync=self.fsync)
            self._decisions = DecisionLog(
                self.journal_dir, iso, committed=self._decisions_committed
            )
            self._decisions_committed = None

    def _close_files(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._decisions is not None:
            self._decisions.close()
            self._decisions = None

    # -- restart -------------------------------------------------------------------------------

    def restore(
        self,
        state: RunnerState | None,
        journal_fills: list[Fill],
        carried: tuple[int, float] = (0, 0.0),
    ) -> None:
        """Resume from the last commit and the fill journal of ``state.day`` (call first).

        ``carried`` is the position held into that day from earlier sessions (shares, average
        entry price: ``state.carried_position``), for a model that holds overnight; it opens
        the book, and the day's PnL (what the daily loss limit watches) counts the carried
        shares from the first price the restarted trader sees. Fills up to the last committed
        bar rebuild the position. Fills journaled after it belong to bars NATS will redeliver:
        when the broker reports them again they move the position but are not journaled twice.
        """
        qty, avg = carried
        if qty:
            self._pos.apply(qty, avg)  # opens from flat: realises nothing
            self._carried = carried
        cut = self._fills_covered(state.last_decided_ts) if state is not None else None
        done: dict[str, int] = {}
        for f in journal_fills:
            if f.model != self.key:
                continue
            if cut is None or f.ts <= cut:
                self.portfolio.apply_fill(f)
                done[f.client_order_id] = done.get(f.client_order_id, 0) + f.qty
            else:
                ahead = self._journaled_ahead
                ahead[f.client_order_id] = ahead.get(f.client_order_id, 0) + f.qty
        if state is None:
            return
        self.direction = state.direction
        self.last_decided_ts = state.last_decided_ts
        self.stats.decisions = state.decisions
        self.stats.orders = state.orders
        if state.killed:
            self.risk.kill("thrown before the restart", state.last_decided_ts)
        for p in state.pending:
            filled = done.get(p.intent.client_order_id, 0)
            if filled < p.intent.qty:
                self.pending[p.intent.client_order_id] = msgspec.structs.replace(
                    p, filled_qty=filled
                )
        if state.day:
            self._decisions_committed = state.decisions_offset
            self._roll_day(date.fromisoformat(state.day))

    def _fills_covered(self, last_decided_ts: int) -> int:
        """The last fill time a commit made after deciding ``last_decided_ts`` covers.

        A minute model's orders fill on later minute bars: its last decided bar. A built
        bar's orders fill from its end on, and the minutes between two decisions fill them:
        a commit covers every fill before the end of the bar after its last decided one (an
        order of that bar, decided after the commit, fills at its end or later).
        """
        if self._builder is None or not last_decided_ts:
            return last_decided_ts
        tf = self.timeframe
        day = sessions.new_york_date_of_ns(last_decided_ts)
        today = sessions.session(day)
        if today is not None:
            for label, _start, end in tf.bins(today):
                if label > last_decided_ts:
                    return end - 1
        after = sessions.next_session(day + timedelta(days=1))
        return tf.bins(after)[0][2] - 1

    async def restore_broker(self, seq: int) -> None:
        """Start the broker with what ``restore`` rebuilt: the open orders, the position, and
        the broker's committed checkpoint ``seq`` (``RunnerState.broker_seq``; 0 at first)."""
        await self.broker.restore(
            [(p.broker_order_id, p.intent) for p in self.pending.values()],
            {self.symbol: self.position},
            seq,
        )

    def snapshot(self, stream_seq: int = 0, broker_seq: int = 0) -> RunnerState:
        """The state to commit now; writes the decision lines it covers (then, off the loop:
        ``sync_journals``, then ``save_state``)."""
        self.write_journals()
        return RunnerState(
            model=self.key,
            day=self.day.isoformat() if self.day else "",
            last_decided_ts=self.last_decided_ts,
            stream_seq=stream_seq,
            direction=self.direction,
            pending=list(self.pending.values()),
            decisions_offset=self._decisions.offset if self._decisions else 0,
            broker_seq=broker_seq,
            killed=self.risk.killed,
            bars=self.stats.bars,
            decisions=self.stats.decisions,
            orders=self.stats.orders,
            restarts=self.stats.restarts,
        )

    @property
    def trades_path(self) -> Path | None:
        """The fill journal of the current day (``None`` without a journal directory)."""
        return self._journal.path if self._journal is not None else None

    def write_journals(self) -> None:
        """Write the decision lines appended so far (one system call; on the event loop)."""
        if self._decisions is not None:
            self._decisions.write()

    def sync_journals(self) -> None:
        """Make the decision log durable (fills are fsynced as they are written)."""
        if self._decisions is not None:
            self._decisions.sync()

    def close(self) -> None:
        """fsync and close the journals."""
        self._close_files()

    # -- bars ----------------------------------------------------------------------------------

    def _wrong(self, bar: object) -> _Refused:
        """Refuse a bar of another symbol or kind (counted, logged)."""
        self.stats.wrong_bars += 1
        log.warning(
            "bar refused: %s %s is not a minute bar of %s",
            type(bar).__name__,
            getattr(bar, "symbol", "?"),
            self.symbol,
            extra={"fields": {"model": self.key}},
        )
        return _REFUSED

    def _take(self, bar: Bar) -> np.ndarray | _Refused | None:
        """Check ``bar`` (a minute bar, or a bar of the model's timeframe) and feed it to the
        features: the feature vector (``None`` while they warm up), or ``_REFUSED`` (counted
        in ``stats``, logged with the reason).

        The runner's own rules (a bar of the model's symbol, on a whole minute, not of a day
        before the current one) are checked here, the bar's values and its order by
        ``FeatureEngine.update``; nothing else sees a bar before this accepted it.
        """
        if type(bar) is not Bar or bar.symbol != self.symbol:
            return self._wrong(bar)
        ts = bar.ts
        if ts % self.bar_ns:
            self.stats.wrong_bars += 1
            log.warning(
                "bar refused: %s @ %d is not aligned to the model's %s timeframe",
                bar.symbol,
                ts,
                self.model.timeframe,
                extra={"fields": {"model": self.key}},
            )
            return _REFUSED
        if not self._day_lo <= ts < self._day_hi:
            day = sessions.new_york_date_of_ns(ts)
            if day != self.day:
                if self.day is not None and day < self.day:
                    self.stats.skipped_bars += 1
                    return _REFUSED
                self._roll_day(day)
        features = self.features
        skipped = features.skipped
        try:
            x = features.update(bar)
        except BadBarError as exc:
            self.stats.bad_bars += 1
            log.warning("bar refused: %s", exc, extra={"fields": {"model": self.key}})
            return _REFUSED
        if features.skipped != skipped:
            self.stats.skipped_bars += 1
            log.warning(
                "bar refused: %s @ %d is a duplicate or out of order (last %d)",
                bar.symbol,
                ts,
                self.last_bar_ts,
                extra={"fields": {"model": self.key}},
            )
            return _REFUSED
        self.stats.bars += 1
        if ts > self.last_bar_ts:  # a built bar's label is before the minutes already seen
            self.last_bar_ts = ts
        return x

    def _push(self, builder: BarBuilder, bar: Bar) -> tuple[tuple[BuiltBar, ...], bool]:
        """Feed a minute bar of the symbol to the builder: the bars it completed, and True
        when the bar went into a bin (a session minute bar, in order, on a whole minute).
        The bars the builder ignores are counted (and logged, but for the ones outside the
        session, which every pre-market minute is)."""
        outside, stale = builder.outside, builder.stale
        built = builder.push(bar)
        if builder.outside != outside:
            self.stats.outside_bars += 1
            return built, False
        if builder.stale != stale:
            self.stats.skipped_bars += 1
            log.warning(
                "bar refused: %s @ %d is a duplicate, out of order or late for its %s bar",
                bar.symbol,
                bar.ts,
                self.timeframe,
                extra={"fields": {"model": self.key}},
            )
            return built, False
        if bar.ts % NS_PER_MIN:
            self.stats.wrong_bars += 1
            log.warning(
                "bar refused: %s @ %d is not on a whole minute",
                bar.symbol,
                bar.ts,
                extra={"fields": {"model": self.key}},
            )
            return built, False
        return built, True

    def warm(self, bar: Bar) -> None:
        """Feed a historical minute bar to the features only (no fills, no decision, no
        order). A model whose bars are built builds them, so a restart that re-feeds the
        session's minute bars rebuilds the bar it was in the middle of."""
        builder = self._builder
        if builder is None:
            if self._take(bar) is not _REFUSED:
                self.stats.warmup_bars += 1
            return
        if type(bar) is not Bar or bar.symbol != self.symbol:
            self._wrong(bar)
            return
        for built in self._push(builder, bar)[0]:
            if self._take(built.bar) is not _REFUSED:
                self.stats.warmup_bars += 1

    def sessions_to_warm(self) -> int:
        """Earlier sessions of minute bars this model's features need before its first live
        bar can be decided (0 when its features restart each session)."""
        if not self.continuous:
            return 0
        tf = self.timeframe
        per_session = 1 if tf.daily else max(1, 390 * NS_PER_MIN // tf.width_ns)
        return -(-self.features.warmup_bars // per_session)

    def warm_history(self, bars: Iterable[Bar]) -> int:
        """Feed earlier sessions' minute bars (in time order, before any of the current
        session's) to the features only: no day roll, no journal, no broker. For a model
        whose features run across sessions (``sessions_to_warm``); the bars it used."""
        used = 0
        builder = self._builder
        features = self.features
        for bar in bars:
            if type(bar) is not Bar or bar.symbol != self.symbol:
                continue
            done = [bar] if builder is None else [b.bar for b in builder.push(bar)]
            for one in done:
                try:
                    features.update(one)
                except BadBarError:
                    continue
                used += 1
        self.stats.warmup_bars += used
        return used

    async def on_bar(self, bar: Bar, recv_ns: int = 0) -> bool:
        """Process one minute bar; True when a bar was decided (False: refused, redelivered,
        or a minute inside a bar of the model's timeframe still being built).

        ``recv_ns`` is when the ingest received the frame (UTC ns, 0 when unknown): the
        decision's latency is measured from it. A bar is decided while the features warm up
        too (NaN score, no order). With ``emit`` set, each decision is emitted as a
        ``Decision``; without it none is built (the replay's hot path).
        """
        builder = self._builder
        if builder is not None:
            return await self._on_minute(builder, bar, recv_ns)
        x = self._take(bar)  # before anything else sees the bar
        if x is _REFUSED:
            return False
        ts = bar.ts
        if ts <= self.last_decided_ts:
            self.stats.redelivered += 1  # decided before a restart: features rebuilt, no more
            return False
        booked = await self._collect(bar) if self.pending else []
        await self._decide(bar, x, ts + NS_PER_MIN, booked, recv_ns)
        return True

    async def _on_minute(self, builder: BarBuilder, bar: Bar, recv_ns: int) -> bool:
        """``on_bar`` of a model whose bars are built: the minute bar goes to the builder and,
        a session minute bar, to the broker (the next bar that fills earlier orders); each
        bar it completed is decided at its end."""
        if type(bar) is not Bar or bar.symbol != self.symbol:
            self._wrong(bar)
            return False
        built, taken = self._push(builder, bar)
        if bar.ts > self.last_bar_ts:
            self.last_bar_ts = bar.ts  # progress reported in heartbeats: every minute seen
        decided = False
        late = 1 if built and built[0].end <= bar.ts else 0
        if late:
            # completed by this later bar (its last minutes never came): decided first, so
            # its order fills at this bar's open, the next bar after its end
            decided = await self._decide_built(built[0], recv_ns)
        if taken:
            ts = bar.ts
            if not self._day_lo <= ts < self._day_hi:
                day = sessions.new_york_date_of_ns(ts)
                if self.day is None or day > self.day:
                    self._roll_day(day)  # before the fills at the session's first minute
            if self.pending:
                booked = await self._collect(bar)
                if booked:
                    self._journal_fills(booked)
        for done in built[late:]:
            decided = await self._decide_built(done, recv_ns) or decided
        return decided

    async def _decide_built(self, built: BuiltBar, recv_ns: int) -> bool:
        """Decide a bar the builder completed, at its end (its minutes went to the broker)."""
        bar = built.bar
        x = self._take(bar)
        if x is _REFUSED:
            return False
        if bar.ts <= self.last_decided_ts:
            self.stats.redelivered += 1  # decided before a restart: features rebuilt, no more
            return False
        await self._decide(bar, x, built.end, [], recv_ns)
        return True

    async def on_built_bar(self, bar: Bar, end: int, recv_ns: int = 0) -> bool:
        """Process one bar already at the model's timeframe (a bar of a daily file), whose
        bin ends at ``end`` (UTC ns: a daily bar's session close); True when decided.

        The broker sees the bar itself (orders decided on the bar before fill at its open),
        then the model decides on it at ``end``, as on a bar it built.
        """
        x = self._take(bar)
        if x is _REFUSED:
            return False
        if bar.ts <= self.last_decided_ts:
            self.stats.redelivered += 1
            return False
        booked = await self._collect(bar) if self.pending else []
        await self._decide(bar, x, end, booked, recv_ns)
        return True

    async def _decide(
        self, bar: Bar, x: np.ndarray | None, now: int, booked: list[_Booked], recv_ns: int
    ) -> None:
        """Decide on ``bar`` (its features ``x``) at ``now``, its end: mark, score, size, order.

        The order's ``bar_ts`` is the start of the bar's last minute (``now`` - 1 minute; a
        minute bar's own start), so a broker filling "at the next bar after ``bar_ts``"
        fills at the first minute bar from ``now`` on, never at a minute inside the bar.
        """
        ts = bar.ts
        c = bar.close
        portfolio, risk = self.portfolio, self.risk
        portfolio.mark(self.symbol, c, now)
        if self._carried is not None:  # the overnight move up to now is not today's PnL
            shares, entry = self._carried
            self._pnl_day_start += shares * (c - entry)
            self._carried = None
        risk.on_mark(portfolio.last_pnl - self._pnl_day_start, now)

        position = self._pos.qty
        pending = self.pending_qty if self.pending else 0
        score = math.nan
        finite = False
        status = "warmup"
        reason = ""
        if x is not None:
            score = self.model.score(x)
            finite = math.isfinite(score)
            if finite:
                self.direction = target_direction(score, self.direction, self.thresholds)
            else:
                reason = f"model score {score!r} is not finite: no order"
                log.warning(reason, extra={"fields": {"model": self.key, "bar_ts": ts}})
            status = "none"
        target, flatten = risk.sizing(self.direction if finite else 0, c, now, position=position)
        if not finite and not flatten:
            target = position + pending  # warming up or no usable score: hold
        delta = target - position - pending
        decided_ns = self._clock()
        latency_us = (decided_ns - recv_ns) / 1e3 if recv_ns else 0.0
        order_qty = 0
        cid = ""
        if delta:
            intent = OrderIntent(
                model=self.key,
                symbol=self.symbol,
                side=Side.for_delta(delta),
                qty=abs(delta),
                bar_ts=now - NS_PER_MIN,
                decided_ns=decided_ns,
                score=score if finite else 0.0,
                reason="flatten" if target == 0 and flatten else "signal",
                price=c,
            )
            status, reason, order_qty, cid = await self._submit(
                intent, position + pending, bar, now, latency_us
            )
            reason = reason or intent.reason
            order_qty *= intent.side.sign
        if recv_ns:
            self.latencies_us.append(latency_us)
        self.last_decided_ts = ts
        self.stats.decisions += 1
        if self._decisions is not None:
            self._decisions.append(
                (
                    ts,
                    repr(c),
                    "" if score != score else f"{score:.9g}",
                    self.direction,
                    target,
                    position,
                    order_qty,
                    cid,
                    status,
                    f"{latency_us:.1f}",
                    reason,
                )
            )
        if self._emit is not None:
            self._emit(
                "decision",
                Decision(
                    model=self.key,
                    ts=decided_ns,
                    symbol=self.symbol,
                    bar_ts=ts,
                    score=score,
                    direction=self.direction,
                    target_qty=target,
                    order_qty=order_qty,
                    latency_us=latency_us,
                ),
            )
        # Fills are journaled after the decision so their fsync does not delay it.
        if booked:
            self._journal_fills(booked)

    async def _submit(
        self, intent: OrderIntent, exposure: int, bar: Bar, now: int, latency_us: float
    ) -> Submitted:
        """Risk-check and submit; what happened to the order (``Submitted``).

        The id is the broker's ack's (the id it holds the order under; every broker echoes
        ``intent.client_order_id``), so it is derived once per order (a SHA-256), not twice.
        """
        verdict = self.risk.check(intent, position=exposure, price=bar.close, now_ns=now)
        if not verdict.approved:
            return Submitted("risk", verdict.reason, 0, intent.client_order_id)
        if verdict.qty != intent.qty:
            intent = msgspec.structs.replace(intent, qty=verdict.qty)
        ack = None
        try:
            ack = await self.broker.submit(intent)
        except RetryableError as exc:  # brokers retry at their own edge; this is final
            log.warning("submit %s failed: %s", intent.client_order_id, exc,
                        extra={"fields": {"model": self.key}})  # fmt: skip
        cid = ack.client_order_id if ack is not None else intent.client_order_id
        if ack is None or ack.status is OrderStatus.REJECTED:
            self.stats.rejected += 1
            why = ack.message if ack is not None else "broker unreachable"
            log.error(
                "order %s %s %d %s refused: %s",
                cid,
                intent.side.value,
                intent.qty,
                intent.symbol,
                why,
                extra={"fields": {"model": self.key, "bar_ts": intent.bar_ts}},
            )
            self.needs_commit = True
            return Submitted("rejected", why, 0, cid)
        self.needs_commit = True
        self.pending[cid] = PendingOrder(
            intent=intent, broker_order_id=ack.broker_order_id, latency_us=latency_us
        )
        if ack.duplicate:
            self.stats.duplicates_acked += 1
            log.info(
                "order %s already at the broker (%s): not placed again",
                cid,
                ack.broker_order_id,
                extra={"fields": {"model": self.key}},
            )
            return Submitted("duplicate", ack.message, intent.qty, cid)
        self.stats.orders += 1
        if log.isEnabledFor(logging.INFO):  # a replay trades thousands of times, quietly
            log.info(
                "order %s %s %d %s sent (%s)",
                cid,
                intent.side.value,
                intent.qty,
                intent.symbol,
                ack.broker_order_id,
                extra={
                    "fields": {"model": self.key, "score": intent.score, "reason": intent.reason}
                },
            )
        return Submitted("submitted", "", intent.qty, cid)

    # -- fills ---------------------------------------------------------------------------------

    async def _collect(self, bar: Bar | None) -> list[_Booked]:
        """Book what the broker reports (its fills at ``bar``, or since the last call)."""
        booked = []
        for f in await self.broker.on_bar(bar):
            b = self._book(f)
            if b is not None:
                booked.append(b)
        for ack in self.broker.drain_closed():
            self._closed(ack)
        return booked

    async def take_reports(self) -> None:
        """Book and journal the fills and closures a broker reported between two bars."""
        booked = await self._collect(None)
        if booked:
            self._journal_fills(booked)

    def _closed(self, ack: OrderAck) -> None:
        """An order ended without (all of) its shares: forget what will never come."""
        p = self.pending.pop(ack.client_order_id, None)
        if p is None:
            return
        self.stats.rejected += 1
        self.needs_commit = True
        log.error(
            "order %s %s %d %s ended with %d unfilled: %s",
            ack.client_order_id,
            p.intent.side.value,
            p.intent.qty,
            p.intent.symbol,
            p.intent.qty - p.filled_qty,
            ack.message,
            extra={"fields": {"model": self.key, "bar_ts": p.intent.bar_ts}},
        )

    def _book(self, fill: Fill) -> _Booked | None:
        """Apply a fill to the position; what to journal (``None``: already journaled)."""
        cid = fill.client_order_id
        p = self.pending.get(cid)
        if p is not None:
            filled = p.filled_qty + fill.qty
            if filled >= p.intent.qty:
                del self.pending[cid]
            else:
                self.pending[cid] = msgspec.structs.replace(p, filled_qty=filled)
        self.portfolio.apply_fill(fill)
        self.risk.on_fill(fill, self.portfolio.total_pnl - self._pnl_day_start)
        self.stats.fills += 1
        self.needs_commit = True
        ahead = self._journaled_ahead.get(cid, 0)
        if ahead > 0:
            # Journaled before a crash, reported again after the redelivery: book, not log.
            used = min(ahead, fill.qty)
            self._journaled_ahead[cid] = ahead - used
            self.stats.fills_already_journaled += used
            if used == fill.qty:
                return None
            fill = msgspec.structs.replace(fill, qty=fill.qty - used)
        return _Booked(fill, p, self._pos.qty, self.portfolio.realised_pnl)

    def _journal_fills(self, booked: list[_Booked]) -> None:
        for f, p, position_after, realised in booked:
            if self._journal is not None:
                self._journal.append(
                    f,
                    score=p.intent.score if p else 0.0,
                    latency_us=p.latency_us if p else 0.0,
                    position_after=position_after,
                    realised_pnl=realised,
                    reason=p.intent.reason if p else "adopted",
                )
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "fill %s %s %d %s @ %.4f",
                    f.client_order_id,
                    f.side.value,
                    f.qty,
                    f.symbol,
                    f.price,
                    extra={"fields": {"model": self.key, "position": self.position}},
                )
            if self._emit is not None:
                self._emit("fill", f)
                pos = self.portfolio.position(self.symbol)
                self._emit(
                    "pnl",
                    PnlUpdate(
                        model=self.key,
                        ts=self._clock(),
                        symbol=self.symbol,
                        position=pos.qty,
                        realised=self.portfolio.realised_pnl,
                        unrealised=self.portfolio.unrealised_pnl,
                        equity=self.portfolio.equity,
                        mark=pos.last_price,
                    ),
                )

    # -- control -------------------------------------------------------------------------------

    def on_status(self, status: TradingStatus) -> None:
        """A trading-status message of the model's symbol (halt / resume)."""
        if status.symbol == self.symbol:
            self.risk.on_status(status)

    def kill(self, reason: str, now_ns: int = 0) -> None:
        """The kill switch: HALTED; the next bar flattens the position."""
        if not self.risk.killed:
            self.risk.kill(reason, now_ns or self._clock())
            self.needs_commit = True
