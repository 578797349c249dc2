"""`algostack data list|pull` on an archive directory: a complete day round-trips into a file
`algostack replay --bars` reads; a missing day, a day the ingest did not finish, a part out of
order, a bar twice across parts or a bar across the day boundary is one line and exit 2."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from algostack.adapters.offline.bars_file import ReplaySource
from algostack.adapters.storage import LocalDirStore
from algostack.cli import app
from algostack.core.market import NS_PER_MIN, Bar
from algostack.services.archive import DayManifest, encode_part, manifest_key, part_key

DAY = date(2024, 3, 15)
T0 = 1_710_509_400_000_000_000  # 2024-03-15 13:30 UTC, the open


def bar(symbol: str, minute: int, price: float = 100.0) -> Bar:
    return Bar(
        symbol=symbol,
        ts=T0 + minute * NS_PER_MIN,
        open=price,
        high=price + 1,
        low=price - 1,
        close=price + 0.5,
        volume=1000.0 + minute,
        trade_count=7,
        vwap=price + 0.25,
    )


def write_day(
    root: Path, parts: dict[tuple[str, int], list[Bar]], *, complete: bool | None = True
) -> LocalDirStore:
    """Parts as given and a manifest listing them (``complete=None``: no manifest)."""
    store = LocalDirStore(root)
    manifest = DayManifest("bars", DAY, complete=bool(complete))
    for (symbol, seq), bars in sorted(parts.items()):
        items = [(b, 0) for b in bars]
        store.put_bytes(part_key("bars", DAY, symbol, seq), encode_part("bars", items))
        manifest.add(symbol, seq, sorted(items, key=lambda it: it[0].ts))
    if complete is not None:
        store.put_bytes(manifest_key("bars", DAY), manifest.to_json())
    return store


GOOD = {
    ("AAPL", 0): [bar("AAPL", m) for m in range(5)],
    ("MSFT", 0): [bar("MSFT", m, 300.0) for m in range(5)],
    ("AAPL", 1): [bar("AAPL", m) for m in range(5, 9)],
}


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_data_list_and_pull_a_complete_day_round_trip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_day(tmp_path / "b", GOOD)
    code, out = run("data", "list", "--dir", str(tmp_path / "b"))
    assert code == 0, out
    assert "2024-03-15 bars symbols=AAPL,MSFT rows=14 parts=3 complete" in out
    code, out = run("data", "list", "--dir", str(tmp_path / "b"), "--json")
    doc = json.loads(out)
    assert doc["days"][0]["symbols"] == {
        "AAPL": {"rows": 9, "parts": 2},
        "MSFT": {"rows": 5, "parts": 1},
    }
    for name in ("bars.csv", "bars.parquet"):
        dest = tmp_path / name
        code, out = run(
            *("data", "pull", "--dir", str(tmp_path / "b"), "--day", "2024-03-15"),
            *("--out", str(dest)),
        )
        assert code == 0, out
        assert "14 bar(s) of 2 symbol(s)" in out
        bars = list(ReplaySource(dest, strict=True).bars())
        assert bars == sorted(
            [b for bs in GOOD.values() for b in bs], key=lambda b: (b.ts, b.symbol)
        )
    code, out = run(
        *("data", "pull", "--dir", str(tmp_path / "b"), "--day", "2024-03-15"),
        *("--symbols", "MSFT"),
    )
    assert code == 0 and "5 bar(s) of 1 symbol(s)" in out
    assert len(list(ReplaySource(tmp_path / "bars_2024-03-15.parquet").bars())) == 5


def test_data_list_says_a_finished_day_that_ends_before_the_close(tmp_path: Path) -> None:
    """A local run stopped mid-session leaves a finished day that ends early: still complete
    (it is what the desk saw), but said, so nobody takes it for a whole session."""
    write_day(tmp_path / "short", GOOD)  # ends at 09:38
    code, out = run("data", "list", "--dir", str(tmp_path / "short"))
    assert code == 0, out
    assert (
        "complete (short: 2024-03-15 ends at 09:38 New York, before the session's last "
        "minute 15:59 (the ingest stopped early))" in out
    )
    full = {("AAPL", 0): [bar("AAPL", m) for m in range(389)], ("MSFT", 0): [bar("MSFT", 389)]}
    write_day(tmp_path / "full", full)  # one symbol's bar of the last minute is enough
    code, out = run("data", "list", "--dir", str(tmp_path / "full"), "--json")
    assert code == 0 and json.loads(out)["days"][0]["short"] == "", out


@pytest.mark.parametrize(
    ("parts", "complete", "args", "message"),
    [
        (GOOD, True, ("--day", "2024-03-18"), "no archived bars (archived days: 2024-03-15)"),
        (GOOD, True, ("--day", "2024-03-15", "--symbols", "NVDA"), "no bars of NVDA"),
        (GOOD, None, ("--day", "2024-03-15"), "incomplete (no completion marker"),
        (GOOD, False, ("--day", "2024-03-15"), "incomplete (not marked complete"),
        (
            {("AAPL", 0): [bar("AAPL", 1), bar("AAPL", 0)]},
            True,
            ("--day", "2024-03-15"),
            "symbol=AAPL/part-00000.parquet: row 1: AAPL bar at 2024-03-15T13:30:00Z is out of "
            "order (after 2024-03-15T13:31:00Z)",
        ),
        (
            {("AAPL", 0): [bar("AAPL", 0), bar("AAPL", 1)], ("AAPL", 1): [bar("AAPL", 1)]},
            True,
            ("--day", "2024-03-15"),
            "symbol=AAPL/part-00001.parquet: row 0: AAPL bar at 2024-03-15T13:31:00Z is "
            "duplicated (also in market/bars/date=2024-03-15/symbol=AAPL/part-00000.parquet)",
        ),
        (
            {("AAPL", 0): [bar("AAPL", 0), bar("AAPL", 24 * 60)]},
            True,
            ("--day", "2024-03-15"),
            "belongs to date=2024-03-16, not date=2024-03-15 (across a day boundary)",
        ),
        (GOOD, True, ("--day", "15/03/2024"), "--day must be YYYY-MM-DD"),
        (GOOD, True, ("--day", "2024-03-15", "--out", "bars.txt"), "use a .parquet or .csv"),
    ],
)
def test_data_pull_bad_archive_is_one_line_exit_2(
    tmp_path: Path,
    parts: dict[tuple[str, int], list[Bar]],
    complete: bool | None,
    args: tuple[str, ...],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    write_day(tmp_path / "b", parts, complete=complete)
    code, out = run("data", "pull", "--dir", str(tmp_path / "b"), *args)
    assert code == 2, out
    assert message in out.replace("\n", ""), out
    assert len(out.strip().splitlines()) == 1, out
    assert not list(tmp_path.glob("*bars_*"))  # nothing written, not even a temporary file


def test_data_pull_partial_takes_an_unfinished_day_and_list_says_why(tmp_path: Path) -> None:
    write_day(tmp_path / "b", GOOD, complete=None)
    code, out = run("data", "list", "--dir", str(tmp_path / "b"))
    assert code == 0
    assert "INCOMPLETE: no completion marker" in out and "rows=14" in out
    dest = tmp_path / "partial.parquet"
    code, out = run(
        *("data", "pull", "--dir", str(tmp_path / "b"), "--day", "2024-03-15", "--partial"),
        *("--out", str(dest)),
    )
    assert code == 0, out
    assert len(list(ReplaySource(dest).bars())) == 14


def test_data_list_part_written_after_the_marker_makes_the_day_incomplete(
    tmp_path: Path,
) -> None:
    store = write_day(tmp_path / "b", GOOD)
    late = [bar("MSFT", 9, 300.0)]
    store.put_bytes(part_key("bars", DAY, "MSFT", 2), encode_part("bars", [(b, 0) for b in late]))
    code, out = run("data", "list", "--dir", str(tmp_path / "b"), "--day", "2024-03-15")
    assert code == 0
    assert "rows=15" in out and "1 part(s) written after the completion marker" in out


def test_data_list_missing_day_and_bad_options_exit_2(tmp_path: Path) -> None:
    write_day(tmp_path / "b", GOOD)
    code, out = run("data", "list", "--dir", str(tmp_path / "b"), "--day", "2024-03-14")
    assert code == 2 and "nothing archived on 2024-03-14" in out
    code, out = run("data", "list", "--dir", str(tmp_path / "b"), "--bucket", "s3://x")
    assert code == 2 and "exactly one of --bucket" in out
    code, out = run("data", "list", "--bucket", "not-s3")
    assert code == 2 and "expected s3://" in out
