from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from algostack.core.features import (
    BadBarError,
    FeatureEngine,
    UnknownFeatureError,
    parse_feature,
)
from algostack.core.features_batch import compute_features
from algostack.core.market import NS_PER_MIN, Bar, datetime_to_ts

T0 = datetime_to_ts(datetime(2026, 1, 5, 14, 30, tzinfo=UTC))  # Monday 09:30 New York (EST)


def bar(i: int, close: float, *, volume: float = 100.0, **kw: float) -> Bar:
    fields = {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close}
    fields.update(kw)
    return Bar(symbol="AAPL", ts=T0 + i * NS_PER_MIN, volume=volume, **fields)


def test_parse_feature_named_cases_give_params_and_warmup() -> None:
    assert parse_feature("ret_5").params == (5,)
    assert parse_feature("ret_5").warmup == 6
    assert parse_feature("sma_ratio_10_30").warmup == 30
    assert parse_feature("rsi_14").warmup == 15
    assert parse_feature("volume_z_20").warmup == 20
    assert parse_feature("tod").warmup == 1


@pytest.mark.parametrize("name", ["momentum_5", "ret_", "ret_x", "sma_ratio_10", "RET_5", ""])
def test_parse_feature_unknown_name_lists_known_forms(name: str) -> None:
    with pytest.raises(UnknownFeatureError) as exc:
        parse_feature(name)
    msg = str(exc.value)
    assert repr(name) in msg
    for form in ("ret_<n>", "sma_ratio_<fast>_<slow>", "rsi_<n>", "volume_z_<n>", "tod", "dow"):
        assert form in msg


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("sma_ratio_30_10", "fast window must be < slow"),
        ("ema_ratio_5_5", "fast window must be < slow"),
        ("vol_1", "n >= 2"),
        ("ret_0", "between 1 and"),
    ],
)
def test_parse_feature_bad_parameters_are_explained(name: str, why: str) -> None:
    with pytest.raises(UnknownFeatureError, match=why):
        parse_feature(name)


def test_engine_rejects_empty_duplicate_and_string_names() -> None:
    with pytest.raises(UnknownFeatureError, match="non-empty"):
        FeatureEngine([])
    with pytest.raises(UnknownFeatureError, match="non-empty"):
        FeatureEngine("ret_1")
    with pytest.raises(UnknownFeatureError, match="duplicate"):
        FeatureEngine(["ret_1", "ret_1"])


def test_engine_warms_up_then_gives_hand_computed_values() -> None:
    eng = FeatureEngine(["ret_2", "sma_ratio_2_3", "tod", "dow"])
    assert eng.warmup_bars == 3
    assert eng.update(bar(0, 100.0)) is None
    assert eng.update(bar(1, 101.0)) is None
    assert not eng.ready and eng.values() is None
    x = eng.update(bar(2, 103.0))
    assert x is not None and eng.ready
    assert x[0] == pytest.approx(math.log(103 / 100), rel=1e-12)
    assert x[1] == pytest.approx((101 + 103) / 2 / ((100 + 101 + 103) / 3) - 1, rel=1e-12)
    assert x[2] == pytest.approx(2 / 390, rel=1e-12)
    assert x[3] == 0.0  # Monday
    np.testing.assert_array_equal(eng.values(), x)


def test_engine_rsi_is_100_on_rises_and_50_when_flat() -> None:
    eng = FeatureEngine(["rsi_3"])
    for i, c in enumerate([10.0, 11.0, 12.0, 13.0]):
        x = eng.update(bar(i, c))
    assert x is not None and x[0] == 100.0
    flat = FeatureEngine(["rsi_2"])
    for i in range(4):
        y = flat.update(bar(i, 10.0))
    assert y is not None and y[0] == 50.0


def test_engine_volume_z_is_zero_on_flat_volume_and_signed_on_spike() -> None:
    eng = FeatureEngine(["volume_z_4"])
    for i in range(4):
        x = eng.update(bar(i, 10.0, volume=500.0))
    assert x is not None and x[0] == 0.0
    x = eng.update(bar(4, 10.0, volume=5000.0))
    assert x is not None and x[0] > 1.0


