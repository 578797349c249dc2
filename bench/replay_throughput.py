"""Replay throughput: our backtest path vs backtesting.py 0.6.6 on the same bars and rule.

The rule: SMA(10)/SMA(30) cross, long/flat, a fixed size, expressed in our native JSON
format (feature ``sma_ratio_10_30``, coef [1], intercept 0, long_entry = long_exit = 0).

Ours: the bars file and the model store are read the way ``algostack replay`` reads them;
the timed part is ``local.replay.replay_bars`` -- one ``ModelRunner`` (the live trader's
per-bar class) with a ``SimBroker`` -- plus its summary. Theirs: ``Backtest.run()``: its
``Strategy.init`` (the indicators), its per-bar loop, its stats.

Making both sides the same: zero slippage and commission; orders decided on bar t fill at
bar t+1's open (``trade_on_close=False``); ``exclusive_orders=True``; a fixed size (our risk
caps set so the cap *is* the size, no loss limit, no flatten-before-close). Two properties of
our trader are written into the baseline strategy so the rule is the same rule: features
restart each session (the SMAs are computed per day; no decision while a day warms up) and
no order is sent on a session's last bar (it could only fill at the next day's open, and
our risk refuses orders outside the session). The arithmetic is the same too: the
baseline's indicator is ``features_batch.sma_ratio_series`` -- the batch twin our streaming
feature equals bit for bit (exact window sums, the same IEEE expression) -- and both sides
decide with ``ratio > 0``. Trades are compared exactly on entry/exit bar index and price.

Memory: ``algostack replay`` (report included) run as a fresh child process over 1 month
(21 sessions) and 1 year (252 sessions) of minute bars of 5 symbols with 10 models (an SMA
and an EMA cross per symbol), generated into a temp dir by this process first (generation
is not counted); each child's peak RSS is its own ``VmHWM`` (``/proc/self/status``), which
it writes at exit. The replay streams its file, so the year's peak should be within 1.3x of
the month's. The quick mode runs the same real year (~40 s of the quick run).

Timing: pairs alternate ours/theirs after a warm-up. A pair where either run got less than
90 % of a CPU (``process_time`` / wall: another process ran) counts as disturbed; more pairs
run, up to a time budget, and the figures are the medians of the undisturbed pairs (of all
pairs when fewer than 3 are undisturbed). CPU-time rates are reported beside wall rates.

Usage: ``.venv/bin/python bench/replay_throughput.py [--quick] [--days N] [--repeats N]``
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from algostack.adapters.artifacts.native_json import dump_native
from algostack.adapters.offline.bars_file import write_bars
from algostack.adapters.offline.synthetic import SyntheticSource
from algostack.core.features import NS_PER_DAY
from algostack.core.features_batch import sma_ratio_series
from algostack.core.market import NS_PER_MIN, NS_PER_S, Bar
from algostack.core.risk import RiskLimits
from algostack.core.sessions import NEW_YORK, next_session
from algostack.local.replay import load_bars, load_store_models, replay_bars

SIZE = 50
SYMBOL = "SPY"
FAST, SLOW = 10, 30
FEATURE = f"sma_ratio_{FAST}_{SLOW}"
MODEL_KEY = "models/sma/SPY/model_1-outer_0_inner_0.json"
LIMITS = RiskLimits(
    max_position_shares=SIZE,
    max_notional=1e15,
    max_orders_per_minute=1000,
    daily_loss_limit=1e15,
    flatten_before_close_min=0,
)


def make_bars(days: int, seed: int) -> list[Bar]:
    """``days`` consecutive NYSE sessions of synthetic minute bars of one symbol."""
    bars: list[Bar] = []
    day = date(2024, 1, 2)
    price: float | None = None
    for _ in range(days):
        s = next_session(day)
        src = SyntheticSource(
            [SYMBOL],
            day=s.day,
            seed=seed,
            include_trades=False,
            start_prices={SYMBOL: price} if price else None,
        )
        open_ts = int(s.open.timestamp()) * NS_PER_S
        n = src.minutes
        for m in range(n):
            for ev in src.minute_batch(open_ts + m * NS_PER_MIN, m / max(n - 1, 1)):
                if type(ev) is Bar:
                    bars.append(ev)
        price = bars[-1].close
        day = s.day.fromordinal(s.day.toordinal() + 1)
    return bars


def write_store(root: Path) -> None:
    """The SMA-cross rule as a native JSON model in a store laid out like the bucket."""
    data = dump_native(
        kind="linear",
        features=[FEATURE],
        coef=[1.0],
        intercept=0.0,
        thresholds={"long_entry": 0.0, "long_exit": 0.0},
        meta={"rule": "long when SMA(10) > SMA(30), flat otherwise"},
    )
    path = root / MODEL_KEY
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


# -- memory: a month and a year of minute bars, 5 symbols, 10 models ------------------------

RSS_SYMBOLS = ("AAPL", "IWM", "MSFT", "QQQ", "SPY")
RSS_FEATURES = ("sma_ratio_10_30", "ema_ratio_12_26")
MONTH_SESSIONS, YEAR_SESSIONS = 21, 252


def minute_bars(sessions: int, seed: int) -> Iterator[Bar]:
    """``sessions`` NYSE sessions of random-walk minute bars of ``RSS_SYMBOLS``, generated
    as they are consumed (time order, symbols interleaved, prices in cents)."""
    rng = np.random.default_rng(seed)
    last = [100.0 + 40.0 * i for i in range(len(RSS_SYMBOLS))]
    day = date(2024, 1, 2)
    for _ in range(sessions):
        s = next_session(day)
        open_ts = int(s.open.timestamp()) * NS_PER_S
        n = s.minutes
        steps = rng.normal(0.0, 8e-4, size=(n, len(RSS_SYMBOLS)))
        wicks = np.abs(rng.normal(0.0, 3e-4, size=(n, len(RSS_SYMBOLS), 2)))
        volumes = rng.integers(1_000, 50_000, size=(n, len(RSS_SYMBOLS)))
        for m in range(n):
            ts = open_ts + m * NS_PER_MIN
            for j, sym in enumerate(RSS_SYMBOLS):
                o = last[j]
                c = round(o * math.exp(steps[m, j]), 2)
                hi = round(max(o, c) * (1.0 + wicks[m, j, 0]), 2)
                lo = round(min(o, c) * (1.0 - wicks[m, j, 1]), 2)
                last[j] = c
                yield Bar(symbol=sym, ts=ts, open=o, high=max(hi, o, c), low=min(lo, o, c),
                          close=c, volume=float(volumes[m, j]))  # fmt: skip
        day = s.day.fromordinal(s.day.toordinal() + 1)


def write_rss_store(root: Path) -> None:
    """Ten native JSON models: an SMA and an EMA cross on each of ``RSS_SYMBOLS``."""
    n = 0
    for sym in RSS_SYMBOLS:
        for feature in RSS_FEATURES:
            n += 1
            data = dump_native(kind="linear", features=[feature], coef=[1.0], intercept=0.0,
                               thresholds={"long_entry": 0.0, "long_exit": 0.0})  # fmt: skip
            path = root / "models" / "cross" / sym / f"model_{n}-outer_0_inner_0.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


class ReplayRun(NamedTuple):
    peak_rss_mb: float
    wall_s: float
    """Wall time of the child process, start to exit."""
    summary_wall_s: float
    """The wall time ``algostack replay`` printed."""
    bars: int
    trades: int


# The child records its own VmHWM at exit: ``ru_maxrss`` from ``wait4`` would not do, as
# Linux carries the forking process's high-water mark over ``exec`` into the child's.
CHILD = """
import atexit, sys
out = sys.argv.pop(1)
def hwm():
    with open("/proc/self/status") as fh:
        kib = next(line.split()[1] for line in fh if line.startswith("VmHWM:"))
    with open(out, "w") as fh:
        fh.write(kib)
