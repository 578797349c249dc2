"""Streaming features: O(1) per bar, no pandas. Pure (numpy + stdlib).

Feature names form a small grammar (see ``FORMS``); ``parse_feature`` turns a name into a
``FeatureDef`` and ``FeatureEngine`` computes a model's feature vector bar by bar. The batch
twin in ``features_batch`` computes the same numbers over a DataFrame for training; a test
holds the two equal (relative 1e-9).

Rolling means (``sma_ratio``, ``range``) use ``WindowSum``: the correctly rounded sum of the
window, the same number ``math.fsum`` gives, so they never drift and the batch twin (which
uses the same class) agrees bit for bit -- an exact tie of SMA(fast) and SMA(slow) is exactly
0, never +-1 ulp. Rolling variances use a sliding Welford update recomputed exactly once per
window cycle, so long sessions do not drift.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter

import numpy as np

from algostack.core.market import NS_PER_MIN, NS_PER_S, Bar
from algostack.core.sessions import NEW_YORK
from algostack.core.windows import FSUM_WINDOW_MAX, RollingVar, WindowSum
from algostack.errors import DataError

_fsum = math.fsum  # a module global: one lookup less per bar on the hot path

NS_PER_HOUR = 3600 * NS_PER_S
NS_PER_DAY = 24 * NS_PER_HOUR
OPEN_MINUTE = 9 * 60 + 30
SESSION_MINUTES = 390
MAX_WINDOW = 100_000

# name -> (regex, description). Order is the order shown in error messages.
FORMS: dict[str, tuple[str, str]] = {
    "ret": (r"ret_(\d+)", "ret_<n>: log return over n bars, log(close_t / close_{t-n})"),
    "sma_ratio": (
        r"sma_ratio_(\d+)_(\d+)",
        "sma_ratio_<fast>_<slow>: SMA_fast(close) / SMA_slow(close) - 1, fast < slow",
    ),
    "ema_ratio": (
        r"ema_ratio_(\d+)_(\d+)",
        "ema_ratio_<fast>_<slow>: EMA_fast / EMA_slow - 1 (EMA seeded with the SMA), fast < slow",
    ),
    "rsi": (r"rsi_(\d+)", "rsi_<n>: Wilder's RSI over n bars, 0..100"),
    "vol": (r"vol_(\d+)", "vol_<n>: sample std of the last n one-bar log returns, n >= 2"),
    "volume_z": (
        r"volume_z_(\d+)",
        "volume_z_<n>: (volume - mean) / sample std over the last n bars (0 if flat), n >= 2",
    ),
    "range": (r"range_(\d+)", "range_<n>: mean of (high - low) / close over the last n bars"),
    "tod": (r"tod", "tod: minutes since 09:30 New York / 390 (DST-aware)"),
    "dow": (r"dow", "dow: New York weekday, Monday = 0"),
}
_COMPILED = {kind: re.compile(rf"^{rx}$") for kind, (rx, _d) in FORMS.items()}


class UnknownFeatureError(DataError, ValueError):
    """A feature name outside the grammar; the message lists the known forms."""


class BadBarError(DataError, ValueError):
    """A bar with NaN/inf/non-positive prices (or another impossible value); state untouched."""


def grammar() -> str:
    """The known feature forms, one per line."""
    return "\n".join(f"  {desc}" for _rx, desc in FORMS.values())


@dataclass(frozen=True, slots=True)
class FeatureDef:
    """One parsed feature: its name, kind, integer parameters and warm-up length in bars."""

    name: str
    kind: str
    params: tuple[int, ...]
    warmup: int


def parse_feature(name: str) -> FeatureDef:
    """Parse a feature name; ``UnknownFeatureError`` listing the grammar when it is not one."""
    for kind, rx in _COMPILED.items():
        m = rx.match(name)
        if m is None:
            continue
        params = tuple(int(g) for g in m.groups())
        _check_params(name, kind, params)
        return FeatureDef(name, kind, params, _warmup(kind, params))
    raise UnknownFeatureError(f"unknown feature {name!r}; known forms:\n{grammar()}")


def _check_params(name: str, kind: str, params: tuple[int, ...]) -> None:
    if any(p < 1 or p > MAX_WINDOW for p in params):
        raise UnknownFeatureError(
            f"feature {name!r}: windows must be between 1 and {MAX_WINDOW}; known forms:\n"
            f"{grammar()}"
        )
    if kind in ("sma_ratio", "ema_ratio") and params[0] >= params[1]:
        raise UnknownFeatureError(f"feature {name!r}: fast window must be < slow window")
    if kind in ("vol", "volume_z") and params[0] < 2:
        raise UnknownFeatureError(f"feature {name!r}: a standard deviation needs n >= 2")


def _warmup(kind: str, params: tuple[int, ...]) -> int:
    if kind in ("ret", "rsi", "vol"):
        return params[0] + 1
    if kind in ("sma_ratio", "ema_ratio"):
        return params[1]
    if kind in ("volume_z", "range"):
        return params[0]
    return 1


class _Feature:
    __slots__ = ("defined", "value")

    def __init__(self) -> None:
        self.value = math.nan
        self.defined = False

    def push(self, ts: int, h: float, low: float, c: float, v: float) -> None:
        raise NotImplementedError


class _Ret(_Feature):
    __slots__ = ("buf", "count", "n", "pos")

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.buf = [0.0] * (n + 1)
        self.pos = 0
        self.count = 0

    def push(self, ts: int, h: float, low: float, c: float, v: float) -> None:
        size = self.n + 1
        pos = self.pos
        self.buf[pos] = c
        self.pos = pos = (pos + 1) % size
        self.count += 1
        if self.count >= size:
            self.defined = True
            self.value = math.log(c / self.buf[pos])  # buf[pos] is close_{t-n}


class _SmaRatio(_Feature):
    """``sma_ratio``: the two window sums are ``WindowSum``'s numbers (for windows up to
    ``FSUM_WINDOW_MAX`` the same ``math.fsum`` of the ring buffers, inlined: the hot path of
    the classic cross rule)."""

    __slots__ = ("buf_f", "buf_s", "count", "fast", "pos_f", "pos_s", "slow", "sums")

    def __init__(self, fast: int, slow: int) -> None:
        super().__init__()
        self.fast = fast
        self.slow = slow
        self.buf_f = [0.0] * fast
        self.buf_s = [0.0] * slow
        self.pos_f = 0
        self.pos_s = 0
        self.count = 0
        self.sums = (WindowSum(fast), WindowSum(slow)) if slow > FSUM_WINDOW_MAX else None

    def push(self, ts: int, h: float, low: float, c: float, v: float) -> None:
        self.count = count = self.count + 1
        sums = self.sums
        if sums is not None:
            total_f, total_s = sums[0].push(c), sums[1].push(c)
        else:
            buf, pos = self.buf_f, self.pos_f
            buf[pos] = c
            pos += 1
            self.pos_f = 0 if pos == self.fast else pos
            total_f = _fsum(buf)
            buf, pos = self.buf_s, self.pos_s
            buf[pos] = c
            pos += 1
            self.pos_s = 0 if pos == self.slow else pos
            total_s = _fsum(buf)
        if count >= self.slow:
            self.defined = True
            # sma_ratio(), inlined; tests hold the two equal bit for bit
            self.value = (total_f / self.fast) / (total_s / self.slow) - 1.0


class _Ema:
    """EMA seeded with the SMA of its first n inputs; the batch twin uses the same steps."""

    __slots__ = ("alpha", "count", "n", "total", "value")

    def __init__(self, n: int) -> None:
        self.n = n
        self.alpha = 2.0 / (n + 1)
        self.count = 0
        self.total = 0.0
        self.value = math.nan

    def push(self, x: float) -> None:
        count = self.count
        if count >= self.n:
            self.value += self.alpha * (x - self.value)
        else:
            self.total += x
            if count + 1 == self.n:
                self.value = self.total / self.n
        self.count = count + 1


class _EmaRatio(_Feature):
    __slots__ = ("ema_f", "ema_s", "slow")

    def __init__(self, fast: int, slow: int) -> None:
        super().__init__()
        self.slow = slow
        self.ema_f = _Ema(fast)
        self.ema_s = _Ema(slow)

    def push(self, ts: int, h: float, low: float, c: float, v: float) -> None:
        self.ema_f.push(c)
        self.ema_s.push(c)
        if self.ema_s.count >= self.slow:
            self.defined = True
            self.value = self.ema_f.value / self.ema_s.value - 1.0


class _Rsi(_Feature):
    __slots__ = ("avg_g", "avg_l", "k", "n", "prev")

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.prev = math.nan
        self.k = 0
        self.avg_g = 0.0
        self.avg_l = 0.0

    def push(self, ts: int, h: float, low: float, c: float, v: float) -> None:
        prev = self.prev
        self.prev = c
        if prev != prev:  # first bar
            return
        d = c - prev
        g = d if d > 0.0 else 0.0
        loss = -d if d < 0.0 else 0.0
        n = self.n
        self.k = k = self.k + 1
        if k <= n:  # seed: sums, divided once complete
            self.avg_g += g
            self.avg_l += loss
            if k < n:
                return
            self.avg_g /= n
            self.avg_l /= n
        else:
            self.avg_g = (self.avg_g * (n - 1) + g) / n
            self.avg_l = (self.avg_l * (n - 1) + loss) / n
        total = self.avg_g + self.avg_l
        self.defined = True
        self.value = 50.0 if total == 0.0 else 100.0 * self.avg_g / total


class _Vol(_Feature):
    __slots__ = ("prev", "rv")

    def __init__(self, n: int) -> None:
        super().__init__()
        self.rv = RollingVar(n)
        self.prev = math.nan

    def push(self, ts: int, h: float, low: float, c: float, v: float) -> None:
        prev = self.prev
        self.prev = c
        if prev != prev:
            return
        rv = self.rv
        rv.push(math.log(c / prev))
        if rv.count >= rv.n:
            self.defined = True
            self.value = math.sqrt(rv.var())


class _VolumeZ(_Feature):
    __slots__ = ("rv",)

    def __init__(self, n: int) -> None:
        super().__init__()
        self.rv = RollingVar(n)

    def push(self, ts: int, h: float, low: float, c: float, v: float) -> None:
        rv = self.rv
        rv.push(v)
        if rv.count >= rv.n:
            self.defined = True
            var = rv.var()
            self.value = 0.0 if var == 0.0 else (v - rv.mean) / math.sqrt(var)


class _Range(_Feature):
    __slots__ = ("n", "total")

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.total = WindowSum(n)

    def push(self, ts: int, h: float, low: float, c: float, v: float) -> None:
        total = self.total
        s = total.push((h - low) / c)
        if total.count >= self.n:
            self.defined = True
            self.value = s / self.n


class _Clock:
    """New York UTC offset cached per UTC hour (US DST switches on whole UTC hours)."""

    __slots__ = ("hour", "offset")

    def __init__(self) -> None:
        self.hour = -1
        self.offset = 0

    def local_ns(self, ts: int) -> int:
        hour = ts // NS_PER_HOUR
        if hour != self.hour:
            at = datetime.fromtimestamp(hour * 3600, UTC).astimezone(NEW_YORK)
            off = at.utcoffset()
            assert off is not None
            self.offset = int(off.total_seconds()) * NS_PER_S
            self.hour = hour
        return ts + self.offset


def time_of_day(local_ns: int) -> float:
    """``tod`` from New York wall-clock nanoseconds since the epoch."""
    return (local_ns % NS_PER_DAY - OPEN_MINUTE * NS_PER_MIN) / (SESSION_MINUTES * NS_PER_MIN)


def day_of_week(local_ns: int) -> float:
    """``dow`` (Monday = 0) from New York wall-clock nanoseconds; 1970-01-01 was a Thursday."""
    return float((local_ns // NS_PER_DAY + 3) % 7)


class _Tod(_Feature):
    __slots__ = ("clock",)

    def __init__(self) -> None:
        super().__init__()
        self.clock = _Clock()
        self.defined = True

    def push(self, ts: int, h: float, low: float, c: float, v: float) -> None:
        self.value = time_of_day(self.clock.local_ns(ts))


class _Dow(_Tod):
    __slots__ = ()

    def push(self, ts: int, h: float, low: float, c: float, v: float) -> None:
        self.value = day_of_week(self.clock.local_ns(ts))


def _make(fd: FeatureDef) -> _Feature:
    p = fd.params
    match fd.kind:
        case "ret":
            return _Ret(p[0])
        case "sma_ratio":
            return _SmaRatio(p[0], p[1])
        case "ema_ratio":
            return _EmaRatio(p[0], p[1])
        case "rsi":
            return _Rsi(p[0])
        case "vol":
            return _Vol(p[0])
        case "volume_z":
            return _VolumeZ(p[0])
        case "range":
            return _Range(p[0])
        case "tod":
            return _Tod()
        case "dow":
            return _Dow()
    raise AssertionError(fd.kind)  # pragma: no cover


_INF = math.inf
_value = attrgetter("value")


def _broken_part(bar: Bar) -> str:
    """Which part of the bar rule ``FeatureEngine.update`` refused ``bar`` for (it decides;
    this only names the part, and is asked only after a refusal)."""
    for name in ("open", "high", "low", "close"):
        p = getattr(bar, name)
        if not 0.0 < p < _INF:  # also False for NaN
            return f"{name}={p!r} must be finite and positive"
    if not 0.0 <= bar.volume < _INF:
        return f"volume={bar.volume!r} must be finite and >= 0"
    return f"high {bar.high} < low {bar.low}"


class FeatureEngine:
    """Compute one model's feature vector bar by bar (one symbol, bars in time order)."""

    def __init__(self, names: Sequence[str]) -> None:
        if isinstance(names, str) or not names:
            raise UnknownFeatureError(
                f"a model needs a non-empty list of feature names; known forms:\n{grammar()}"
            )
        if len(set(names)) != len(names):
            raise UnknownFeatureError(f"duplicate feature names in {list(names)}")
        self.defs = tuple(parse_feature(n) for n in names)
        self.names = tuple(names)
        self.warmup_bars = max(d.warmup for d in self.defs)
        self._features = [_make(d) for d in self.defs]
        self._one = np.empty(1)
        self.symbol: str | None = None
        self.last_ts: int | None = None
        self.count = 0
        """Bars accepted."""
        self.skipped = 0
        """Out-of-order or duplicate bars ignored."""
        self.refused = 0
        """Bad bars refused during ``warm_up`` (``update`` raises instead)."""
        self.ready = False

    def update(self, bar: Bar) -> np.ndarray | None:
        """Feed one bar; the feature vector once every feature is defined, else ``None``.

        ``BadBarError`` for a bar whose values break the bar rule (every price finite and
        positive, ``low <= high``, volume finite and >= 0) or of another symbol than the
        first bar's; an out-of-order or duplicate bar returns ``None`` and increments
        ``skipped``. Either way the state is untouched.
        """
        o, high, low, close, volume = bar.open, bar.high, bar.low, bar.close, bar.volume
        # The bar rule, the one place it is decided (the trader's runner relies on it).
        if not (
            0.0 < low <= high < _INF
            and 0.0 < o < _INF
            and 0.0 < close < _INF
            and 0.0 <= volume < _INF
        ):
            raise BadBarError(
                f"bar {bar.symbol} @ {bar.ts}: {_broken_part(bar)}; "
                "bar refused, feature state unchanged"
            )
        if bar.symbol != self.symbol:
            if self.symbol is not None:
                raise BadBarError(
                    f"bar for {bar.symbol} fed to the feature engine of {self.symbol}; bar refused"
                )
            self.symbol = bar.symbol
        ts = bar.ts
        last = self.last_ts
        if last is not None and ts <= last:
            self.skipped += 1
            return None
        self.last_ts = ts
        features = self._features
        for f in features:
            f.push(ts, high, low, close, volume)
        self.count += 1
        if not self.ready:
            if self.count < self.warmup_bars or not all(f.defined for f in features):
                return None
            self.ready = True
        # A new float64 vector either way; each form is ~0.1 µs cheaper than np.array(list).
        n = len(features)
        if n == 1:
            one = self._one
            one[0] = features[0].value
            return one.copy()
        return np.fromiter(map(_value, features), np.float64, n)

    def warm_up(self, bars: Iterable[Bar]) -> int:
        """Feed historical bars (e.g. the day's stream so far) without producing decisions.

        Bad bars are counted in ``refused`` and skipped instead of raising. Returns the number
        of bars accepted.
        """
        before = self.count
        for bar in bars:
            try:
                self.update(bar)
            except BadBarError:
                self.refused += 1
        return self.count - before

    def values(self) -> np.ndarray | None:
        """The current feature vector (a copy), or ``None`` while warming up."""
        if not self.ready:
            return None
        return np.array([f.value for f in self._features])
