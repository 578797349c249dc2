"""ReplaySource and write_bars: round trips, pacing, and bad rows reported by file and row."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from algostack.adapters.offline.bars_file import (
    ROWS_LOGGED,
    ReplaySource,
    parse_timestamp,
    write_bars,
)
from algostack.adapters.offline.synthetic import SyntheticSource
from algostack.core.market import NS_PER_MIN, Bar, MarketEvent, datetime_to_ts
from algostack.errors import ConfigError, DataError

T0 = datetime_to_ts(datetime(2024, 3, 15, 13, 30, tzinfo=UTC))
HEADER = "symbol,timestamp,open,high,low,close,volume\n"


async def synthetic_bars(symbols: list[str]) -> list[Bar]:
    src = SyntheticSource(symbols, day=date(2024, 3, 15), include_trades=False)
    return [e async for b in src.stream() for e in b if isinstance(e, Bar)]


async def collect(src: ReplaySource) -> list[list[MarketEvent]]:
    return [list(b) async for b in src.stream()]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
async def test_replay_write_then_read_round_trips_exactly(tmp_path: Path, suffix: str) -> None:
    bars = await synthetic_bars(["AAPL", "BRK.B"])
    odd = Bar(symbol="AAPL", ts=bars[-1].ts + 123, open=1, high=1, low=1, close=1, volume=0)
    path = tmp_path / f"bars{suffix}"
    assert write_bars(path, [*bars, odd]) == len(bars) + 1
    src = ReplaySource(path)
    got = [e for b in await collect(src) for e in b]
    assert sorted(got, key=lambda b: (b.ts, b.symbol)) == sorted(
        [*bars, odd], key=lambda b: (b.ts, b.symbol)
    )
    assert src.problems == [] and src.stats.received == len(bars) + 1


async def test_replay_symbol_sorted_file_is_merged_by_time(tmp_path: Path) -> None:
    bars = await synthetic_bars(["AAPL", "MSFT"])
    by_symbol = sorted(bars, key=lambda b: (b.symbol, b.ts))
    path = tmp_path / "b.csv"
    write_bars(path, by_symbol)
    batches = await collect(ReplaySource(path))
    assert len(batches) == 390
    assert all({b.symbol for b in batch} == {"AAPL", "MSFT"} for batch in batches)
    assert [batch[0].ts for batch in batches] == sorted(batch[0].ts for batch in batches)


async def test_replay_symbols_filter_keeps_only_those(tmp_path: Path) -> None:
    path = tmp_path / "b.parquet"
    write_bars(path, await synthetic_bars(["AAPL", "MSFT"]))
    got = [e for b in await collect(ReplaySource(path, symbols=["MSFT"])) for e in b]
    assert len(got) == 390 and {e.symbol for e in got} == {"MSFT"}


async def test_replay_bad_rows_are_reported_with_file_and_row_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        HEADER
        + "AAPL,2024-03-15T13:30:00Z,10,11,9,10.5,100\n"  # row 2 ok
        + "AAPL,2024-03-15T13:31:00Z,10,11,9,nan,100\n"  # row 3 NaN
        + "AAPL,2024-03-15T13:29:00Z,10,11,9,10,100\n"  # row 4 goes back in time
        + "aapl,2024-03-15T13:32:00Z,10,11,9,10,100\n"  # row 5 bad symbol
        + "MSFT,yesterday,10,11,9,10,100\n"  # row 6 bad timestamp
        + "MSFT,2024-03-15T13:30:00Z,10,9,11,10,100\n"  # row 7 high < low
        + "AAPL,2024-03-15T13:30:00Z,10,11,9,10,100\n"  # row 8 repeats row 2's minute
        + "AAPL,1710509520000000000,10,11,9,10.25,200\n"  # row 9 ok (13:32, epoch ns)
    )
    with caplog.at_level(logging.WARNING):
        src = ReplaySource(path)
    assert len(src.problems) == 6 and src.stats.malformed == 6
    rows = [p.split(": ", 1)[0] for p in src.problems]
    assert rows == [f"{path} row {n}" for n in (3, 4, 5, 6, 7, 8)]
    assert "close='nan' is not finite" in src.problems[0]
    assert "does not increase" in src.problems[1]
    assert "invalid symbol 'aapl'" in src.problems[2]
    assert "row 3" in caplog.text
    got = [e for b in await collect(src) for e in b]
    assert [(e.symbol, e.ts, e.close) for e in got] == [
        ("AAPL", T0, 10.5),
        ("AAPL", T0 + 2 * NS_PER_MIN, 10.25),
    ]


def test_replay_strict_raises_first_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + "AAPL,2024-03-15T13:30:00Z,10,11,9,x,100\n")
    with pytest.raises(DataError, match=r"bad.csv row 2: close='x' is not a number"):
        ReplaySource(path, strict=True)


def test_replay_missing_column_raises_data_error_naming_file(tmp_path: Path) -> None:
    path = tmp_path / "cols.csv"
    path.write_text("symbol,timestamp,open,high,low,close\nAAPL,1,1,1,1,1\n")
    with pytest.raises(DataError, match=r"cols.csv: missing column\(s\) volume"):
        ReplaySource(path)


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("nope.csv", None, "replay file not found"),
        ("bars.txt", "x", "unknown format '.txt'"),
        ("broken.parquet", "not parquet", "cannot read Parquet"),
    ],
)
def test_replay_unreadable_file_raises_data_error(
    tmp_path: Path, name: str, content: str | None, match: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=match):
        ReplaySource(path)


def test_replay_bad_options_raise_config_error(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text(HEADER)
    with pytest.raises(ConfigError, match="speed"):
        ReplaySource(path, speed=-2)
    with pytest.raises(ConfigError, match="invalid symbol"):
        ReplaySource(path, symbols=["A B"])


async def test_replay_paced_sleeps_by_timestamp_gap_over_speed(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text(
        HEADER
        + "AAPL,2024-03-15T13:30:00Z,10,11,9,10,1\n"
        + "AAPL,2024-03-15T13:31:00Z,10,11,9,10,1\n"
        + "AAPL,2024-03-15T13:35:00Z,10,11,9,10,1\n"
    )
    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    src = ReplaySource(path, speed=60.0, clock=lambda: now[0], sleep=fake_sleep)
    assert len(await collect(src)) == 3
    assert slept == pytest.approx([1.0, 4.0])


def test_parse_timestamp_accepts_iso_offsets_naive_and_epoch_ns() -> None:
    assert parse_timestamp("2024-03-15T09:30:00-04:00") == T0
    assert parse_timestamp("2024-03-15 13:30:00") == T0
    assert parse_timestamp(str(T0)) == T0 == parse_timestamp(T0)
    assert parse_timestamp(datetime(2024, 3, 15, 13, 30)) == T0
    with pytest.raises(ValueError, match="neither ISO"):
        parse_timestamp("13:30")


def test_an_unsorted_file_is_one_error_not_hundreds_of_skipped_rows(tmp_path: Path) -> None:
    path = tmp_path / "reversed.csv"
    rows = [f"AAPL,{T0 + i * NS_PER_MIN},10,11,9,10,100\n" for i in range(100)]
    path.write_text(HEADER + "".join(reversed(rows)))
    with pytest.raises(DataError, match=r"99 of 100 rows go back in time .* sort the file"):
        ReplaySource(path)


def test_many_bad_rows_are_logged_a_few_then_counted_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "nan.csv"
    rows = [
        f"AAPL,{T0 + i * NS_PER_MIN},10,11,9,{'nan' if i % 2 else '10'},100\n" for i in range(40)
    ]
    path.write_text(HEADER + "".join(rows))
    with caplog.at_level(logging.WARNING):
        src = ReplaySource(path)
    assert len(src.problems) == 20 and src.bar_count == 20
    skipped = [r.getMessage() for r in caplog.records if "replay row" in r.getMessage()]
    assert len(skipped) == ROWS_LOGGED + 1
    assert skipped[-1] == (
        f"replay rows skipped: 20 in all (the first {ROWS_LOGGED} are logged above)"
    )