atexit.register(hwm)
sys.argv[0] = "algostack"
from algostack.cli import main
main()
"""


def replay_child(bars_file: Path, store: Path, home: Path) -> ReplayRun:
    """``algostack replay`` (report included) in a fresh child process: its own peak RSS."""
    hwm = home.parent / f"{home.name}.hwm"
    cmd = [sys.executable, "-c", CHILD, str(hwm), "replay", "--bars", str(bars_file),
           "--models", str(store), "--json"]  # fmt: skip
    env = dict(os.environ, ALGOSTACK_HOME=str(home))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"algostack replay failed ({proc.returncode}): {proc.stderr}")
    doc = json.loads(proc.stdout)
    return ReplayRun(
        int(hwm.read_text()) / 1024,  # KiB
        wall,
        float(doc["wall_s"]),
        int(doc["bars"]),
        int(sum(m["trades"] for m in doc["models"])),
    )


DAILY_YEARS = 10


def daily_bars(years: int, seed: int) -> Iterator[Bar]:
    """``years`` of daily random-walk bars of ``RSS_SYMBOLS`` from 2010, one per NYSE session,
    labelled at midnight New York as Alpaca labels ``1Day`` bars."""
    from algostack.core.sessions import new_york_day_bounds_ns

    rng = np.random.default_rng(seed)
    last = [100.0 + 40.0 * i for i in range(len(RSS_SYMBOLS))]
    day, end = date(2010, 1, 4), date(2010 + years, 1, 1)
    while True:
        s = next_session(day)
        if s.day >= end:
            return
        ts = new_york_day_bounds_ns(s.day)[0]
        for j, sym in enumerate(RSS_SYMBOLS):
            o = last[j]
            c = round(o * math.exp(rng.normal(0.0, 0.015)), 2)
            hi, lo = round(max(o, c) * 1.005, 2), round(min(o, c) * 0.995, 2)
            last[j] = c
            yield Bar(symbol=sym, ts=ts, open=o, high=hi, low=lo, close=c, volume=1e6)
        day = s.day.fromordinal(s.day.toordinal() + 1)


def write_daily_store(root: Path) -> None:
    """Ten daily models (1Day): an SMA and an EMA cross on each of ``RSS_SYMBOLS``."""
    n = 0
    for sym in RSS_SYMBOLS:
        for feature in RSS_FEATURES:
            n += 1
            data = dump_native(kind="linear", features=[feature], coef=[1.0], intercept=0.0,
                               thresholds={"long_entry": 0.0, "long_exit": 0.0},
                               timeframe="1Day")  # fmt: skip
            path = root / "models" / "daily" / sym / f"model_{n}-outer_0_inner_0.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


def measure_daily(seed: int) -> ReplayRun:
    """``algostack replay`` of ten years of daily bars through ten daily models."""
    with tempfile.TemporaryDirectory(prefix="bench-replay-daily-") as tmp:
        root = Path(tmp)
        write_daily_store(root)
        bars_file = root / "daily.csv"
        write_bars(bars_file, daily_bars(DAILY_YEARS, seed))
        return replay_child(bars_file, root, root / "home")


def measure_memory(seed: int) -> tuple[ReplayRun, ReplayRun]:
    """Peak RSS and timing of ``algostack replay`` over a month and a year of minute bars."""
    with tempfile.TemporaryDirectory(prefix="bench-replay-rss-") as tmp:
        root = Path(tmp)
        write_rss_store(root)
        runs = []
        for sessions in (MONTH_SESSIONS, YEAR_SESSIONS):
            bars_file = root / f"minute_{sessions}.csv"
            write_bars(bars_file, minute_bars(sessions, seed))
            runs.append(replay_child(bars_file, root, root / f"home_{sessions}"))
            bars_file.unlink()
    return runs[0], runs[1]


# -- ours ---------------------------------------------------------------------------------------


class Timing(NamedTuple):
    wall: float
    cpu: float
    """CPU time of this process during the run: what the run cost, whatever else ran."""

    @property
    def undisturbed(self) -> bool:
        """True when the run had the CPU to itself (little waiting for other processes)."""
        return self.cpu >= CLEAN_CPU_SHARE * self.wall


CLEAN_CPU_SHARE = 0.9
Trades = list[tuple[int, float, int, float]]


def run_ours(bars: list[Bar], models: Any) -> tuple[Timing, Trades, float]:
    """One replay; its timing, its trades (bar index, price) and its per-bar loop time."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = asyncio.run(replay_bars(bars, models, limits=LIMITS, slippage_bps=0.0))
    timing = Timing(time.perf_counter() - t0, time.process_time() - c0)
    index = {b.ts: i for i, b in enumerate(bars)}
    fills = next(iter(out.brokers.values())).fills
    trades = []
    for entry, exit_ in zip(fills[0::2], fills[1::2], strict=False):
        if entry.qty != SIZE or exit_.qty != SIZE:
            raise AssertionError(f"unexpected order size: {entry.qty}, {exit_.qty}")
        trades.append((index[entry.ts], entry.price, index[exit_.ts], exit_.price))
    return timing, trades, out.loop_s


