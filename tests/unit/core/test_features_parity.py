"""Streaming == batch on the same bars (relative 1e-9; absolute 1e-12 where a value is 0)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algostack.core.features import FeatureEngine
from algostack.core.features_batch import compute_features
from algostack.core.market import NS_PER_MIN, Bar, datetime_to_ts

ALL = [
    "ret_1",
    "ret_5",
    "sma_ratio_3_8",
    "ema_ratio_4_9",
    "rsi_6",
    "vol_5",
    "volume_z_7",
    "range_4",
    "tod",
    "dow",
]


def _frame(closes: list[float], volumes: list[float], start: int, step: int) -> pd.DataFrame:
    c = np.asarray(closes)
    prev = np.concatenate([[c[0]], c[:-1]])
    high = np.maximum(c, prev) * 1.001
    low = np.minimum(c, prev) * 0.999
    ts = start + step * np.arange(len(c), dtype=np.int64)
    return pd.DataFrame(
        {"ts": ts, "open": prev, "high": high, "low": low, "close": c, "volume": volumes}
    )


def _stream(df: pd.DataFrame, names: list[str]) -> np.ndarray:
    eng = FeatureEngine(names)
    rows = []
    for r in df.itertuples(index=False):
        bar = Bar(
            symbol="AAPL",
            ts=int(r.ts),
            open=r.open,
            high=r.high,
            low=r.low,
            close=r.close,
            volume=r.volume,
        )
        x = eng.update(bar)
        rows.append(x if x is not None else np.full(len(names), np.nan))
    return np.vstack(rows)


def _assert_parity(df: pd.DataFrame, names: list[str]) -> None:
    stream = _stream(df, names)
    batch = compute_features(df, names).to_numpy()
    ready = ~np.isnan(batch).any(axis=1)
    # the engine answers exactly on the rows where every batch feature is defined
    assert np.array_equal(~np.isnan(stream).any(axis=1), ready)
    np.testing.assert_allclose(stream[ready], batch[ready], rtol=1e-9, atol=1e-12)


def test_features_realistic_series_streaming_equals_batch() -> None:
    rng = np.random.default_rng(3)
    n = 3 * 390
    rets = rng.normal(0, 0.0015, n) + 0.05 * np.concatenate([[0.0], rng.normal(0, 0.0015, n - 1)])
    closes = np.round(150.0 * np.exp(np.cumsum(rets)), 2)  # cent grid: many flat bars
    volumes = np.round(rng.lognormal(8, 1, n))
    volumes[100:140] = 500.0  # a flat stretch of volume
    start = datetime_to_ts(datetime(2026, 3, 6, 14, 30, tzinfo=UTC))  # spans the DST switch
    df = _frame(closes.tolist(), volumes.tolist(), start, 24 * 60 * NS_PER_MIN // 13)
    _assert_parity(df, ALL)


def test_features_long_session_does_not_drift() -> None:
    rng = np.random.default_rng(11)
    n = 20_000
    closes = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    volumes = rng.lognormal(9, 0.5, n)
    df = _frame(closes.tolist(), volumes.tolist(), 1_700_000_000 * 10**9, NS_PER_MIN)
    _assert_parity(df, ["sma_ratio_10_30", "vol_20", "volume_z_20", "range_15", "ret_3"])


prices = st.lists(
    st.one_of(
        st.just(0.0),
        st.floats(min_value=-0.05, max_value=0.05, allow_nan=False, allow_infinity=False),
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rets=prices,
    base=st.floats(min_value=1.0, max_value=5000.0),
    vols=st.lists(st.sampled_from([0.0, 100.0, 100.0, 250.0, 1e6]), min_size=120, max_size=120),
    cents=st.booleans(),
    start=st.integers(min_value=1_600_000_000, max_value=1_900_000_000),
)
def test_features_hypothesis_streaming_equals_batch(
    rets: list[float], base: float, vols: list[float], cents: bool, start: int
) -> None:
    closes = [base * math.exp(r) for r in np.cumsum(rets)]
    if cents:
        closes = [max(0.01, round(c, 2)) for c in closes]
    df = _frame(closes, vols[: len(closes)], start * 10**9, NS_PER_MIN)
    _assert_parity(df, ALL)
