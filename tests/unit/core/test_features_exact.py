"""Rolling means are exact: ``WindowSum`` == ``math.fsum`` of the window, streaming == batch
bit for bit, and an exact tie of SMA(fast) and SMA(slow) is exactly 0."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algostack.core.features import FeatureEngine
from algostack.core.features_batch import compute_features, rolling_sum, sma_ratio_series
from algostack.core.market import NS_PER_MIN, Bar
from algostack.core.signals import Thresholds, target_direction
from algostack.core.windows import FSUM_WINDOW_MAX, WindowSum, sma_ratio

# Closes of SPY in the replay bench (seed 11, 40 sessions), bars 180..216 of 2024-01-31. On the
# last bar SMA(10) == SMA(30) == 194.993 exactly; the old running sums (recomputed each
# 30-bar cycle, then 7 add/subtract steps) said 2.22e-16, so the trader stayed long one bar
# longer than backtesting.py (trade 143 of 279 exited a bar late).
TIE_CLOSES: list[float] = json.loads(
    (Path(__file__).parents[2] / "fixtures" / "bars" / "sma_tie_closes.json").read_text()
)["closes"]


def _bars(closes: list[float]) -> list[Bar]:
    return [
        Bar(symbol="SPY", ts=k * NS_PER_MIN, open=c, high=c, low=c, close=c, volume=1.0)
        for k, c in enumerate(closes)
    ]


def _stream(closes: list[float], name: str) -> list[float]:
    eng = FeatureEngine([name])
    out = []
    for b in _bars(closes):
        x = eng.update(b)
        out.append(math.nan if x is None else float(x[0]))
    return out


def _old_running_ratio(closes: list[float], fast: int, slow: int) -> float:
    """The engine before the fix: running sums, recomputed once per window cycle."""
    buf, pos, count, sf, ss = [0.0] * slow, 0, 0, 0.0, 0.0
    for c in closes:
        if count >= slow:
            ss -= buf[pos]
        if count >= fast:
            sf -= buf[(pos - fast) % slow]
        buf[pos] = c
        ss, sf, count, pos = ss + c, sf + c, count + 1, pos + 1
        if pos == slow:
            pos = 0
            ss, sf = sum(buf), sum(buf[slow - fast :])
    return (sf / fast) / (ss / slow) - 1.0


def test_sma_ratio_exact_tie_is_zero_and_keeps_the_cross_rule_flat() -> None:
    assert _old_running_ratio(TIE_CLOSES, 10, 30) == pytest.approx(2.22e-16, rel=1e-3)
    value = _stream(TIE_CLOSES, "sma_ratio_10_30")[-1]
    assert value == 0.0
    assert math.fsum(TIE_CLOSES[-10:]) / 10 == math.fsum(TIE_CLOSES[-30:]) / 30
    # long_entry = long_exit = 0: a long position leaves on an exact tie
    th = Thresholds(long_entry=0.0, long_exit=0.0)
    assert target_direction(value, 1, th) == 0


def test_sma_ratio_exact_tie_streaming_equals_batch_bit_for_bit() -> None:
    stream = np.array(_stream(TIE_CLOSES, "sma_ratio_10_30"))
    batch = sma_ratio_series(np.array(TIE_CLOSES), 10, 30)
    assert np.array_equal(stream, batch, equal_nan=True)
    assert batch[-1] == 0.0


@pytest.mark.parametrize("n", [1, 3, 30, FSUM_WINDOW_MAX, FSUM_WINDOW_MAX + 1, 300])
def test_window_sum_small_and_large_windows_equal_fsum_of_the_window(n: int) -> None:
    rng = np.random.default_rng(n)
    # magnitudes from 1e-6 to 1e6 and both signs: the partials path must stay exact
    xs = (rng.standard_normal(3 * n + 50) * 10.0 ** rng.integers(-6, 7, 3 * n + 50)).tolist()
    ws = WindowSum(n)
    for i, x in enumerate(xs):
        got = ws.push(x)
        assert got == math.fsum(xs[max(0, i - n + 1) : i + 1]), (n, i)


def test_window_sum_zero_window_refused() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        WindowSum(0)


@settings(max_examples=60, deadline=None)
@given(
    xs=st.lists(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_subnormal=False),
        min_size=1,
        max_size=80,
    ),
    n=st.integers(min_value=1, max_value=12),
)
def test_rolling_sum_batch_equals_window_sum(xs: list[float], n: int) -> None:
    batch = rolling_sum(np.array(xs), n)
    ws = WindowSum(n)
    stream = [ws.push(x) for x in xs]
    assert np.isnan(batch[: n - 1]).all()
    assert batch[n - 1 :].tolist() == stream[n - 1 :]


@pytest.mark.parametrize(
    "xs",
    [
        [1e300, 1.0, -1e300, 3.0, 1e-300, 2.0],  # dynamic range beyond int64: WindowSum path
        [0.0, 0.0, 0.0, 0.0],  # all zeros
        [1.0, 2.0, 3.0, 1e-310, 4.0],  # a subnormal
    ],
)
def test_rolling_sum_fallback_paths_equal_fsum(xs: list[float]) -> None:
    n = 3
    got = rolling_sum(np.array(xs), n)
    want = [math.fsum(xs[i - n + 1 : i + 1]) for i in range(n - 1, len(xs))]
    assert got[n - 1 :].tolist() == want


def test_rolling_sum_nan_input_gives_nan_windows_not_an_error() -> None:
    got = rolling_sum(np.array([1.0, math.nan, 2.0, 3.0, 4.0]), 2)
    assert math.isnan(got[1]) and math.isnan(got[2])
    assert got[3:].tolist() == [5.0, 7.0]


def test_sma_ratio_function_matches_streaming_value() -> None:
    closes = [100.0 + 0.01 * ((k * 37) % 23) for k in range(60)]
    value = _stream(closes, "sma_ratio_5_20")[-1]
    assert value == sma_ratio(math.fsum(closes[-5:]), 5, math.fsum(closes[-20:]), 20)


def test_range_streaming_equals_batch_bit_for_bit() -> None:
    rng = np.random.default_rng(5)
    c = 50.0 + rng.random(200)
    high, low = c + rng.random(200), c - rng.random(200) * 0.5
    ts = np.arange(200, dtype=np.int64) * NS_PER_MIN
    df = pd.DataFrame({"ts": ts, "open": c, "high": high, "low": low, "close": c, "volume": 1.0})
    batch = compute_features(df, ["range_7"])["range_7"].to_numpy()
    eng = FeatureEngine(["range_7"])
    stream = []
    for i in range(200):
        b = Bar(
            symbol="X",
            ts=int(ts[i]),
            open=float(c[i]),
            high=float(high[i]),
            low=float(low[i]),
            close=float(c[i]),
            volume=1.0,
        )
        x = eng.update(b)
        stream.append(math.nan if x is None else float(x[0]))
    assert np.array_equal(np.array(stream), batch, equal_nan=True)


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(st.integers(min_value=-3, max_value=3), min_size=40, max_size=150),
    base=st.sampled_from([0.5, 9.99, 99.5, 127.99, 195.0, 4000.0]),
)
def test_sma_ratio_on_cent_prices_streaming_equals_batch_bit_for_bit(
    steps: list[int], base: float
) -> None:
    # prices on a cent grid tie often: the streaming and batch values must be the same floats
    closes = [max(0.01, round(base + 0.01 * s, 2)) for s in np.cumsum(steps)]
    stream = np.array(_stream(closes, "sma_ratio_3_9"))
    batch = sma_ratio_series(np.array(closes), 3, 9)
    assert np.array_equal(stream, batch, equal_nan=True)