# -- backtesting.py -----------------------------------------------------------------------------


def frame(bars: list[Bar]) -> pd.DataFrame:
    idx = pd.to_datetime([b.ts for b in bars], utc=True).tz_convert(NEW_YORK)
    return pd.DataFrame(
        {
            "Open": [b.open for b in bars],
            "High": [b.high for b in bars],
            "Low": [b.low for b in bars],
            "Close": [b.close for b in bars],
            "Volume": [b.volume for b in bars],
        },
        index=idx,
    )


def session_bounds(index: pd.DatetimeIndex) -> np.ndarray:
    """Row offsets where each New York day starts, plus ``len(index)``."""
    day = index.tz_convert(NEW_YORK).tz_localize(None).asi8 // NS_PER_DAY
    starts = np.flatnonzero(np.diff(day)) + 1
    return np.concatenate(([0], starts, [len(index)]))


def sma_ratio_by_session(close: Any, index: pd.DatetimeIndex) -> np.ndarray:
    """``sma_ratio_10_30`` per session by ``features_batch.sma_ratio_series``: the function our
    streaming features equal bit for bit (per day, because our features restart each day)."""
    c = np.asarray(close, dtype=float)
    out = np.zeros(len(c))
    bounds = session_bounds(index)
    for a, b in itertools.pairwise(bounds):
        out[a:b] = np.nan_to_num(sma_ratio_series(c[a:b], FAST, SLOW), nan=0.0)
    return out


