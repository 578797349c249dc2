"""End to end: a 5-minute and an hourly model trade in ``algostack run`` (their bars built from
the minute bars by each trader), and their live trades equal ``algostack replay`` of the day
the run archived (issue 13, the second "Done when")."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from algostack.adapters.artifacts.export import write_fold
from algostack.adapters.artifacts.native_json import dump_native
from algostack.adapters.storage import LocalDirStore

DAY = "2024-03-15"
MODELS = {  # prefix -> (timeframe, fast, slow)
    "models/sma/AAPL/model_5": ("5Min", 2, 4),
    "models/sma/MSFT/model_6": ("1Hour", 1, 2),
}
FIELDS = ("client_order_id", "side", "qty", "price", "ts_ns", "position_after")


def _store(root: Path) -> Path:
    store = LocalDirStore(root)
    for prefix, (timeframe, fast, slow) in MODELS.items():
        rule = dump_native(kind="linear", features=[f"sma_ratio_{fast}_{slow}"], coef=[1.0],
                           intercept=0.0, thresholds={"long_entry": 0.0, "long_exit": 0.0},
                           timeframe=timeframe)  # fmt: skip
        write_fold(store, f"{prefix}-outer_0_inner_0.json", rule)
    return root


def _algostack(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from algostack.cli import main; main()", *args],
        capture_output=True, text=True, timeout=240, check=False,
        env=dict(os.environ, ALGOSTACK_HOME=str(home)),
    )  # fmt: skip


def _fills(root: Path, pattern: str) -> dict[str, list[tuple[str, ...]]]:
    out = {}
    for path in sorted(root.glob(pattern)):
        with path.open(newline="") as fh:
            out[path.parent.name] = [tuple(r[f] for f in FIELDS) for r in csv.DictReader(fh)]
    return out


def test_5min_and_hourly_models_trade_live_as_their_archived_day_replays(tmp_path: Path) -> None:
    store = _store(tmp_path / "store")
    home = tmp_path / "home"
    run = _algostack("run", "--day", DAY, "--max-speed", "--models", str(store), "--no-progress",
                     "--no-report", "--json", "--home", str(home), home=home)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout)
    live = _fills(home / "journals", f"*/*/trades_{DAY}.csv")
    assert set(live) == {"sma-AAPL-model_5", "sma-MSFT-model_6"}, summary["notes"]
    decided = {m["key"]: m["decisions"] for m in summary["models"]}
    assert decided == {"sma-AAPL-model_5": 78, "sma-MSFT-model_6": 7}  # one per built bar
    assert all(rows for rows in live.values()), live  # both traded
    replayed = tmp_path / "replayed"
    rep = _algostack("replay", "--archive", str(home / "bucket"), "--day", DAY, "--models",
                     str(store), "--journal-dir", str(replayed), "--json", "--no-report",
                     "--home", str(tmp_path / "rhome"), home=tmp_path / "rhome")  # fmt: skip
    assert rep.returncode == 0, rep.stderr
    assert _fills(replayed, f"*/trades_{DAY}.csv") == live
