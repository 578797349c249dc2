"""ModelRunner on timeframes it builds from minute bars (5Min, 1Hour, 1Day), on daily files,
and across sessions: when it decides, when its orders fill, what survives the night."""

from __future__ import annotations

from datetime import date

import pytest

from algostack.adapters.artifacts.loader import parse_fold
from algostack.adapters.artifacts.model import EnsembleModel
from algostack.adapters.artifacts.native_json import dump_native
from algostack.adapters.broker import SimBroker
from algostack.core import sessions
from algostack.core.market import NS_PER_MIN, Bar, datetime_to_ts
from algostack.core.naming import ModelSpec, parse_artifact_key
from algostack.core.risk import Sizing
from algostack.core.timeframes import BarBuilder, build_bars
from algostack.core.trading_config import TradingConfig
from algostack.errors import DataError
from algostack.local.replay import replay_bars
from algostack.services.trader.runner import ModelRunner

KEY = "models/sma/AAPL/model_4-outer_0_inner_0.json"
DAYS = [date(2024, 3, d) for d in (4, 5, 6, 7, 8, 11)]
"""Six sessions, Monday to the next Monday."""


def make_model(timeframe: str, **trading: object) -> tuple[ModelSpec, EnsembleModel]:
    """The SMA cross on ``sma_ratio_2_4`` at ``timeframe``, 5 shares, ``trading`` fields."""
    art = parse_artifact_key(KEY)
    assert art is not None
    config = TradingConfig(key="t", sizing=Sizing(shares=5, field="fixed_shares"), **trading)  # type: ignore[arg-type]
    spec = ModelSpec("sma", "AAPL", "model_4", 4, (art,), trading=config)
    data = dump_native(
        kind="linear",
        features=["sma_ratio_2_4"],
        coef=[1.0],
        intercept=0.0,
        thresholds={"long_entry": 0.0, "long_exit": 0.0},
        timeframe=timeframe,
    )
    return spec, EnsembleModel(spec, [parse_fold(KEY, data)])


def runner_for(timeframe: str, **trading: object) -> ModelRunner:
    spec, model = make_model(timeframe, **trading)
    return ModelRunner(spec, model, SimBroker(0.0, model=spec.key), clock=lambda: 0)


def open_ns(day: date) -> int:
    s = sessions.session(day)
    assert s is not None
    return datetime_to_ts(s.open)


def close_ns(day: date) -> int:
    s = sessions.session(day)
    assert s is not None
    return datetime_to_ts(s.close)


TREND = (0.0, 2.0, 4.0, 6.0, -10.0, -10.0)
"""Per session: up four days (a daily model goes long), then down (it leaves)."""