def tradable(index: pd.DatetimeIndex) -> np.ndarray:
    """1 where our trader decides: the day's SMA(30) is defined, and not the day's last bar
    (an order there could only fill at the next day's open, which our risk refuses)."""
    ok = np.zeros(len(index))
    bounds = session_bounds(index)
    for a, b in itertools.pairwise(bounds):
        ok[a + SLOW - 1 : b - 1] = 1.0
    return ok


def run_backtesting(df: pd.DataFrame) -> tuple[Timing, Trades]:
    from backtesting import Backtest, Strategy

    class SmaCross(Strategy):
        def init(self) -> None:
            index = self.data.index
            self.ratio = self.I(sma_ratio_by_session, self.data.Close, index, name="sma_ratio")
            self.ok = self.I(tradable, index, name="tradable", plot=False)

        def next(self) -> None:
            if not self.ok[-1]:
                return
            if self.ratio[-1] > 0.0:  # our long_entry/long_exit test: score > 0
                if not self.position:
                    self.buy(size=SIZE)
            elif self.position:
                self.position.close()

    bt = Backtest(
        df,
        SmaCross,
        cash=1e12,
        spread=0.0,
        commission=0.0,
        trade_on_close=False,
        exclusive_orders=True,
        finalize_trades=False,
    )
    c0, t0 = time.process_time(), time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = bt.run()
    timing = Timing(time.perf_counter() - t0, time.process_time() - c0)
    tr = stats["_trades"]
    trades = [
        (int(r.EntryBar), float(r.EntryPrice), int(r.ExitBar), float(r.ExitPrice))
        for r in tr.itertuples()
    ]
    return timing, trades


def same(a: Trades, b: Trades) -> bool:
    if len(a) != len(b):
        return False
    return all(x == y for x, y in zip(a, b, strict=True))  # bars and prices, exactly


