"""End to end: a daily SMA-cross model replayed by ``algostack replay`` over real daily bars
from before 2015 (GOOG 2004-2013, shipped by backtesting.py) trades exactly as
backtesting.py does for the same rule (issue 13, the first "Done when")."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import warnings
from datetime import date
from pathlib import Path

import numpy as np

from algostack.adapters.artifacts.export import write_fold
from algostack.adapters.artifacts.native_json import dump_native
from algostack.adapters.offline.bars_file import write_bars
from algostack.adapters.storage import LocalDirStore
from algostack.core import sessions
from algostack.core.features_batch import sma_ratio_series
from algostack.core.market import Bar

FAST, SLOW, SHARES = 10, 20, 10
PREFIX = "models/sma/GOOG/model_1"
Trade = tuple[date, float, date, float]


def goog_frame():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from backtesting.test import GOOG
    return GOOG


def write_daily_file(path: Path) -> int:
    """GOOG's bars labelled as Alpaca labels ``1Day`` bars: midnight New York."""
    bars = []
    for day, row in goog_frame().iterrows():
        d = day.date()
        assert sessions.is_session(d), f"{d} is no NYSE session"
        bars.append(
            Bar(
                symbol="GOOG",
                ts=sessions.new_york_day_bounds_ns(d)[0],
                open=float(row.Open),
                high=float(row.High),
                low=float(row.Low),
                close=float(row.Close),
                volume=float(row.Volume),
            )
        )
    return write_bars(path, bars)


def write_store(root: Path) -> None:
    """The SMA cross as a native JSON model at 1Day: long while SMA(10) > SMA(20)."""
    store = LocalDirStore(root)
    rule = dump_native(
        kind="linear",
        features=[f"sma_ratio_{FAST}_{SLOW}"],
        coef=[1.0],
        intercept=0.0,
        thresholds={"long_entry": 0.0, "long_exit": 0.0},
        timeframe="1Day",
    )
    write_fold(store, f"{PREFIX}-outer_0_inner_0.json", rule)
    trading = {"fixed_shares": SHARES, "features": "continuous", "daily_loss_limit": 1e6}
    (root / PREFIX).mkdir(parents=True, exist_ok=True)
    (root / PREFIX / "trading.json").write_text(json.dumps(trading))


def replay_trades(bars_file: Path, store: Path, tmp: Path) -> tuple[list[Trade], int]:
    """``algostack replay`` from the command line; its closed trades and final position."""
    journals = tmp / "journals"
    proc = subprocess.run(
        [sys.executable, "-c", "from algostack.cli import main; main()", "replay",
         "--bars", str(bars_file), "--models", str(store), "--slippage-bps", "0",
         "--commission", "0", "--journal-dir", str(journals), "--json", "--no-report"],
        capture_output=True, text=True, timeout=170, check=False,
        env=dict(os.environ, ALGOSTACK_HOME=str(tmp / "home")),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (model,) = json.loads(proc.stdout)["models"]
    fills = []
    for path in sorted(journals.glob("*/trades_*.csv")):
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                assert int(row["qty"]) == SHARES
                day = sessions.new_york_date_of_ns(int(row["ts_ns"]))
                fills.append((day, row["side"], float(row["price"])))
    assert [side for _, side, _ in fills] == ["buy", "sell"] * (len(fills) // 2) + (
        ["buy"] if len(fills) % 2 else []
    )
    trades = [(a[0], a[2], b[0], b[2]) for a, b in zip(fills[0::2], fills[1::2], strict=False)]
    return trades, int(model["final_position"])


def backtesting_trades() -> tuple[list[Trade], bool]:
    """backtesting.py's closed trades for the same rule, and whether a trade stays open."""
    from backtesting import Backtest, Strategy

    def ratio(close: np.ndarray) -> np.ndarray:
        # the same expression as our features; 0 (flat) until SMA(20) is defined, so that
        # backtesting.py decides from its second bar on as we do (it skips the first bar
        # where an indicator leaves NaN)
        return np.nan_to_num(sma_ratio_series(np.asarray(close, float), FAST, SLOW), nan=0.0)

    class SmaCross(Strategy):
        def init(self) -> None:
            self.ratio = self.I(ratio, self.data.Close)

        def next(self) -> None:
            if self.ratio[-1] > 0.0:  # long_entry = long_exit = 0: long iff score > 0
                if not self.position:
                    self.buy(size=SHARES)
            elif self.position:
                self.position.close()

    bt = Backtest(
        goog_frame(),
        SmaCross,
        cash=1e6,
        commission=0.0,
        spread=0.0,
        trade_on_close=False,
        exclusive_orders=True,
        finalize_trades=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = bt.run()
    trades = [
        (r.EntryTime.date(), float(r.EntryPrice), r.ExitTime.date(), float(r.ExitPrice))
        for r in stats["_trades"].itertuples()
    ]
    return trades, bool(stats["_strategy"].position.size)


def test_daily_sma_cross_over_goog_2004_2013_equals_backtesting_py(tmp_path: Path) -> None:
    bars_file = tmp_path / "goog_daily.csv"
    assert write_daily_file(bars_file) == 2148
    write_store(tmp_path / "store")
    ours, final_position = replay_trades(bars_file, tmp_path / "store", tmp_path)
    theirs, still_open = backtesting_trades()
    assert len(theirs) > 40
    assert ours == theirs  # entry and exit dates and prices, exactly
    assert final_position == (SHARES if still_open else 0)


def test_minute_model_given_the_daily_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bars_file = tmp_path / "goog_daily.csv"
    write_daily_file(bars_file)
    store = LocalDirStore(tmp_path / "store")
    rule = dump_native(
        kind="linear",
        features=["sma_ratio_10_20"],
        coef=[1.0],
        intercept=0.0,
        thresholds={"long_entry": 0.0, "long_exit": 0.0},
        timeframe="5Min",
    )
    write_fold(store, f"{PREFIX}-outer_0_inner_0.json", rule)
    proc = subprocess.run(
        [sys.executable, "-c", "from algostack.cli import main; main()", "replay",
         "--bars", str(bars_file), "--models", str(tmp_path / "store"), "--no-report"],
        capture_output=True, text=True, timeout=120, check=False,
        env=dict(os.environ, ALGOSTACK_HOME=str(tmp_path / "home")),
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "GOOG bars are daily" in lines[0] and "5Min" in lines[0]
