"""``algostack replay`` on any year the session calendar knows: 2004 bars trade as 2024's
do; bars past the calendar are one line and exit 2, never a traceback."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from algostack.adapters.artifacts.native_json import dump_native
from algostack.adapters.offline.bars_file import write_bars
from algostack.cli import app
from algostack.core.market import NS_PER_MIN, NS_PER_S, Bar
from algostack.core.sessions import session

KEY = "models/sma/AAPL/model_4-outer_0_inner_0.json"


def _store(root: Path) -> Path:
    data = dump_native(kind="linear", features=["sma_ratio_10_30"], coef=[1.0], intercept=0.0,
                       thresholds={"long_entry": 0.0, "long_exit": 0.0})  # fmt: skip
    (root / KEY).parent.mkdir(parents=True)
    (root / KEY).write_bytes(data)
    return root


def _bars(open_at: datetime, n: int) -> list[Bar]:
    t0 = int(open_at.timestamp()) * NS_PER_S
    out = []
    for i in range(n):
        px = 100.0 + 5.0 * math.sin(i / 12.0)
        out.append(Bar(symbol="AAPL", ts=t0 + i * NS_PER_MIN, open=px, high=px + 0.2,
                       low=px - 0.2, close=px + 0.05, volume=1000.0))  # fmt: skip
    return out


def _replay(tmp_path: Path, bars: list[Bar], name: str) -> tuple[int, str, str]:
    path = tmp_path / f"{name}.csv"
    write_bars(path, bars)
    result = CliRunner().invoke(
        app,
        [
            "replay",
            "--bars",
            str(path),
            "--models",
            str(tmp_path / "store"),
            "--json",
            "--no-report",
        ],
        env={"ALGOSTACK_HOME": str(tmp_path / "home"), "COLUMNS": "200"},
    )
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("day", [date(2004, 8, 18), date(2004, 11, 26)])
def test_replay_of_2004_bars_trades_as_the_same_bars_in_2024(tmp_path: Path, day: date) -> None:
    _store(tmp_path / "store")
    old, new = session(day), session(date(2024, 3, 15))
    assert old is not None and new is not None
    n = old.minutes  # 210 on 2004-11-26, an early close
    runs = [_replay(tmp_path, _bars(s.open, n), s.day.isoformat()) for s in (old, new)]
    assert [code for code, _, _ in runs] == [0, 0], runs
    docs = [json.loads(out) for _, out, _ in runs]
    trades = [sum(m["trades"] for m in doc["models"]) for doc in docs]
    assert trades[0] == trades[1] > 0


def test_replay_past_the_calendar_is_one_line_and_exit_2(tmp_path: Path) -> None:
    _store(tmp_path / "store")
    code, out, err = _replay(tmp_path, _bars(datetime(2036, 1, 8, 14, 30, tzinfo=UTC), 60), "x")
    assert code == 2, (out, err)
    assert err.strip() == (
        "error: 2036-01-08 is outside the NYSE session calendar "
        "(1970-2035, from exchange_calendars XNYS)"
    )
