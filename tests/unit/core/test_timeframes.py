"""Timeframes: parsing, bins on NYSE sessions, completion, and live == batch bit for bit."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import pandas as pd
import pytest

from algostack.core import sessions
from algostack.core.features_batch import compute_features
from algostack.core.market import NS_PER_MIN, Bar, UpdatedBar, datetime_to_ts
from algostack.core.timeframes import (
    BATCH_COLUMNS,
    BarBuilder,
    BuiltBar,
    Timeframe,
    build_bars,
    parse_timeframe,
)
from algostack.errors import ConfigError, DataError

REGULAR = date(2024, 11, 27)  # a Wednesday, EST
BLACK_FRIDAY = date(2024, 11, 29)  # closes at 13:00
JULY_3 = date(2024, 7, 3)  # closes at 13:00, EDT
THANKSGIVING = date(2024, 11, 28)


def _ny(day: date, hh: int, mm: int) -> int:
    return datetime_to_ts(datetime.combine(day, time(hh, mm), sessions.NEW_YORK))


def _bar(ts: int, k: int = 0, *, vwap: float | None = None, symbol: str = "AAPL") -> Bar:
    c = 100.0 + 0.01 * (k % 37) - 0.02 * (k % 11)
    return Bar(
        symbol=symbol,
        ts=ts,
        open=c - 0.03,
        high=c + 0.05 + 0.001 * (k % 7),
        low=c - 0.07,
        close=c,
        volume=float(100 + k),
        trade_count=1 + k % 5,
        vwap=c - 0.01 if vwap is None else vwap,
    )


def _session_bars(day: date, *, skip: frozenset[int] = frozenset()) -> list[Bar]:
    """One minute bar per minute of the session on ``day`` (minute indices in ``skip`` left
    out)."""
    s = sessions.session(day)
    assert s is not None
    lo = datetime_to_ts(s.open)
    return [_bar(lo + i * NS_PER_MIN, i) for i in range(s.minutes) if i not in skip]


def _build(timeframe: str, bars: list[Bar]) -> tuple[BarBuilder, list[BuiltBar]]:
    b = BarBuilder(timeframe, "AAPL")
    out = [x for bar in bars for x in b.push(bar)]
    return b, out


# -- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "amount", "unit", "width_min"),
    [
        ("1Min", 1, "Min", 1),
        ("5Min", 5, "Min", 5),
        ("59Min", 59, "Min", 59),
        ("1Hour", 1, "Hour", 60),
        ("6Hour", 6, "Hour", 360),
        ("1Day", 1, "Day", 0),
    ],
)
def test_parse_timeframe_accepted_forms_parse(
    text: str, amount: int, unit: str, width_min: int
) -> None:
    tf = parse_timeframe(text)
    assert tf == Timeframe(amount, unit)
    assert tf.name == str(tf) == text
    assert tf.width_ns == width_min * NS_PER_MIN
    assert tf.daily is (unit == "Day")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("7Sec", "unit 'Sec' is not built from minute bars"),
        ("1Week", "unit 'Week' is not built from minute bars"),
        ("1Month", "unit 'Month' is not built from minute bars"),
        ("0Min", "positive integer"),
        ("05Min", "positive integer"),
        ("60Min", "more than 59 minutes: write it in hours"),
        ("7Hour", "use '1Day'"),
        ("2Day", "only '1Day'"),
        ("5min", "unit 'min'"),
        ("Min", "not '<n><unit>'"),
        ("5 Min", "not '<n><unit>'"),
        ("", "not '<n><unit>'"),
        ("-5Min", "not '<n><unit>'"),
    ],
)
def test_parse_timeframe_bad_form_is_one_line_naming_the_accepted_forms(
    text: str, why: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_timeframe(text)
    msg = str(exc.value)
    assert msg.startswith(f"timeframe {text!r}: ")
    assert why in msg
    assert msg.endswith("accepted: '<n>Min' (n = 1-59), '<n>Hour' (n = 1-6) or '1Day'")
    assert "\n" not in msg


def test_parse_timeframe_not_a_string_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^timeframe None: not '<n><unit>'"):
        parse_timeframe(None)  # type: ignore[arg-type]


def test_builder_bad_timeframe_is_refused_at_construction() -> None:
    with pytest.raises(ConfigError, match="timeframe '1Week'"):
        BarBuilder("1Week", "AAPL")


# -- bins on a session -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timeframe", "count", "last_start", "last_minutes"),
    [
        ("1Min", 390, (15, 59), 1),
        ("4Min", 98, (15, 58), 2),
        ("5Min", 78, (15, 55), 5),
        ("15Min", 26, (15, 45), 15),
        ("30Min", 13, (15, 30), 30),
        ("1Hour", 7, (15, 30), 30),
        ("2Hour", 4, (15, 30), 30),
        ("6Hour", 2, (15, 30), 30),
    ],
)
def test_builder_full_session_gives_the_bins_of_the_session(
    timeframe: str, count: int, last_start: tuple[int, int], last_minutes: int
) -> None:
    builder, out = _build(timeframe, _session_bars(REGULAR))
    assert len(out) == count == builder.built
    first, last = out[0], out[-1]
    assert first.bar.ts == _ny(REGULAR, 9, 30)
    assert last.bar.ts == _ny(REGULAR, *last_start)
    assert last.end == _ny(REGULAR, 16, 0)
    assert last.minutes == last_minutes
    assert sum(b.minutes for b in out) == 390
    s = sessions.session(REGULAR)
    assert s is not None
    tf = parse_timeframe(timeframe)
    assert [(b.bar.ts, b.bar.ts, b.end) for b in out] == tf.bins(s)
    assert builder.pending == 0
    assert (builder.outside, builder.unaligned, builder.stale) == (0, 0, 0)


def test_builder_1hour_bins_align_to_the_open_and_the_last_is_15_30_to_16_00() -> None:
    _b, out = _build("1Hour", _session_bars(REGULAR))
    starts = [(b.bar.ts - _ny(REGULAR, 0, 0)) // NS_PER_MIN for b in out]
    assert starts == [570, 630, 690, 750, 810, 870, 930]  # 09:30, 10:30, ..., 15:30
    assert [b.minutes for b in out] == [60] * 6 + [30]
    assert out[-1].end - out[-1].bar.ts == 30 * NS_PER_MIN


def test_builder_daily_bar_is_the_session_labelled_midnight_new_york() -> None:
    bars = _session_bars(REGULAR)
    _b, out = _build("1Day", bars)
    assert len(out) == 1
    built = out[0]
    assert built.bar.ts == datetime_to_ts(datetime(2024, 11, 27, 5, 0, tzinfo=UTC))  # EST
    assert built.end == _ny(REGULAR, 16, 0)
    assert built.minutes == 390
    assert built.bar.open == bars[0].open
    assert built.bar.close == bars[-1].close
    assert built.bar.high == max(b.high for b in bars)
    assert built.bar.low == min(b.low for b in bars)
    assert built.bar.volume == sum(b.volume for b in bars)
    assert built.bar.trade_count == sum(b.trade_count for b in bars)
    # summer: midnight New York is 04:00 UTC, as Alpaca labels its 1Day bars
    _b, summer = _build("1Day", _session_bars(date(2024, 7, 2)))
    assert summer[0].bar.ts == datetime_to_ts(datetime(2024, 7, 2, 4, 0, tzinfo=UTC))


@pytest.mark.parametrize("day", [BLACK_FRIDAY, JULY_3])
@pytest.mark.parametrize(
    ("timeframe", "count", "last_start", "last_minutes"),
    [
        ("5Min", 42, (12, 55), 5),
        ("15Min", 14, (12, 45), 15),
        ("1Hour", 4, (12, 30), 30),
        ("2Hour", 2, (11, 30), 90),
        ("1Day", 1, None, 210),
    ],
)
def test_builder_early_close_ends_every_timeframe_at_13_00(
    day: date, timeframe: str, count: int, last_start: tuple[int, int] | None, last_minutes: int
) -> None:
    _b, out = _build(timeframe, _session_bars(day))
    assert len(out) == count
    assert out[-1].end == _ny(day, 13, 0)
    assert out[-1].minutes == last_minutes
    if last_start is not None:
        assert out[-1].bar.ts == _ny(day, *last_start)
    else:
        assert out[-1].bar.ts == sessions.new_york_day_bounds_ns(day)[0]


def test_builder_aggregates_ohlcv_trade_count_and_vwap() -> None:
    lo = _ny(REGULAR, 9, 30)
    rows = [
        (100.0, 101.0, 99.5, 100.5, 200.0, 3, 100.2),
        (100.5, 102.0, 100.0, 101.5, 100.0, 2, 101.0),
        (101.5, 101.8, 98.0, 99.0, 0.0, 0, 0.0),  # no trades: no volume, no vwap
        (99.0, 99.5, 98.5, 99.2, 300.0, 4, 99.1),
        (99.2, 99.9, 99.0, 99.8, 400.0, 5, 99.6),
    ]
    bars = [
        Bar(
            symbol="AAPL",
            ts=lo + i * NS_PER_MIN,
            open=o,
            high=h,
            low=lw,
            close=c,
            volume=v,
            trade_count=n,
            vwap=vw,
        )
        for i, (o, h, lw, c, v, n, vw) in enumerate(rows)
    ]
    _b, out = _build("5Min", bars)
    assert len(out) == 1
    bar = out[0].bar
    assert (bar.symbol, bar.ts, bar.open, bar.high, bar.low, bar.close) == (
        "AAPL",
        lo,
        100.0,
        102.0,
        98.0,
        99.8,
    )
    assert bar.volume == 1000.0
    assert bar.trade_count == 14
    pv = 100.2 * 200 + 101.0 * 100 + 0.0 + 99.1 * 300 + 99.6 * 400
    assert bar.vwap == pytest.approx(pv / 1000.0, rel=1e-15)


def test_builder_vwap_absent_when_a_minute_with_volume_has_none() -> None:
    lo = _ny(REGULAR, 9, 30)
    bars = [_bar(lo + i * NS_PER_MIN, i, vwap=0.0 if i == 2 else None) for i in range(5)]
    _b, out = _build("5Min", bars)
    assert out[0].bar.vwap == 0.0


def test_builder_1min_returns_each_session_minute_bar_itself() -> None:
    bars = _session_bars(REGULAR)
    _b, out = _build("1Min", bars)
    assert all(o.bar is b for o, b in zip(out, bars, strict=True))
    assert all(
        o.end == b.ts + NS_PER_MIN and o.minutes == 1 for o, b in zip(out, bars, strict=True)
    )


# -- completion --------------------------------------------------------------------------------


@pytest.mark.parametrize(("timeframe", "width"), [("5Min", 5), ("15Min", 15), ("1Hour", 60)])
def test_builder_bar_completes_on_the_last_minute_of_its_bin(timeframe: str, width: int) -> None:
    builder = BarBuilder(timeframe, "AAPL")
    for i, bar in enumerate(_session_bars(REGULAR)):
        out = builder.push(bar)
        last_of_bin = (i + 1) % width == 0 or i == 389
        assert len(out) == (1 if last_of_bin else 0), i
        if out:
            assert out[0].end == bar.ts + NS_PER_MIN
            assert builder.pending == 0


def test_builder_daily_bar_completes_on_the_sessions_last_minute_bar() -> None:
    builder = BarBuilder("1Day", "AAPL")
    bars = _session_bars(BLACK_FRIDAY)
    assert all(builder.push(b) == () for b in bars[:-1])
    (built,) = builder.push(bars[-1])  # the 12:59 bar
    assert bars[-1].ts == _ny(BLACK_FRIDAY, 12, 59)
    assert built.end == _ny(BLACK_FRIDAY, 13, 0) and built.minutes == 210


def test_builder_missing_last_minute_completes_on_the_next_bar_from_what_came() -> None:
    builder = BarBuilder("5Min", "AAPL")
    bars = _session_bars(REGULAR, skip=frozenset({4}))  # no 09:34 bar
    assert [builder.push(b) for b in bars[:4]] == [()] * 4
    (built,) = builder.push(bars[4])  # 09:35 shows the 09:30 bin is over
    assert built.bar.ts == _ny(REGULAR, 9, 30)
    assert built.minutes == 4
    assert built.end == _ny(REGULAR, 9, 35)
    assert built.bar.close == bars[3].close
    assert builder.pending == 1  # 09:35 opened the next bin


def test_builder_one_push_completes_the_open_bin_and_its_own() -> None:
    builder = BarBuilder("5Min", "AAPL")
    lo = _ny(REGULAR, 9, 30)
    assert builder.push(_bar(lo)) == ()
    assert builder.push(_bar(lo + NS_PER_MIN)) == ()
    # 09:32 .. 09:38 missing; 09:39 is the last minute of the 09:35 bin
    out = builder.push(_bar(lo + 9 * NS_PER_MIN))
    assert [(b.bar.ts, b.minutes) for b in out] == [(lo, 2), (lo + 5 * NS_PER_MIN, 1)]


def test_builder_empty_bins_give_no_bar() -> None:
    bars = _session_bars(REGULAR, skip=frozenset(range(5, 20)))  # 09:35-09:49 missing
    _b, out = _build("5Min", bars)
    assert len(out) == 75
    assert _ny(REGULAR, 9, 40) not in {b.bar.ts for b in out}


def test_builder_daily_missing_close_minute_completes_on_after_hours_or_next_session() -> None:
    bars = _session_bars(REGULAR, skip=frozenset({389}))  # no 15:59 bar
    builder, out = _build("1Day", bars)
    assert out == [] and builder.pending == 389
    (built,) = builder.push(_bar(_ny(REGULAR, 16, 5)))  # an after-hours bar
    assert built.minutes == 389 and built.end == _ny(REGULAR, 16, 0)
    assert builder.outside == 1
    # or the next session's first bar
    builder, _ = _build("1Day", bars)
    (built,) = builder.push(_session_bars(BLACK_FRIDAY)[0])
    assert built.bar.ts == sessions.new_york_day_bounds_ns(REGULAR)[0]
    assert builder.pending == 1


def test_builder_advance_completes_at_the_end_and_a_late_minute_is_then_stale() -> None:
    bars = _session_bars(REGULAR, skip=frozenset({389}))
    builder, _ = _build("1Day", bars)
    assert builder.advance(_ny(REGULAR, 15, 59)) == ()
    (built,) = builder.advance(_ny(REGULAR, 16, 0))
    assert built.minutes == 389
    assert builder.push(_bar(_ny(REGULAR, 15, 59))) == ()
    assert builder.stale == 1
    assert builder.advance(_ny(REGULAR, 17, 0)) == ()


def test_builder_flush_completes_a_partial_bin_at_the_end_of_the_data() -> None:
    builder, out = _build("1Hour", _session_bars(REGULAR)[:75])  # up to 10:44
    assert len(out) == 1
    (built,) = builder.flush()
    assert (built.bar.ts, built.minutes, built.end) == (
        _ny(REGULAR, 10, 30),
        15,
        _ny(REGULAR, 11, 30),
    )
    assert builder.flush() == ()


# -- ignored bars ------------------------------------------------------------------------------


def test_builder_ignores_and_counts_bars_outside_the_session() -> None:
    pre = [_bar(_ny(REGULAR, 8, m)) for m in range(0, 60, 7)]
    post = [_bar(_ny(REGULAR, 16, m)) for m in range(0, 60, 7)]
    holiday = [_bar(_ny(THANKSGIVING, 10, m)) for m in range(5)]
    early_close_after = [_bar(_ny(BLACK_FRIDAY, 13, m)) for m in range(3)]
    bars = [*pre, *_session_bars(REGULAR), *post, *holiday, *early_close_after]
    builder, out = _build("15Min", bars)
    assert len(out) == 26
    assert builder.outside == len(pre) + len(post) + len(holiday) + len(early_close_after)


def test_builder_ignores_and_counts_stale_and_unaligned_bars() -> None:
    lo = _ny(REGULAR, 9, 30)
    b0, b1, b2 = (_bar(lo + i * NS_PER_MIN, i) for i in range(3))
    builder = BarBuilder("5Min", "AAPL")
    for bar in (b0, b1, b1, b0, _bar(lo + NS_PER_MIN + 30 * 10**9), b2):
        assert builder.push(bar) == ()
    assert (builder.stale, builder.unaligned, builder.pending) == (2, 1, 3)


def test_builder_date_outside_the_calendar_is_the_calendars_one_line_error() -> None:
    builder = BarBuilder("5Min", "AAPL")
    old = datetime_to_ts(datetime(1962, 8, 20, 14, 0, tzinfo=UTC))
    with pytest.raises(sessions.OutsideCalendarError, match=r"^1962-08-20 is outside") as exc:
        builder.push(_bar(old))
    assert isinstance(exc.value, DataError) and "\n" not in str(exc.value)
    frame = _frame_of([_bar(old)])
    with pytest.raises(sessions.OutsideCalendarError, match=r"^1962-08-20 is outside"):
        build_bars(frame, "5Min")


def test_builder_and_batch_build_sessions_before_2015() -> None:
    day = date(2004, 8, 19)  # backtesting.py's GOOG data starts here
    bars = _session_bars(day)
    _b, out = _build("1Hour", bars)
    assert len(out) == 7
    assert len(build_bars(_frame_of(bars), "1Hour")) == 7


def test_builder_takes_another_calendar() -> None:
    def half_days(day: date) -> sessions.Session | None:
        s = sessions.session(day)
        return None if s is None else sessions.Session(day, s.open, s.open + timedelta(hours=2))

    builder = BarBuilder("1Hour", "AAPL", calendar=half_days)
    out = [x for bar in _session_bars(REGULAR) for x in builder.push(bar)]
    assert [b.minutes for b in out] == [60, 60]
    assert builder.outside == 390 - 120


# -- live == batch -----------------------------------------------------------------------------

TIMEFRAMES = ["1Min", "3Min", "5Min", "7Min", "15Min", "30Min", "1Hour", "2Hour", "1Day"]


@functools.cache
def _random_minute_bars(seed: int) -> tuple[Bar, ...]:
    """Six weeks of minute bars around the 2024 spring DST switch plus 2024-07-01..05 (the early
    close on 07-03, the holiday on 07-04): pre- and after-hours bars, missing minutes, runs
    of missing minutes, duplicates, bars out of order, bars off the minute, vwaps missing."""
    rng = np.random.default_rng(seed)
    days = [date(2024, 2, 26) + timedelta(days=i) for i in range(42)]
    days += [date(2024, 7, 1) + timedelta(days=i) for i in range(5)]
    bars: list[Bar] = []
    price = 150.0
    for day in days:
        lo = _ny(day, 4, 0)  # Alpaca's extended hours: 04:00-20:00
        gap_until = 0
        for m in range(16 * 60):
            if rng.random() < 0.01:
                gap_until = m + int(rng.integers(2, 90))  # a quiet stretch
            if m < gap_until or rng.random() < 0.12:
                continue
            ts = lo + m * NS_PER_MIN
            price = round(price * float(np.exp(rng.normal(0, 0.001))), 2)
            spread = round(float(rng.uniform(0, 0.3)), 2)
            volume = float(rng.integers(0, 5000)) if rng.random() < 0.9 else float(rng.random())
            vwap = 0.0 if rng.random() < 0.02 else price + float(rng.normal(0, 0.01))
            bars.append(
                Bar(
                    symbol="SPY",
                    ts=ts,
                    open=price,
                    high=price + spread,
                    low=price - spread * float(rng.random()),
                    close=round(price + 0.01, 2),
                    volume=volume,
                    trade_count=int(rng.integers(0, 50)),
                    vwap=vwap,
                )
            )
            r = rng.random()
            if r < 0.003:
                bars.append(bars[-1])  # a duplicate
            elif r < 0.006 and len(bars) > 3:
                bars.append(bars[-3])  # out of order
            elif r < 0.008:
                bars.append(_bar(ts + 17 * 10**9, m, symbol="SPY"))  # off the minute
    return tuple(bars)


def _frame_of(bars: Sequence[Bar]) -> pd.DataFrame:
    fields = ("ts", "open", "high", "low", "close", "volume", "trade_count", "vwap")
    return pd.DataFrame({f: [getattr(b, f) for b in bars] for f in fields})


def _live(timeframe: str, bars: Sequence[Bar]) -> tuple[pd.DataFrame, dict[str, int]]:
    builder = BarBuilder(timeframe, "SPY")
    out = [x for bar in bars for x in builder.push(bar)]
    out += builder.flush()
    rows = {
        "ts": [o.bar.ts for o in out],
        "end": [o.end for o in out],
        "open": [o.bar.open for o in out],
        "high": [o.bar.high for o in out],
        "low": [o.bar.low for o in out],
        "close": [o.bar.close for o in out],
        "volume": [o.bar.volume for o in out],
        "trade_count": [o.bar.trade_count for o in out],
        "vwap": [o.bar.vwap for o in out],
        "minutes": [o.minutes for o in out],
    }
    counts = {"outside": builder.outside, "unaligned": builder.unaligned, "stale": builder.stale}
    return pd.DataFrame(rows), counts


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("timeframe", TIMEFRAMES)
def test_builder_live_equals_batch_bit_for_bit_on_random_days(seed: int, timeframe: str) -> None:
    bars = _random_minute_bars(seed)
    live, live_counts = _live(timeframe, bars)
    batch = build_bars(_frame_of(bars), timeframe)
    assert tuple(batch.columns) == BATCH_COLUMNS
    assert batch.attrs == live_counts
    assert live_counts["outside"] > 0 and live_counts["stale"] > 0
    assert live_counts["unaligned"] > 0
    assert len(batch) == len(live) > 0
    for col in BATCH_COLUMNS:
        a, b = live[col].to_numpy(), batch[col].to_numpy()
        assert a.dtype.kind == b.dtype.kind, col
        assert np.array_equal(a, b), col  # exact: same floats, same order of additions


def test_build_bars_nan_high_propagates_as_live() -> None:
    bars = _session_bars(REGULAR)[:10]
    bad = Bar(symbol="AAPL", ts=bars[3].ts, open=1.0, high=float("nan"), low=float("nan"),
              close=1.0, volume=1.0)  # fmt: skip
    bars[3] = bad
    live, _ = _live("5Min", [b for b in bars])
    batch = build_bars(_frame_of(bars), "5Min")
    assert np.isnan(live["high"][0]) and np.isnan(batch["high"][0])
    assert np.array_equal(live["high"], batch["high"], equal_nan=True)
    assert np.array_equal(live["low"], batch["low"], equal_nan=True)


def test_build_bars_takes_a_tz_aware_index_and_feeds_compute_features() -> None:
    bars = _session_bars(REGULAR) + _session_bars(BLACK_FRIDAY)
    frame = _frame_of(bars).drop(columns=["trade_count", "vwap"])
    frame.index = pd.to_datetime(frame.pop("ts"), unit="ns", utc=True)
    out = build_bars(frame, "15Min")
    assert len(out) == 26 + 14
    assert (out["trade_count"] == 0).all() and (out["vwap"][out["minutes"] > 1] == 0.0).all()
    feats = compute_features(out, ["ret_1", "tod"])
    assert feats["tod"].iloc[0] == 0.0


def test_build_bars_empty_and_missing_columns() -> None:
    empty = build_bars(_frame_of([]).astype({"ts": "int64"}), "5Min")
    assert len(empty) == 0 and tuple(empty.columns) == BATCH_COLUMNS
    with pytest.raises(DataError, match=r"missing column\(s\) \['volume'\]"):
        build_bars(_frame_of(_session_bars(REGULAR)).drop(columns=["volume"]), "5Min")


def test_builder_other_kinds_are_built_not_passed_through() -> None:
    lo = _ny(REGULAR, 9, 30)
    up = UpdatedBar(symbol="AAPL", ts=lo, open=1.0, high=1.0, low=1.0, close=1.0, volume=1.0)
    (built,) = BarBuilder("1Min", "AAPL").push(up)
    assert type(built.bar) is Bar and built.bar.ts == lo
