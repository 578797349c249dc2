"""`algostack replay --archive ... --day D [--to D2]`: archived sessions replay exactly as the
same bars from a file; a session of the range that is not archived, or not finished, is one
line and exit 2 (``--partial`` replays an unfinished day as it is)."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import date
from pathlib import Path

from typer.testing import CliRunner

from algostack.adapters.artifacts.native_json import dump_native
from algostack.adapters.offline.bars_file import write_bars
from algostack.adapters.storage import LocalDirStore
from algostack.cli import app
from algostack.core.market import NS_PER_MIN, Bar
from algostack.core.sessions import session
from algostack.services.archive import ArchiveWriter

DAYS = (date(2024, 3, 13), date(2024, 3, 14), date(2024, 3, 15))
SYMBOLS = ("AAPL", "MSFT")


def _bars(day: date) -> list[Bar]:
    sess = session(day)
    assert sess is not None
    t0 = int(sess.open.timestamp()) * 1_000_000_000
    out = []
    for i in range(390):
        for k, sym in enumerate(SYMBOLS):
            px = 100.0 + 10 * k + 5.0 * math.sin((day.toordinal() * 390 + i) / (11.0 + k))
            out.append(Bar(symbol=sym, ts=t0 + i * NS_PER_MIN, open=px, high=px + 0.2,
                           low=px - 0.2, close=px + 0.05, volume=1000.0))  # fmt: skip
    return out


def _archive(
    root: Path, days: tuple[date, ...], *, finish: bool = True, minutes: int = 390
) -> None:
    root.mkdir(parents=True, exist_ok=True)

    async def write() -> None:
        writer = ArchiveWriter(LocalDirStore(root))
        for day in days:
            writer.add(_bars(day)[: minutes * len(SYMBOLS)])
        writer.flush()
        await writer.drain()
        if finish:
            assert await writer.close()

    asyncio.run(write())


def _store(root: Path) -> Path:
    data = dump_native(kind="linear", features=["sma_ratio_10_30"], coef=[1.0], intercept=0.0,
                       thresholds={"long_entry": 0.0, "long_exit": 0.0})  # fmt: skip
    for n, sym in enumerate(SYMBOLS, start=1):
        key = root / "models" / "sma" / sym / f"model_{n}-outer_0_inner_0.json"
        key.parent.mkdir(parents=True, exist_ok=True)
        key.write_bytes(data)
    return root


def _replay(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app,
        ["replay", "--models", str(tmp_path / "store"), "--json", "--no-report",
         "--slippage-bps", "0", "--home", str(tmp_path / "home"), *args],
        env={"ALGOSTACK_HOME": str(tmp_path / "home"), "COLUMNS": "200"},
    )  # fmt: skip
    return result.exit_code, result.stdout, result.stderr


def _trades(out: str) -> dict[str, tuple[int, float]]:
    doc = json.loads(out)
    return {m["key"]: (m["trades"], round(m["realised_pnl"], 6)) for m in doc["models"]}


def test_archived_sessions_replay_exactly_as_the_same_bars_from_a_file(tmp_path: Path) -> None:
    _store(tmp_path / "store")
    _archive(tmp_path / "bucket", DAYS)
    path = tmp_path / "bars.csv"
    write_bars(path, [b for d in DAYS for b in _bars(d)])
    code, from_file, err = _replay(tmp_path, "--bars", str(path))
    assert code == 0, err
    code, archived, err = _replay(tmp_path, "--archive", str(tmp_path / "bucket"),
                                  "--day", "2024-03-13", "--to", "2024-03-15")  # fmt: skip
    assert code == 0, err
    assert _trades(archived) == _trades(from_file)
    assert sum(t for t, _ in _trades(archived).values()) > 0
    doc = json.loads(archived)
    assert doc["bars"] == 3 * 390 * 2 and doc["source"].endswith("bars 2024-03-13..2024-03-15")
    # one day of the three, and a range over a weekend that ends on a session not archived
    code, one, err = _replay(tmp_path, "--archive", str(tmp_path / "bucket"), "--day", "2024-03-14")
    assert code == 0 and json.loads(one)["bars"] == 390 * 2, err
    code, out, err = _replay(tmp_path, "--archive", str(tmp_path / "bucket"),
                             "--day", "2024-03-15", "--to", "2024-03-18")  # fmt: skip
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and out == "" and len(lines) == 1, err
    assert "date=2024-03-18" in lines[0] and "no archived bars" in lines[0]
    # a weekend day, alone or as a whole range: said as such, on one line
    for extra in ((), ("--to", "2024-03-17")):
        code, out, err = _replay(tmp_path, "--archive", str(tmp_path / "bucket"),
                                 "--day", "2024-03-16", *extra)  # fmt: skip
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1, err
        assert ("is not an NYSE session" if not extra else "no NYSE session from") in lines[0]


def test_a_broken_day_in_a_range_stops_the_replay_before_any_day_is_replayed(
    tmp_path: Path,
) -> None:
    """The last day of three holds a part of the first day's bars (a copy gone wrong): the
    range is refused on one line naming that part, and no day of it is journaled (the two
    good days used to be replayed and journaled before the third was read)."""
    _store(tmp_path / "store")
    _archive(tmp_path / "bucket", DAYS)
    bars = tmp_path / "bucket" / "market" / "bars"
    (first,) = (bars / "date=2024-03-13" / "symbol=AAPL").glob("*.parquet")
    (last,) = (bars / "date=2024-03-15" / "symbol=AAPL").glob("*.parquet")
    last.write_bytes(first.read_bytes())
    journals = tmp_path / "journals"
    span = ("--day", "2024-03-13", "--to", "2024-03-15")
    code, out, err = _replay(tmp_path, "--archive", str(tmp_path / "bucket"), *span,
                             "--journal-dir", str(journals))  # fmt: skip
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and out == "" and len(lines) == 1, err
    part = last.relative_to(tmp_path / "bucket").as_posix()
    assert f"{part}: row 0: AAPL bar at " in lines[0] and "across a day boundary" in lines[0]
    assert not [p for p in journals.rglob("*") if p.is_file()], "a day replayed before the check"


def test_a_finished_day_that_ends_early_replays_with_a_note_saying_so(tmp_path: Path) -> None:
    _store(tmp_path / "store")
    _archive(tmp_path / "bucket", DAYS[:2], minutes=130)  # a run stopped at 11:39
    code, out, err = _replay(tmp_path, "--archive", str(tmp_path / "bucket"),
                             "--day", "2024-03-13", "--to", "2024-03-14")  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["bars"] == 2 * 130 * 2
    assert "2 days end early, first: 2024-03-13 ends at 11:39 New York" in " ".join(doc["notes"])


def test_an_unfinished_archived_day_is_refused_unless_partial(tmp_path: Path) -> None:
    _store(tmp_path / "store")
    _archive(tmp_path / "bucket", DAYS[:1], finish=False)  # an ingest that never finished
    args = ("--archive", str(tmp_path / "bucket"), "--day", "2024-03-13")
    code, out, err = _replay(tmp_path, *args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "--partial" in lines[0], err
    code, out, err = _replay(tmp_path, *args, "--partial")
    assert code == 0 and json.loads(out)["bars"] == 390 * 2, err


def test_replay_takes_one_source_on_one_line(tmp_path: Path) -> None:
    _store(tmp_path / "store")
    for args, message in (
        ((), "give exactly one of --bars FILE or --archive"),
        (("--bars", "x.csv", "--archive", "b"), "give exactly one of --bars FILE or --archive"),
        (("--archive", str(tmp_path)), "--archive needs --day"),
        (("--archive", str(tmp_path), "--day", "2024-03-15", "--to", "soon"), "--to must be"),
        (("--archive", str(tmp_path), "--day", "2024-03-15", "--to", "2024-03-01"), "before"),
    ):
        code, _out, err = _replay(tmp_path, *args)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and message in lines[0], (args, err)