def cli_trades(bars_file: Path, store: Path) -> int | None:
    """Trades ``algostack replay`` reports for the same file and store (a CLI check)."""
    exe = Path(sys.executable).parent / "algostack"
    if not exe.exists():
        return None
    env = dict(os.environ, ALGOSTACK_HOME=str(store / "home"))
    proc = subprocess.run(
        [
            str(exe),
            "replay",
            "--bars",
            str(bars_file),
            "--models",
            str(store),
            "--json",
            "--slippage-bps",
            "0",
            "--no-report",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    if proc.returncode != 0:
        return None
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        return None
    return int(sum(m["trades"] for m in doc["models"]))


def indicator_seconds(df: pd.DataFrame) -> float:
    """Median time of the baseline's two indicators alone (they run inside its timing)."""
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        sma_ratio_by_session(df["Close"].to_numpy(), df.index)
        tradable(df.index)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer bars and repeats (< 60 s)")
    ap.add_argument("--days", type=int, default=None, help="sessions of bars (390 each)")
    ap.add_argument("--repeats", type=int, default=None, help="undisturbed pairs wanted")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    days = args.days or (10 if args.quick else 40)
    repeats = args.repeats or (7 if args.quick else 11)
    budget_s = 30.0 if args.quick else 300.0

    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        root = Path(tmp)
        write_store(root)
        bars_file = root / "bars.csv"
        write_bars(bars_file, make_bars(days, args.seed))
        bars, problems = load_bars(bars_file)
        if problems:
            raise SystemExit(f"bad bars: {problems[:3]}")
        models, _ = load_store_models(root)
        df = frame(bars)

        run_ours(bars, models)  # warm-up: imports, first-call costs
        run_backtesting(df)
        # Pairs alternate ours/theirs. A pair where either run waited for the CPU (another
        # process ran) is disturbed: it is kept but more pairs are run, up to the budget,
        # and the figures come from the undisturbed pairs when there are at least 3.
        pairs: list[tuple[Timing, Timing, float]] = []
        ours_trades: Trades = []
        theirs_trades: Trades = []
        load0 = os.getloadavg()[0]
        start = time.perf_counter()
        while len(pairs) < 4 * repeats:
            ours, ours_trades, loop_s = run_ours(bars, models)
            theirs, theirs_trades = run_backtesting(df)
            pairs.append((ours, theirs, loop_s))
            clean = sum(1 for o, t, _ in pairs if o.undisturbed and t.undisturbed)
            if clean >= repeats or (
                len(pairs) >= repeats and time.perf_counter() - start > budget_s
            ):
                break
        load1 = os.getloadavg()[0]
        indicators_s = indicator_seconds(df)
        via_cli = cli_trades(bars_file, root)
    month, year = measure_memory(args.seed)
    rss_ratio = year.peak_rss_mb / month.peak_rss_mb
    daily = measure_daily(args.seed)

    undisturbed = [(o, t, lp) for o, t, lp in pairs if o.undisturbed and t.undisturbed]
    used = undisturbed if len(undisturbed) >= 3 else pairs
    n = len(bars)
    med = statistics.median
    ours_bps = n / med(o.wall for o, _, _ in used)
    theirs_bps = n / med(t.wall for _, t, _ in used)
    ours_cpu_bps = n / med(o.cpu for o, _, _ in used)
    theirs_cpu_bps = n / med(t.cpu for _, t, _ in used)
    pair_ratio = med(t.wall / o.wall for o, t, _ in used)
    loop_bps = n / med(lp for _, _, lp in used)
    theirs_wall = med(t.wall for _, t, _ in used)
    same_trades = same(ours_trades, theirs_trades)
    first_diff = next(
        (i for i, (x, y) in enumerate(zip(ours_trades, theirs_trades, strict=False)) if x != y),
        None,
    )
    rows = [
        ("bars", f"{n:,} ({days} sessions of {SYMBOL})"),
        ("pairs run / undisturbed / used", f"{len(pairs)} / {len(undisturbed)} / {len(used)}"),
        ("ours: replay_bars + summary (wall, median)", f"{ours_bps:,.0f} bars/s"),
        ("  of which the per-bar loop alone", f"{loop_bps:,.0f} bars/s"),
        ("backtesting.py 0.6.6 Backtest.run (wall, median)", f"{theirs_bps:,.0f} bars/s"),
        (
            "  of which its indicators (features_batch)",
            f"{indicators_s * 1e3:.1f} ms ({indicators_s / theirs_wall:.0%})",
        ),
        ("ratio ours / backtesting.py (medians)", f"{ours_bps / theirs_bps:.2f}x"),
        ("ratio, median of pairs", f"{pair_ratio:.2f}x"),
        (
            "CPU time: ours / theirs",
            f"{ours_cpu_bps:,.0f} / {theirs_cpu_bps:,.0f} bars/s "
            f"({ours_cpu_bps / theirs_cpu_bps:.2f}x)",
        ),
        ("trades ours / theirs", f"{len(ours_trades)} / {len(theirs_trades)}"),
        ("same trades (entry/exit bar and price, exactly)", str(same_trades)),
        ("algostack replay CLI trades (default risk limits)", str(via_cli)),
        ("load average before / after", f"{load0:.2f} / {load1:.2f}"),
        (
            f"algostack replay, 1 month ({MONTH_SESSIONS} sessions x 5 symbols, 10 models)",
            f"{month.bars:,} bars, peak RSS {month.peak_rss_mb:.0f} MB, "
            f"{month.wall_s:.1f} s ({month.summary_wall_s:.1f} s printed)",
        ),
        (
            f"algostack replay, 1 year ({YEAR_SESSIONS} sessions x 5 symbols, 10 models)",
            f"{year.bars:,} bars, peak RSS {year.peak_rss_mb:.0f} MB, "
            f"{year.wall_s:.1f} s ({year.summary_wall_s:.1f} s printed), "
            f"{year.bars / year.wall_s:,.0f} bars/s, {year.trades:,} trades",
        ),
        ("peak RSS year / month (target <= 1.3)", f"{rss_ratio:.2f}x"),
        (
            f"algostack replay, {DAILY_YEARS} years of daily bars (5 symbols, 10 1Day models)",
            f"{daily.bars:,} bars, peak RSS {daily.peak_rss_mb:.0f} MB, {daily.wall_s:.1f} s "
            f"({daily.bars / daily.wall_s:,.0f} bars/s, process start-up included), "
            f"{daily.trades:,} trades",
        ),
    ]
    if not same_trades and first_diff is not None:
        rows.append(
            (
                "first difference",
                f"#{first_diff}: {ours_trades[first_diff]} vs {theirs_trades[first_diff]}",
            )
        )
    width = max(len(r[0]) for r in rows)
    print("replay throughput: same bars, same SMA-cross rule, fills at next open")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    print(
        json.dumps(
            {
                "ours_bars_per_s": round(ours_bps, 1),
                "backtesting_bars_per_s": round(theirs_bps, 1),
                "ratio": round(ours_bps / theirs_bps, 3),
                "same_trades": same_trades,
                "ratio_pairs_median": round(pair_ratio, 3),
                "ours_cpu_bars_per_s": round(ours_cpu_bps, 1),
                "backtesting_cpu_bars_per_s": round(theirs_cpu_bps, 1),
                "ratio_cpu": round(ours_cpu_bps / theirs_cpu_bps, 3),
                "ours_loop_bars_per_s": round(loop_bps, 1),
                "backtesting_indicator_s": round(indicators_s, 4),
                "bars": n,
                "trades": len(ours_trades),
                "pairs": len(pairs),
                "undisturbed_pairs": len(undisturbed),
                "cli_trades": via_cli,
                "minute_1m_peak_rss_mb": round(month.peak_rss_mb, 1),
                "minute_1y_peak_rss_mb": round(year.peak_rss_mb, 1),
                "minute_1y_bars_per_s": round(year.bars / year.wall_s, 1),
                "rss_year_over_month": round(rss_ratio, 3),
                "daily_10y_bars_per_s": round(daily.bars / daily.wall_s, 1),
                "daily_10y_peak_rss_mb": round(daily.peak_rss_mb, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
