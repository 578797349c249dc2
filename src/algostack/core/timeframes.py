"""A model's bars (``<n>Min``, ``<n>Hour``, ``1Day``) built from minute bars on NYSE sessions.

``parse_timeframe`` reads a model's timeframe; ``BarBuilder`` turns minute bars, fed one by
one in time order, into the model's bars as each completes (the live path); ``build_bars``
builds the same bars from a frame of minute bars (replay and training). A test holds the two
equal bit for bit (``tests/unit/core/test_timeframes.py``).

The rules, in one place (docs/models.md, "Timeframes", is the contract):

- Bins tile each session from its open: ``<n>Min`` and ``<n>Hour`` bins start at
  ``open + k * width``, the last one cut at the close (15:30-16:00 for ``1Hour``, 12:30-13:00
  for ``1Hour`` on an early close); ``1Day`` is the session, ``[open, close)``. No bin spans two
  sessions. A minute bar belongs to the bin holding its start time (Alpaca labels bars by
  their start); bars outside the regular session are ignored and counted.
- A bin's bar is labelled by its start, as Alpaca labels bars; a daily bar by midnight New
  York of its session's date, as Alpaca labels its ``1Day`` bars (``2021-05-03T04:00:00Z``).
- OHLCV: open of the first minute bar, high max, low min, close of the last, volume and
  trade_count summed (in arrival order), vwap volume-weighted (0.0, absent, when the volume
  is 0 or a minute bar with volume carried none; a bin of one bar keeps that bar's vwap).
  A NaN high or low propagates, so the bar rule (``FeatureEngine.update``) refuses the built
  bar; the builder judges no values itself.
- A bin completes at the minute bar that starts on its last minute (a 5Min bin on its 5th
  minute, a daily one on the session's last minute), or, when minutes are missing, at the
  first later bar (of any session or none): the bar is built from the minutes that came.
- A bar at or before the last one seen is stale (a duplicate, an updated bar, out of
  order): ignored and counted. So is a bar whose time is not on a whole minute.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Final, NamedTuple

import numpy as np

from algostack.core import sessions
from algostack.core.market import NS_PER_MIN, Bar, datetime_to_ts
from algostack.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

SessionOf = Callable[[date], sessions.Session | None]
"""The session on a date, or ``None`` (``sessions.session``, or any calendar with that shape)."""

MAX_MINUTES = 59
"""As Alpaca's API: 60 minutes and more are written in hours."""
MAX_HOURS = 6
"""7 hours and more would hold the whole 6.5-hour session: that is ``1Day``."""
ACCEPTED = f"'<n>Min' (n = 1-{MAX_MINUTES}), '<n>Hour' (n = 1-{MAX_HOURS}) or '1Day'"

NS_PER_HOUR = 60 * NS_PER_MIN
_FORM_RE = re.compile(r"^([0-9]+)([A-Za-z]+)$")
_UNITS = {"Min": 1, "Hour": 60, "Day": 0}


@dataclass(frozen=True, slots=True)
class Timeframe:
    """A bar size the trader builds: ``amount`` of ``unit`` (``"Min"``, ``"Hour"``, ``"Day"``)."""

    amount: int
    unit: str

    @property
    def name(self) -> str:
        """The declared form, e.g. ``5Min``."""
        return f"{self.amount}{self.unit}"

    @property
    def daily(self) -> bool:
        """True for ``1Day``: one bar per session, whatever its length."""
        return self.unit == "Day"

    @property
    def width_ns(self) -> int:
        """A bin's length in ns (the last bin of a session may be shorter); 0 for ``1Day``."""
        return self.amount * _UNITS[self.unit] * NS_PER_MIN

    def bins(self, session: sessions.Session) -> list[tuple[int, int, int]]:
        """``(label, start, end)`` in UTC ns of every bin of ``session``, in order."""
        lo, hi = datetime_to_ts(session.open), datetime_to_ts(session.close)
        if self.daily:
            return [(sessions.new_york_day_bounds_ns(session.day)[0], lo, hi)]
        w = self.width_ns
        return [(s, s, min(s + w, hi)) for s in range(lo, hi, w)]

    def __str__(self) -> str:
        return self.name


