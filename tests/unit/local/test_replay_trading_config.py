"""``algostack replay`` sizes each model by its ``trading.json`` (and by the defaults
without one), from the command line."""

from __future__ import annotations

import json
import math
from pathlib import Path

from typer.testing import CliRunner

from algostack.adapters.artifacts.native_json import dump_native
from algostack.adapters.offline.bars_file import write_bars
from algostack.cli import app
from algostack.core.market import NS_PER_MIN, Bar
from algostack.local.summary import read_journal_fills

T0 = 1_710_509_400 * 1_000_000_000  # 2024-03-15 09:30 New York
PREFIX = "models/sma/AAPL/model_4"


def _store(root: Path, config: bytes | None) -> Path:
    data = dump_native(kind="linear", features=["sma_ratio_10_30"], coef=[1.0], intercept=0.0,
                       thresholds={"long_entry": 0.0, "long_exit": 0.0})  # fmt: skip
    fold = root / f"{PREFIX}-outer_0_inner_0.json"
    fold.parent.mkdir(parents=True)
    fold.write_bytes(data)
    if config is not None:
        (root / PREFIX).mkdir(parents=True)
        (root / PREFIX / "trading.json").write_bytes(config)
    return root


def _replay(tmp_path: Path, config: bytes | None) -> tuple[int, str, str, list[int]]:
    bars = []
    for i in range(200):  # a slow wave: the SMA cross goes long and flat a few times
        px = 100.0 + 5.0 * math.sin(i / 12.0)
        bars.append(Bar(symbol="AAPL", ts=T0 + i * NS_PER_MIN, open=px, high=px + 0.2,
                        low=px - 0.2, close=px + 0.05, volume=1000.0))  # fmt: skip
    write_bars(tmp_path / "bars.csv", bars)
    journals = tmp_path / "journals"
    result = CliRunner().invoke(
        app,
        [
            "replay",
            "--bars",
            str(tmp_path / "bars.csv"),
            "--models",
            str(_store(tmp_path / "store", config)),
            "--journal-dir",
            str(journals),
            "--json",
            "--no-report",
        ],
        env={"ALGOSTACK_HOME": str(tmp_path / "home"), "COLUMNS": "200"},
    )
    qtys = [f.qty for p in sorted(journals.glob("*/trades_*.csv")) for f in read_journal_fills(p)]
    return result.exit_code, result.stdout, result.stderr, qtys


def test_replay_with_fixed_shares_7_trades_7_shares(tmp_path: Path) -> None:
    code, out, err, qtys = _replay(tmp_path, b'{"fixed_shares": 7}')
    assert code == 0, err
    assert qtys and set(qtys) == {7}, qtys
    assert json.loads(out)["models"][0]["trades"] == len(qtys)


def test_replay_without_trading_json_keeps_the_100_share_default(tmp_path: Path) -> None:
    code, _, err, qtys = _replay(tmp_path, None)
    assert code == 0, err
    assert qtys and set(qtys) == {100}, qtys


def test_replay_with_a_bad_trading_json_is_one_line_exit_2_nothing_traded(
    tmp_path: Path,
) -> None:
    code, _, err, qtys = _replay(tmp_path, b'{"fixed_shares": 7, "max_loss": 5}')
    assert code == 2 and qtys == []
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert f"{PREFIX}/trading.json: field 'max_loss' does not exist" in lines[0]


def test_replay_with_a_sizing_that_buys_zero_shares_is_one_line_exit_2(tmp_path: Path) -> None:
    code, _, err, qtys = _replay(tmp_path, b'{"fixed_notional": 50}')
    assert code == 2 and qtys == []
    assert f"{PREFIX}/trading.json: field 'fixed_notional': $50 buys 0 shares" in err
