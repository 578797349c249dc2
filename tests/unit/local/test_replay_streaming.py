"""``algostack replay`` streams its file: what it holds does not grow with the file's length,
a streamed replay equals one over a list, and the wall time it prints covers the report."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from algostack.adapters.artifacts.native_json import dump_native
from algostack.adapters.offline.bars_file import ReplaySource, write_bars
from algostack.cli import app
from algostack.core.market import NS_PER_MIN, Bar
from algostack.local.replay import load_store_models, open_bars, replay_bars
from algostack.local.summary import Downsampled

T0 = 1_710_509_400 * 1_000_000_000  # 2024-03-15 09:30 New York
DAY_NS = 24 * 60 * NS_PER_MIN


def _store(root: Path, symbols: tuple[str, ...] = ("AAPL",), entry: float = 0.0) -> Path:
    data = dump_native(kind="linear", features=["sma_ratio_10_30"], coef=[1.0], intercept=0.0,
                       thresholds={"long_entry": entry, "long_exit": entry})  # fmt: skip
    for n, sym in enumerate(symbols, start=1):
        key = root / "models" / "sma" / sym / f"model_{n}-outer_0_inner_0.json"
        key.parent.mkdir(parents=True, exist_ok=True)
        key.write_bytes(data)
    return root


def _bars(days: int, symbols: tuple[str, ...] = ("AAPL",)) -> list[Bar]:
    """``days`` sessions of 390 minute bars per symbol: a slow wave the SMA cross trades."""
    out = []
    for d in range(days):
        for i in range(390):
            for k, sym in enumerate(symbols):
                px = 100.0 + 10.0 * k + 5.0 * math.sin((d * 390 + i) / (12.0 + k))
                ts = T0 + d * DAY_NS + i * NS_PER_MIN
                out.append(Bar(symbol=sym, ts=ts, open=px, high=px + 0.2, low=px - 0.2,
                               close=px + 0.05, volume=1000.0))  # fmt: skip
    return out


def _peak_bytes(work: Callable[[], object]) -> int:
    work()  # first-call costs (imports, caches) are not the file's
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("layout", ["time.csv", "symbol.csv", "time.parquet"])
def test_a_source_ten_times_longer_holds_no_more(tmp_path: Path, layout: str) -> None:
    order, suffix = layout.split(".")
    paths = {}
    for days in (2, 20):
        bars = _bars(days, ("AAPL", "MSFT"))
        if order == "symbol":
            bars.sort(key=lambda b: (b.symbol, b.ts))
        paths[days] = tmp_path / f"{days}.{suffix}"
        write_bars(paths[days], bars)

    def read(days: int) -> Callable[[], object]:
        def go() -> object:
            src = ReplaySource(paths[days])
            assert src.in_time_order is (order == "time")
            n = sum(1 for _ in src.bars())
            assert n == src.bar_count == days * 390 * 2
            return n

        return go

    small, large = _peak_bytes(read(2)), _peak_bytes(read(20))
    # A source holding its bars would need ~10x (1,560 vs 15,600 bars of ~200 bytes each);
    # both files are longer than one read buffer (BATCH_ROWS).
    assert large < 1.5 * small, (small, large)


def test_a_replay_ten_times_longer_holds_no_more(tmp_path: Path) -> None:
    # A model that never trades: what grows with trades (fills, per trade) stays out.
    models, _ = load_store_models(_store(tmp_path / "store", entry=1.0))
    paths = {}
    for days in (8, 80):
        paths[days] = tmp_path / f"{days}.csv"
        write_bars(paths[days], _bars(days))

    def replay(days: int) -> Callable[[], object]:
        def go() -> object:
            out = asyncio.run(replay_bars(open_bars(paths[days]).bars(), models, curve_points=200))
            assert out.bars == days * 390 and out.models[0].trades == 0
            assert len(out.curves[0].equity) <= 200 and len(out.prices["AAPL"]) <= 200
            return out

        return go

    small, large = _peak_bytes(replay(8)), _peak_bytes(replay(80))
    assert large < 1.5 * small, (small, large)


async def test_a_streamed_replay_of_a_symbol_sorted_file_equals_one_over_the_list(
    tmp_path: Path,
) -> None:
    symbols = ("AAPL", "MSFT")
    models, _ = load_store_models(_store(tmp_path / "store", symbols))
    bars = _bars(6, symbols)
    path = tmp_path / "by_symbol.csv"
    write_bars(path, sorted(bars, key=lambda b: (b.symbol, b.ts)))
    exact = await replay_bars(bars, models, curve_points=10_000)
    streamed = await replay_bars(open_bars(path).bars(), models, curve_points=100)
    assert streamed.bars == exact.bars == len(bars)
    for key, broker in exact.brokers.items():
        assert streamed.brokers[key].fills == broker.fills != []
    # The figures are exact whatever the curve keeps (latencies are timings: left out).
    assert [replace(m, latency_p50_us=0, latency_p99_us=0) for m in streamed.models] == [
        replace(m, latency_p50_us=0, latency_p99_us=0) for m in exact.models
    ]
    for full, cut in zip(exact.curves, streamed.curves, strict=True):
        assert len(full.equity) == 6 * 390 + len(full.fills)  # one point per bar and fill
        assert {f.ts for f in cut.fills} <= {ts for ts, _ in cut.equity}  # fills all kept
        assert len(cut.equity) <= 100 + len(cut.fills)
        assert set(cut.equity) <= set(full.equity)
        assert cut.equity == sorted(cut.equity, key=lambda p: p[0])


def test_downsampled_keeps_at_most_the_limit_evenly_spread_plus_every_kept_point() -> None:
    series = Downsampled(limit=10)
    for i in range(1000):
        series.add(float(i))
        if i in (7, 501):
            series.add(i + 0.5, keep=True)  # a fill: kept whatever the stride
    sampled = [p for p in series.points if p % 1 == 0]
    assert 5 <= len(sampled) <= 10 and sampled[0] == 0
    gaps = {b - a for a, b in itertools.pairwise(sampled)}
    assert gaps == {series.stride} and sampled[-1] >= 1000 - series.stride
    assert 7.5 in series.points and 501.5 in series.points
    assert series.points == sorted(series.points)
    short = Downsampled(limit=10)
    for i in range(10):
        short.add(i)
    assert short.points == list(range(10))  # a series within the limit is kept whole


def _invoke(tmp_path: Path, bars_file: Path, *extra: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app,
        ["replay", "--bars", str(bars_file), "--models", str(tmp_path / "store"), "--json",
         "--home", str(tmp_path / "home"), *extra],
        env={"ALGOSTACK_HOME": str(tmp_path / "home"), "COLUMNS": "200"},
    )  # fmt: skip
    return result.exit_code, result.stdout, result.stderr


def test_the_wall_time_replay_prints_covers_the_report(tmp_path: Path) -> None:
    _store(tmp_path / "store")
    path = tmp_path / "bars.csv"
    write_bars(path, _bars(2))
    before = time.time()
    code, out, err = _invoke(tmp_path, path)
    assert code == 0, (out, err)
    doc = json.loads(out)
    report = Path(doc["report"])
    assert report.is_file()
    assert json.loads(Path(doc["summary_path"]).read_text())["wall_s"] == doc["wall_s"]
    # The report was written inside the wall time: the printed figure reaches past it (the
    # old figure stopped before the report, short by the whole rendering).
    assert doc["wall_s"] >= report.stat().st_mtime - before - 0.1


def test_replay_of_an_unsorted_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    _store(tmp_path / "store")
    path = tmp_path / "reversed.csv"
    write_bars(path, list(reversed(_bars(1))))
    code, out, err = _invoke(tmp_path, path, "--no-report")
    assert code == 2 and out == ""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "389 of 390 rows go back in time" in lines[0], err
    assert "sort the file" in lines[0]