def parse_timeframe(text: str) -> Timeframe:
    """The timeframe ``text`` declares; ``ConfigError`` (one line, naming the accepted forms)
    for anything the trader cannot build from minute bars."""
    m = _FORM_RE.match(text) if isinstance(text, str) else None
    if m is None:
        why = "not '<n><unit>'"
    else:
        n, unit = int(m.group(1)), m.group(2)
        if unit not in _UNITS:
            why = f"unit {unit!r} is not built from minute bars"
        elif m.group(1).startswith("0"):
            why = "the count must be a positive integer without leading zeros"
        elif unit == "Min" and n > MAX_MINUTES:
            why = f"more than {MAX_MINUTES} minutes: write it in hours"
        elif unit == "Hour" and n > MAX_HOURS:
            why = f"{n} hours hold the whole 6.5-hour session: use '1Day'"
        elif unit == "Day" and n != 1:
            why = "a bar never spans two sessions: only '1Day'"
        else:
            return Timeframe(n, unit)
    raise ConfigError(f"timeframe {text!r}: {why}; accepted: {ACCEPTED}")


def _as_timeframe(timeframe: Timeframe | str) -> Timeframe:
    return timeframe if isinstance(timeframe, Timeframe) else parse_timeframe(timeframe)


def _session_bounds(calendar: SessionOf, day: date) -> tuple[int, int]:
    """``(open, close)`` in UTC ns of the session on ``day``; ``(0, 0)`` when there is none.
    A date the calendar does not know raises its error (``sessions.OutsideCalendarError``)."""
    s = calendar(day)
    if s is None:
        return 0, 0
    return datetime_to_ts(s.open), datetime_to_ts(s.close)


class BuiltBar(NamedTuple):
    """A completed bar of the model's timeframe."""

    bar: Bar
    """Labelled by its bin's start (``1Day``: midnight New York of the session's date)."""
    end: int
    """When its bin ends, UTC ns: the decision time (the close for ``1Day``)."""
    minutes: int
    """Minute bars it was built from (fewer than the bin's length when some were missing)."""


_NOTHING: Final[tuple[BuiltBar, ...]] = ()


