"""The batch twin of ``features``: the same features over a DataFrame, for training.

Rolling means (``sma_ratio``, ``range``) use the streaming engine's own ``WindowSum`` (the
correctly rounded window sum) and ``sma_ratio`` the same expression, so those agree with the
engine bit for bit; rolling deviations are computed over each window, recursive features
(EMA, Wilder's RSI) with the very steps the streaming engine takes, so the rest agree to
rounding (``tests/unit/core/test_features_parity.py``). Rows are NaN during warm-up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from algostack.core.features import (
    NS_PER_DAY,
    OPEN_MINUTE,
    SESSION_MINUTES,
    BadBarError,
    FeatureDef,
    UnknownFeatureError,
    parse_feature,
)
from algostack.core.market import NS_PER_MIN
from algostack.core.sessions import NEW_YORK
from algostack.core.windows import WindowSum

COLUMNS = ("open", "high", "low", "close", "volume")
FloatArray = np.ndarray


def _timestamps(bars: pd.DataFrame) -> np.ndarray:
    raw = bars["ts"] if "ts" in bars.columns else bars.index
    if isinstance(raw, pd.DatetimeIndex) or isinstance(
        getattr(raw, "dtype", None), pd.DatetimeTZDtype
    ):
        idx = pd.DatetimeIndex(raw)
        if idx.tz is None:
            raise ValueError("bars: naive timestamps; localize them to UTC")
        return np.asarray(idx.tz_convert("UTC").as_unit("ns").asi8, dtype=np.int64)
    arr = np.asarray(raw)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError("bars: 'ts' must be UTC nanoseconds (int64) or a tz-aware datetime index")
    return arr.astype(np.int64)


def _check(bars: pd.DataFrame, ts: np.ndarray) -> None:
    missing = [c for c in COLUMNS if c not in bars.columns]
    if missing:
        raise ValueError(f"bars: missing column(s) {missing}; need {list(COLUMNS)} and ts")
    prices = bars[["open", "high", "low", "close"]].to_numpy(dtype=float)
    vol = bars["volume"].to_numpy(dtype=float)
    bad = ~np.all(np.isfinite(prices) & (prices > 0), axis=1) | ~(np.isfinite(vol) & (vol >= 0))
    bad |= bars["high"].to_numpy(dtype=float) < bars["low"].to_numpy(dtype=float)
    if bad.any():
        i = int(np.argmax(bad))
        raise BadBarError(f"bars: row {i} (ts={ts[i]}) has NaN/inf/non-positive values")
    if len(ts) > 1 and not np.all(np.diff(ts) > 0):
        raise ValueError("bars: timestamps must be strictly increasing (drop duplicates first)")


def _windows(x: FloatArray, n: int) -> FloatArray:
    return sliding_window_view(x, n)


def rolling_sum(x: FloatArray, n: int) -> FloatArray:
    """The correctly rounded sum of each window of ``n`` values (NaN before the first full
    one): the number ``WindowSum`` (the streaming engine) and ``math.fsum`` give, bit for bit.

    Fast path: every finite float is an integer multiple of ``2**e`` for the smallest
    exponent ``e`` in the series, so the windows are summed exactly as int64 and rounded once
    by the int -> float conversion (round half to even, like ``fsum``); scaling back by a
    power of two is exact. Series that do not fit (a dynamic range past int64, a result near
    the subnormals) go through ``WindowSum`` itself. A window holding NaN or inf is NaN.
    """
    x = np.asarray(x, dtype=float)
    out = np.full(len(x), np.nan)
    if len(x) < n:
        return out
    finite = np.isfinite(x)
    if not finite.all():
        out = rolling_sum(np.where(finite, x, 0.0), n)
        bad = sliding_window_view(~finite, n).any(axis=1)
        out[n - 1 :][bad] = np.nan
        return out
    nonzero = x[x != 0.0]
    if nonzero.size == 0:
        out[n - 1 :] = 0.0
        return out
    exps = np.frexp(nonzero)[1]
    e = int(exps.min()) - 53  # every value is an integer times 2**e
    top = int(exps.max()) - e  # |value| < 2**top in those units
    if e >= -1000 and top + n.bit_length() < 63:
        ints = np.ldexp(x, -e).astype(np.int64)  # exact
        sums = sliding_window_view(ints, n).sum(axis=1)  # exact: no overflow by `top`
        out[n - 1 :] = np.ldexp(sums.astype(np.float64), e)  # one rounding, then exact
        return out
    push = WindowSum(n).push
    sums_f = [push(v) for v in x.tolist()]
    out[n - 1 :] = sums_f[n - 1 :]
    return out


def _rolling_mean(x: FloatArray, n: int) -> FloatArray:
    return rolling_sum(x, n) / n


def sma_ratio_series(close: FloatArray, fast: int, slow: int) -> FloatArray:
    """``sma_ratio_<fast>_<slow>`` over ``close`` (NaN for the first ``slow - 1`` rows): the
    streaming engine's floats exactly (same window sums, same IEEE expression as
    ``features.sma_ratio``)."""
    sf = rolling_sum(close, fast)
    ss = rolling_sum(close, slow)
    out: FloatArray = (sf / fast) / (ss / slow) - 1.0
    out[: slow - 1] = np.nan
    return out


def _rolling_std(x: FloatArray, n: int) -> tuple[FloatArray, FloatArray]:
    """Rolling mean and sample std; exactly 0 std on flat windows (like the engine)."""
    mean = np.full(len(x), np.nan)
    std = np.full(len(x), np.nan)
    if len(x) >= n:
        w = _windows(x, n)
        m = w.sum(axis=1) / n
        s = np.sqrt(((w - m[:, None]) ** 2).sum(axis=1) / (n - 1))
        s[w.max(axis=1) == w.min(axis=1)] = 0.0
        mean[n - 1 :] = m
        std[n - 1 :] = s
    return mean, std


def _log_returns(c: FloatArray, n: int) -> FloatArray:
    out = np.full(len(c), np.nan)
    if len(c) > n:
        out[n:] = np.log(c[n:] / c[:-n])
    return out


def _ema(c: list[float], n: int) -> list[float]:
    out = [math.nan] * len(c)
    alpha = 2.0 / (n + 1)
    total = 0.0
    value = math.nan
    for i, x in enumerate(c):
        if i >= n:
            value += alpha * (x - value)
        else:
            total += x
            if i + 1 == n:
                value = total / n
        out[i] = value
    return out


def _rsi(c: list[float], n: int) -> FloatArray:
    out = np.full(len(c), np.nan)
    avg_g = avg_l = 0.0
    for t in range(1, len(c)):
        d = c[t] - c[t - 1]
        g = d if d > 0.0 else 0.0
        loss = -d if d < 0.0 else 0.0
        if t <= n:
            avg_g += g
            avg_l += loss
            if t < n:
                continue
            avg_g /= n
            avg_l /= n
        else:
            avg_g = (avg_g * (n - 1) + g) / n
            avg_l = (avg_l * (n - 1) + loss) / n
        total = avg_g + avg_l
        out[t] = 50.0 if total == 0.0 else 100.0 * avg_g / total
    return out


def _local_ns(ts: np.ndarray) -> np.ndarray:
    idx = pd.DatetimeIndex(pd.to_datetime(ts, unit="ns", utc=True)).tz_convert(NEW_YORK)
    return np.asarray(idx.tz_localize(None).as_unit("ns").asi8, dtype=np.int64)


def _feature(fd: FeatureDef, bars: pd.DataFrame, ts: np.ndarray) -> FloatArray:
    c = bars["close"].to_numpy(dtype=float)
    p = fd.params
    kind = fd.kind
    if kind == "ret":
        return _log_returns(c, p[0])
    if kind == "sma_ratio":
        return sma_ratio_series(c, p[0], p[1])
    if kind == "ema_ratio":
        closes = c.tolist()
        fast = np.array(_ema(closes, p[0]))
        slow = np.array(_ema(closes, p[1]))
        return np.asarray(fast / slow - 1.0)
    if kind == "rsi":
        return _rsi(c.tolist(), p[0])
    if kind == "vol":
        r = _log_returns(c, 1)
        out = np.full(len(c), np.nan)
        if len(c) > 1:
            out[1:] = _rolling_std(r[1:], p[0])[1]
        return out
    if kind == "volume_z":
        v = bars["volume"].to_numpy(dtype=float)
        mean, std = _rolling_std(v, p[0])
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (v - mean) / std
        z[std == 0.0] = 0.0
        return np.asarray(z)
    if kind == "range":
        h = bars["high"].to_numpy(dtype=float)
        low = bars["low"].to_numpy(dtype=float)
        return _rolling_mean((h - low) / c, p[0])
    local = _local_ns(ts)
    if kind == "tod":
        num = local % NS_PER_DAY - OPEN_MINUTE * NS_PER_MIN
        return np.asarray(num / (SESSION_MINUTES * NS_PER_MIN), dtype=float)
    if kind == "dow":
        return np.asarray((local // NS_PER_DAY + 3) % 7, dtype=float)
    raise UnknownFeatureError(fd.name)  # pragma: no cover


def compute_features(bars: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """Compute ``names`` over ``bars`` (columns open/high/low/close/volume; ``ts`` as a
    column or index, UTC ns or tz-aware). One symbol, strictly increasing time; rows are NaN
    until each feature is defined. Raises ``UnknownFeatureError``/``BadBarError``/``ValueError``.
    """
    defs = [parse_feature(n) for n in names]
    ts = _timestamps(bars)
    _check(bars, ts)
    out = {fd.name: _feature(fd, bars, ts) for fd in defs}
    return pd.DataFrame(out, index=bars.index, columns=list(names))