def price_at(i: int) -> float:
    """A saw (60 minutes up, 60 down: short bars cross many times) on a daily trend."""
    k = i % 120
    return 100.0 + TREND[i // 390] + (k if k < 60 else 120 - k) * 0.1 + (i % 7) * 0.01


def minute_bars(days: list[date], price=price_at, premarket: bool = True) -> list[Bar]:
    """Every session minute of ``days`` (opens distinct from the previous close), with two
    pre-market minutes each day (never traded on, never a fill)."""
    out: list[Bar] = []
    i = 0
    for day in days:
        o = open_ns(day)
        if premarket:
            for k in (2, 1):
                out.append(Bar(symbol="AAPL", ts=o - k * NS_PER_MIN, open=1.0, high=1.0,
                               low=1.0, close=1.0, volume=10.0))  # fmt: skip
        for t in range(o, close_ns(day), NS_PER_MIN):
            p = price(i)
            out.append(Bar(symbol="AAPL", ts=t, open=p - 0.02, high=p + 0.05, low=p - 0.05,
                           close=p, volume=100.0))  # fmt: skip
            i += 1
    return out


async def feed(runner: ModelRunner, bars: list[Bar]) -> list[int]:
    """Run ``bars`` through ``on_bar``; the decision times (``now``) of the decided bars."""
    decided: list[int] = []
    for b in bars:
        before = runner.stats.decisions
        await runner.on_bar(b)
        if runner.stats.decisions != before:
            decided.append(runner.last_decided_ts)
    return decided


def built_ends(bars: list[Bar], timeframe: str) -> dict[int, int]:
    """label -> end of every bar the batch twin builds from ``bars``."""
    import pandas as pd

    frame = pd.DataFrame(
        {"ts": [b.ts for b in bars], "open": [b.open for b in bars],
         "high": [b.high for b in bars], "low": [b.low for b in bars],
         "close": [b.close for b in bars], "volume": [b.volume for b in bars]}
    )  # fmt: skip
    built = build_bars(frame, timeframe)
    return dict(zip(built["ts"].tolist(), built["end"].tolist(), strict=True))


def minute_open(bars: list[Bar]) -> dict[int, float]:
    return {b.ts: b.open for b in bars}


@pytest.mark.parametrize("timeframe", ["5Min", "1Hour", "1Day"])
async def test_built_bars_decided_at_their_end_and_filled_at_the_next_minute_open(
    timeframe: str,
) -> None:
    runner = runner_for(timeframe, flatten_before_close=False)
    bars = minute_bars(DAYS)
    decided = await feed(runner, bars)
    ends = built_ends(bars, timeframe)
    # one decision per built bar, labelled by its start, in order (the last one too)
    assert decided == sorted(ends)
    assert runner.stats.outside_bars == 2 * len(DAYS)
    fills = runner.broker.fills  # type: ignore[attr-defined]
    assert len(fills) >= 2
    opens = minute_open(bars)
    session = sorted(b.ts for b in bars if b.open != 1.0)  # the pre-market minutes are 1.0

    def next_minute(end: int) -> int:
        return next(t for t in session if t >= end)

    fill_times = {next_minute(end) for end in ends.values() if end <= session[-1]}
    for f in fills:
        # at the first session minute from a built bar's end (the next built bar's open,
        # the next session's open after a close), at its open (slippage 0)
        assert f.ts in fill_times
        assert f.price == opens[f.ts]


async def test_daily_model_decides_at_the_close_and_fills_at_the_next_open() -> None:
    runner = runner_for("1Day")
    assert runner.continuous and not runner.flatten_before_close  # a daily model's defaults
    bars = minute_bars(DAYS, price=lambda i: 100.0 + i * 0.01)  # up every minute: long
    decisions: list[tuple[int, int]] = []
    for b in bars:
        before = runner.stats.decisions
        await runner.on_bar(b)
        if runner.stats.decisions != before:
            decisions.append((b.ts, runner.last_decided_ts))
    # decided once per session, on its last minute (15:59), labelled midnight New York
    assert decisions == [
        (close_ns(d) - NS_PER_MIN, sessions.new_york_day_bounds_ns(d)[0]) for d in DAYS
    ]
    # sma_ratio_2_4 is defined on the 4th daily bar: long at its close, bought at the 5th
    # session's open, held overnight (no flatten), one fill only
    (fill,) = runner.broker.fills  # type: ignore[attr-defined]
    assert fill.ts == open_ns(DAYS[4]) and fill.qty == 5
    assert fill.price == minute_open(bars)[open_ns(DAYS[4])]
    assert runner.position == 5


async def test_intraday_model_flattens_before_the_close_by_default() -> None:
    runner = runner_for("5Min")
    assert runner.flatten_before_close and not runner.continuous
    bars = minute_bars(DAYS[:2], price=lambda i: 100.0 + i * 0.01)
    first_day = [b for b in bars if sessions.new_york_date_of_ns(b.ts) == DAYS[0]]
    await feed(runner, first_day)
    assert runner.position == 0  # bought early in the day, flat at 15:55's open
    sells = [f for f in runner.broker.fills if f.side == "sell"]  # type: ignore[attr-defined]
    assert [f.ts for f in sells] == [close_ns(DAYS[0]) - 5 * NS_PER_MIN]


async def test_intraday_model_holds_overnight_with_flatten_off() -> None:
    runner = runner_for("5Min", flatten_before_close=False, features="continuous")
    bars = minute_bars(DAYS[:2], price=lambda i: 100.0 + i * 0.01)
    await feed(runner, bars)
    assert runner.position == 5
    assert len(runner.broker.fills) == 1  # type: ignore[attr-defined]  # bought once, held
    assert runner.day == DAYS[1]


async def test_continuous_features_run_across_sessions_and_session_ones_restart() -> None:
    bars = minute_bars(DAYS[:2])
    on = runner_for("5Min", features="continuous")
    off = runner_for("5Min")
    await feed(on, bars)
    await feed(off, bars)
    per_day = 78
    assert on.features.count == 2 * per_day  # one engine for both days
    assert off.features.count == per_day  # a new engine on the second day
    # warming up again on day two: the session model cannot decide its first 3 bars
    assert on.stats.decisions == off.stats.decisions == 2 * per_day


async def test_restart_refeeds_minutes_and_rebuilds_the_open_bar() -> None:
    bars = minute_bars(DAYS[:1])
    whole = runner_for("15Min")
    await feed(whole, bars)
    cut = 2 + 40  # pre-market + 09:30-10:09: in the middle of the 10:00-10:15 bar
    again = runner_for("15Min")
    await feed(again, bars[:cut])
    last = again.last_decided_ts
    restarted = runner_for("15Min")
    restarted.last_decided_ts = last
    for b in bars[:cut]:  # the service warms from the stream up to its resume point
        restarted.warm(b)
    await feed(restarted, bars[cut:])
    assert restarted.features.values().tolist() == whole.features.values().tolist()
    assert restarted.stats.decisions == whole.stats.decisions - again.stats.decisions


# -- daily files -------------------------------------------------------------------------------


def daily_bars(days: list[date]) -> list[Bar]:
    return [
        Bar(
            symbol="AAPL",
            ts=sessions.new_york_day_bounds_ns(d)[0],
            open=100.0 + i + 0.5,
            high=102.0 + i,
            low=99.0 + i,
            close=101.0 + i,
            volume=1e6,
        )
        for i, d in enumerate(days)
    ]


async def test_daily_file_replays_a_daily_model_filling_at_the_next_bar_open() -> None:
    spec, model = make_model("1Day")
    bars = daily_bars(DAYS)
    out = await replay_bars(bars, [(spec, model)], slippage_bps=0.0)
    runner = out.runners[spec.key]
    assert runner.stats.decisions == len(DAYS)
    (fill,) = out.brokers[spec.key].fills  # long at the 4th close, bought at the 5th open
    assert fill.ts == bars[4].ts and fill.price == bars[4].open
    assert fill.qty == 5 and runner.position == 5


async def test_daily_file_and_minute_bars_give_a_daily_model_the_same_decisions() -> None:
    minutes = minute_bars(DAYS, price=lambda i: 100.0 + i * 0.01)
    spec, model = make_model("1Day")
    live = runner_for("1Day")
    await feed(live, minutes)
    builder = BarBuilder("1Day", "AAPL")  # the daily file: the same bars, built once
    daily = [bb.bar for m in minutes for bb in builder.push(m)]
    assert len(daily) == len(DAYS)
    out = await replay_bars(daily, [(spec, model)], slippage_bps=0.0)
    (fill,) = out.brokers[spec.key].fills
    (live_fill,) = live.broker.fills  # type: ignore[attr-defined]
    # the same decision (its order id), one at the next session's open price either way;
    # the daily file fills at the daily bar's label, the minutes at the 09:30 minute
    assert fill.client_order_id == live_fill.client_order_id
    assert fill.price == live_fill.price
    assert fill.ts == sessions.new_york_day_bounds_ns(DAYS[4])[0]
    assert live_fill.ts == open_ns(DAYS[4])


async def test_minute_model_given_a_daily_file_is_one_data_error() -> None:
    spec, model = make_model("5Min")
    with pytest.raises(DataError, match=r"AAPL bars are daily .*model models/sma/AAPL/model_4 "
                       r"trades 5Min bars"):  # fmt: skip
        await replay_bars(daily_bars(DAYS), [(spec, model)], slippage_bps=0.0)


async def test_daily_file_with_a_minute_bar_is_one_data_error() -> None:
    spec, model = make_model("1Day")
    bars = daily_bars(DAYS[:2])
    bars.append(Bar(symbol="AAPL", ts=open_ns(DAYS[2]), open=1.0, high=1.0, low=1.0,
                    close=1.0, volume=1.0))  # fmt: skip
    with pytest.raises(DataError, match=r"is not a daily bar .* daily and minute bars mixed"):
        await replay_bars(bars, [(spec, model)], slippage_bps=0.0)