class BarBuilder:
    """Build one symbol's bars of ``timeframe`` from its minute bars, fed in time order.

    ``push(bar)`` returns the bars it completed: none, one, or two (a bar arriving after
    missing minutes completes the open bin and may itself be the last minute of its own).
    ``advance(now_ns)`` completes the open bin once ``now_ns`` reaches its end (a clock for
    a last minute that never comes; pass a time the minute bars are known to be in by);
    ``flush()`` completes it whatever the time (end of the data). Counters: ``built``,
    ``outside`` (not in a session), ``unaligned`` (not on a whole minute), ``stale`` (at or
    before the last bar seen). Bars are not checked for symbol or kind (the caller's gate).
    """

    __slots__ = (
        "_c",
        "_calendar",
        "_close",
        "_day_hi",
        "_day_lo",
        "_end",
        "_h",
        "_l",
        "_label",
        "_last",
        "_n",
        "_novw",
        "_o",
        "_open",
        "_pv",
        "_start",
        "_tc",
        "_v",
        "_vw0",
        "_width",
        "built",
        "outside",
        "stale",
        "symbol",
        "timeframe",
        "unaligned",
    )

    def __init__(
        self, timeframe: Timeframe | str, symbol: str, *, calendar: SessionOf = sessions.session
    ) -> None:
        self.timeframe = _as_timeframe(timeframe)
        self.symbol = symbol
        self._calendar = calendar
        self._width = self.timeframe.width_ns  # 0: the session
        self.built = self.outside = self.unaligned = self.stale = 0
        self._start = self._end = self._label = 0  # the open bin [start, end); none: 0, 0
        self._last = -(1 << 63)  # before any timestamp, 1970 or not
        self._day_lo = self._day_hi = 0  # the New York day last looked up, and its session
        self._open = self._close = 0
        self._n = self._tc = 0
        self._o = self._h = self._l = self._c = self._v = self._pv = self._vw0 = 0.0
        self._novw = False

    @property
    def pending(self) -> int:
        """Minute bars in the open bin (0: none is open)."""
        return self._n

    def push(self, bar: Bar) -> tuple[BuiltBar, ...]:
        """Feed one minute bar; the bars it completed, oldest first."""
        ts = bar.ts
        if self._start <= ts < self._end and ts > self._last and not ts % NS_PER_MIN:
            # the hot path: one more minute of the open bin
            self._last = ts
            h = bar.high
            if h > self._h or h != h:  # max, NaN propagating (as numpy's maximum)
                self._h = h
            lo = bar.low
            if lo < self._l or lo != lo:
                self._l = lo
            self._c = bar.close
            vol = bar.volume
            self._v += vol
            vw = bar.vwap
            self._pv += vw * vol
            if vw == 0.0 and vol > 0.0:
                self._novw = True
            self._tc += bar.trade_count
            self._n += 1
            if ts + NS_PER_MIN < self._end:
                return _NOTHING
            return (self._emit(),)
        return self._open_bin(bar)

    def advance(self, now_ns: int) -> tuple[BuiltBar, ...]:
        """Complete the open bin if ``now_ns`` is at or past its end; later bars of it are
        then stale."""
        if self._n and now_ns >= self._end:
            return (self._emit(),)
        return _NOTHING

    def flush(self) -> tuple[BuiltBar, ...]:
        """Complete the open bin now, with the minutes it has (the end of the data)."""
        return (self._emit(),) if self._n else _NOTHING

    def _open_bin(self, bar: Bar) -> tuple[BuiltBar, ...]:
        """Everything but the hot path: a bar that is stale, unaligned, outside a session,
        or the first of a bin (which completes the open one when it lies past its end)."""
        ts = bar.ts
        if ts <= self._last:
            self.stale += 1
            return _NOTHING
        self._last = ts
        done = (self._emit(),) if self._n and ts >= self._end else _NOTHING
        if ts % NS_PER_MIN:
            self.unaligned += 1
            return done
        if not self._day_lo <= ts < self._day_hi:
            day = sessions.new_york_date_of_ns(ts)
            self._day_lo, self._day_hi = sessions.new_york_day_bounds_ns(day)
            self._open, self._close = _session_bounds(self._calendar, day)
        lo, hi = self._open, self._close
        if not lo <= ts < hi:
            self.outside += 1
            return done
        w = self._width
        if w == NS_PER_MIN and type(bar) is Bar and bar.symbol == self.symbol:
            self.built += 1  # 1Min: each minute bar is its own bin and its own built bar
            return (*done, BuiltBar(bar, ts + NS_PER_MIN, 1))
        if w:
            start = lo + (ts - lo) // w * w
            self._start, self._end, self._label = start, min(start + w, hi), start
        else:
            self._start, self._end, self._label = lo, hi, self._day_lo
        self._n = 1
        self._o, self._h, self._l, self._c = bar.open, bar.high, bar.low, bar.close
        self._v = vol = bar.volume
        self._vw0 = vw = bar.vwap
        self._pv = vw * vol
        self._novw = vw == 0.0 and vol > 0.0
        self._tc = bar.trade_count
        if ts + NS_PER_MIN < self._end:
            return done
        return (*done, self._emit())

    def _emit(self) -> BuiltBar:
        n, v, end = self._n, self._v, self._end
        if n == 1:
            vwap = self._vw0
        elif v > 0.0 and not self._novw:
            vwap = self._pv / v
        else:
            vwap = 0.0
        bar = Bar(
            symbol=self.symbol,
            ts=self._label,
            open=self._o,
            high=self._h,
            low=self._l,
            close=self._c,
            volume=v,
            trade_count=self._tc,
            vwap=vwap,
        )
        self._n = 0
        self._start = self._end = 0
        if self._last < end - NS_PER_MIN:
            self._last = end - NS_PER_MIN  # a late minute of a bin already built is stale
        self.built += 1
        return BuiltBar(bar, end, n)


# -- the batch twin ----------------------------------------------------------------------------

BATCH_COLUMNS = (
    "ts",
    "end",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "trade_count",
    "vwap",
    "minutes",
)
"""``build_bars``'s columns: ``BuiltBar``'s ``bar`` fields, ``end`` and ``minutes``."""