def test_tod_follows_new_york_wall_clock_across_dst() -> None:
    eng_w = FeatureEngine(["tod"])
    eng_s = FeatureEngine(["tod"])
    winter = datetime_to_ts(datetime(2026, 3, 6, 14, 30, tzinfo=UTC))  # 09:30 EST
    summer = datetime_to_ts(datetime(2026, 3, 9, 13, 30, tzinfo=UTC))  # 09:30 EDT
    xw = eng_w.update(Bar(symbol="X", ts=winter, open=1, high=1, low=1, close=1, volume=0))
    xs = eng_s.update(Bar(symbol="X", ts=summer, open=1, high=1, low=1, close=1, volume=0))
    assert xw is not None and xs is not None
    assert xw[0] == 0.0 and xs[0] == 0.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("close", math.nan),
        ("open", math.inf),
        ("low", 0.0),
        ("high", -1.0),
        ("volume", math.nan),
        ("volume", -5.0),
    ],
)
def test_engine_bad_bar_is_refused_and_state_untouched(field: str, value: float) -> None:
    eng = FeatureEngine(["ret_1", "vol_2"])
    ref = FeatureEngine(["ret_1", "vol_2"])
    for i, c in enumerate([10.0, 10.5, 10.2]):
        eng.update(bar(i, c))
        ref.update(bar(i, c))
    good = bar(3, 11.0)
    fields = {f: getattr(good, f) for f in ("open", "high", "low", "close", "volume")}
    fields[field] = value
    bad = Bar(symbol="AAPL", ts=good.ts, **fields)
    with pytest.raises(BadBarError, match=f"{field}=.*refused"):
        eng.update(bad)
    assert eng.count == ref.count and eng.last_ts == ref.last_ts
    np.testing.assert_array_equal(eng.update(bar(3, 11.0)), ref.update(bar(3, 11.0)))


def test_engine_high_below_low_and_other_symbol_are_refused() -> None:
    eng = FeatureEngine(["ret_1"])
    eng.update(bar(0, 10.0))
    with pytest.raises(BadBarError, match=r"high .* < low"):
        eng.update(bar(1, 10.0, high=9.0, low=9.5))
    other = Bar(symbol="MSFT", ts=T0 + 5 * NS_PER_MIN, open=1, high=1, low=1, close=1, volume=1)
    with pytest.raises(BadBarError, match="MSFT fed to the feature engine of AAPL"):
        eng.update(other)
    assert eng.count == 1


def test_engine_out_of_order_and_duplicate_bars_are_skipped_and_counted() -> None:
    eng = FeatureEngine(["ret_1"])
    ref = FeatureEngine(["ret_1"])
    for i, c in enumerate([10.0, 11.0, 12.0]):
        eng.update(bar(i, c))
        ref.update(bar(i, c))
    assert eng.update(bar(2, 50.0)) is None  # duplicate timestamp (e.g. an updated bar)
    assert eng.update(bar(1, 50.0)) is None  # out of order
    assert eng.skipped == 2 and eng.count == 3
    np.testing.assert_array_equal(eng.update(bar(3, 13.0)), ref.update(bar(3, 13.0)))


def test_engine_warm_up_feeds_history_without_raising() -> None:
    eng = FeatureEngine(["sma_ratio_2_4"])
    history = [bar(i, 10.0 + i) for i in range(5)]
    history.insert(2, bar(2, math.nan))
    history.append(bar(1, 10.0))
    accepted = eng.warm_up(history)
    assert accepted == 5 and eng.refused == 1 and eng.skipped == 1
    assert eng.ready
    x = eng.update(bar(5, 15.0))
    assert x is not None and x[0] == pytest.approx((14.5 / 13.5) - 1, rel=1e-12)


def test_compute_features_refuses_bad_rows_and_unsorted_time() -> None:
    df = pd.DataFrame(
        {
            "ts": [T0, T0 + NS_PER_MIN],
            "open": [1.0, 1.0],
            "high": [1.0, 1.0],
            "low": [1.0, 1.0],
            "close": [1.0, math.nan],
            "volume": [1.0, 1.0],
        }
    )
    with pytest.raises(BadBarError, match="row 1"):
        compute_features(df, ["ret_1"])
    df.loc[1, "close"] = 1.0
    df.loc[1, "ts"] = T0
    with pytest.raises(ValueError, match="strictly increasing"):
        compute_features(df, ["ret_1"])
    with pytest.raises(ValueError, match="missing column"):
        compute_features(df.drop(columns=["volume"]), ["ret_1"])
    with pytest.raises(UnknownFeatureError):
        compute_features(df, ["nope"])


def test_compute_features_accepts_tz_aware_index_and_marks_warmup_nan() -> None:
    idx = pd.date_range("2026-01-05 14:30", periods=4, freq="1min", tz="UTC")
    df = pd.DataFrame(
        {"open": 1.0, "high": 2.0, "low": 1.0, "close": [1.0, 2.0, 4.0, 8.0], "volume": 1.0},
        index=idx,
    )
    out = compute_features(df, ["ret_2", "tod"])
    assert out["ret_2"].isna().tolist() == [True, True, False, False]
    assert out["ret_2"].iloc[3] == pytest.approx(math.log(4.0))
    assert out["tod"].iloc[0] == 0.0