def _sequential_sums(x: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Each segment's sum added left to right, as ``BarBuilder`` adds: the same floats. numpy's
    own reductions associate otherwise (``np.add.reduceat`` sums 0.1, 0.2, 0.3 to 0.6; left
    to right it is 0.6000000000000001)."""
    acc: np.ndarray = x[starts].copy()
    for j in range(1, int(counts.max(initial=1))):
        sel = np.flatnonzero(counts > j)
        acc[sel] += x[starts[sel] + j]
    return acc


def build_bar_arrays(
    timeframe: Timeframe | str,
    ts: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    trade_count: np.ndarray | None = None,
    vwap: np.ndarray | None = None,
    *,
    calendar: SessionOf = sessions.session,
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """``BarBuilder``'s bars from arrays of minute bars in arrival order: the columns of
    ``BATCH_COLUMNS`` and the counts of ignored bars (``outside``, ``unaligned``, ``stale``).

    Every bin holding a minute bar gives a row, the last one too when the data ends inside
    it (what ``BarBuilder.flush`` gives at the end).
    """
    tf = _as_timeframe(timeframe)
    ts = np.asarray(ts, dtype=np.int64)
    n = len(ts)
    if n:
        seen = np.maximum.accumulate(ts)
        fresh = np.ones(n, dtype=bool)
        fresh[1:] = ts[1:] > seen[:-1]
    else:
        fresh = np.zeros(0, dtype=bool)
    aligned = fresh & (ts % NS_PER_MIN == 0)
    # the New York date is one per UTC hour (offsets and DST switches are whole hours)
    hours, where = np.unique(ts[aligned] // NS_PER_HOUR, return_inverse=True)
    lo_h = np.zeros(len(hours), dtype=np.int64)
    hi_h = np.zeros(len(hours), dtype=np.int64)
    mid_h = np.zeros(len(hours), dtype=np.int64)
    days: dict[date, tuple[int, int, int]] = {}
    for i, hour in enumerate(hours.tolist()):
        day = sessions.new_york_date_of_ns(hour * NS_PER_HOUR)
        if day not in days:
            days[day] = (
                *_session_bounds(calendar, day),
                sessions.new_york_day_bounds_ns(day)[0],
            )
        lo_h[i], hi_h[i], mid_h[i] = days[day]
    t = ts[aligned]
    lo, hi, midnight = lo_h[where], hi_h[where], mid_h[where]
    inside = (lo <= t) & (t < hi)
    rows = np.flatnonzero(aligned)[inside]
    t, lo, hi, midnight = t[inside], lo[inside], hi[inside], midnight[inside]
    w = tf.width_ns
    if w:
        label = lo + (t - lo) // w * w
        end = np.minimum(label + w, hi)
    else:
        label, end = midnight, hi
    m = len(rows)
    starts = np.flatnonzero(np.r_[True, label[1:] != label[:-1]]) if m else rows[:0]
    counts = np.diff(np.r_[starts, m])

    def col(x: np.ndarray | None, dtype: type) -> np.ndarray:
        return np.zeros(m, dtype=dtype) if x is None else np.asarray(x, dtype=dtype)[rows]

    o, h, lw, c, v = (col(x, float) for x in (open_, high, low, close, volume))
    vw, tc = col(vwap, float), col(trade_count, np.int64)
    out: dict[str, np.ndarray] = {
        "ts": label[starts],
        "end": end[starts],
        "open": o[starts],
        "high": np.maximum.reduceat(h, starts) if m else h,
        "low": np.minimum.reduceat(lw, starts) if m else lw,
        "close": c[starts + counts - 1],
        "volume": _sequential_sums(v, starts, counts),
        "trade_count": np.add.reduceat(tc, starts) if m else tc,
        "minutes": counts.astype(np.int64),
    }
    vol = out["volume"]
    pv = _sequential_sums(vw * v, starts, counts)
    novw = np.logical_or.reduceat((vw == 0.0) & (v > 0.0), starts) if m else vw > 0
    ok = (vol > 0.0) & ~novw
    weighted = np.divide(pv, vol, out=np.zeros(len(starts)), where=ok)
    out["vwap"] = np.where(counts == 1, vw[starts], weighted)
    counted = {
        "outside": int(len(inside) - m),
        "unaligned": int(np.count_nonzero(fresh) - np.count_nonzero(aligned)),
        "stale": int(n - np.count_nonzero(fresh)),
    }
    return {k: out[k] for k in BATCH_COLUMNS}, counted


def build_bars(
    bars: pd.DataFrame,
    timeframe: Timeframe | str,
    *,
    calendar: SessionOf = sessions.session,
) -> pd.DataFrame:
    """The bars of ``timeframe`` built from a frame of one symbol's minute bars: columns
    open/high/low/close/volume (trade_count and vwap when present), ``ts`` as a column or the
    index (UTC ns or tz-aware), in arrival order. Columns ``BATCH_COLUMNS``, ``ts`` the label in
    UTC ns (the frame ``compute_features`` takes); ``attrs`` holds the ignored counts."""
    import pandas as pd

    from algostack.core.features_batch import _timestamps

    tf = _as_timeframe(timeframe)
    missing = [k for k in ("open", "high", "low", "close", "volume") if k not in bars.columns]
    if missing:
        raise DataError(
            f"minute bars: missing column(s) {missing}; need open/high/low/close/volume"
        )

    def opt(name: str) -> np.ndarray | None:
        return bars[name].to_numpy() if name in bars.columns else None

    o, h, lw, c, v = (bars[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    cols, counted = build_bar_arrays(
        tf,
        _timestamps(bars),
        o,
        h,
        lw,
        c,
        v,
        trade_count=opt("trade_count"),
        vwap=opt("vwap"),
        calendar=calendar,
    )
    frame = pd.DataFrame(cols)
    frame.attrs.update(counted)
    return frame
