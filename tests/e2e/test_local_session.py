"""End to end: ``algostack run`` on a fresh state directory completes a whole session.

One run (module fixture, as fast as the traders keep up) is checked from every side: the
summary, the local bucket's files per model, the journal CSV against the bars (next-open
fills), the live log against the CSV, the fleet ``algostack models list --dir`` names, and
``algostack replay`` on the run's own bars, which must produce exactly the same fills.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

DAY = "2024-03-15"  # a regular Friday session (390 minutes)


def _algostack(*args: str, home: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ALGOSTACK_HOME=str(home), ALGOSTACK_LOG_LEVEL="INFO")
    return subprocess.run(
        [sys.executable, "-c", "from algostack.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("desk")
    proc = _algostack(
        "run", "--day", DAY, "--max-speed", "--no-progress", "--json", "--home", str(home),
        home=home,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    summary = json.loads(proc.stdout)
    return {"home": home, "summary": summary, "stderr": proc.stderr}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_run_fresh_home_completes_session_with_summary(session: dict[str, Any]) -> None:
    s = session["summary"]
    assert s["mode"] == "run" and s["day"] == DAY and not s["failed"]
    assert s["bars"] == 2 * 390  # two symbols, a full session each
    assert len(s["models"]) >= 3
    assert {m["symbol"] for m in s["models"]} >= {"AAPL", "MSFT"}
    assert sum(m["trades"] for m in s["models"]) > 0
    for m in s["models"]:
        assert m["decisions"] > 300, m  # every bar after the warm-up was decided
        assert m["latency_p50_us"] is not None and m["latency_p50_us"] > 0
        assert m["final_position"] == 0  # flattened before the close
    kinds = {c["kind"] for c in s["components"]}
    assert kinds == {"nats", "trader", "gateway", "ingest"}
    assert all(c["status"] in ("ok", "stopped") and c["restarts"] == 0 for c in s["components"])
    assert Path(s["report"]).read_text().count("data:image/png;base64,") == 3
    assert json.loads(Path(s["summary_path"]).read_text())["run_id"] == s["run_id"]


def test_run_banner_in_a_pipe_is_one_line(session: dict[str, Any]) -> None:
    banner = [ln for ln in session["stderr"].splitlines() if ln.startswith("algostack run ")]
    assert len(banner) == 1, session["stderr"]  # stderr is a pipe: it used to wrap at 80
    assert banner[0].endswith("source synthetic, speed max"), banner


def test_run_bucket_holds_trades_and_log_per_model(session: dict[str, Any]) -> None:
    home: Path = session["home"]
    for m in session["summary"]["models"]:
        live = home / "bucket" / m["prefix"] / "live" / DAY
        trades = live / f"trades_{DAY}.csv"
        log = live / "live_trader.log"
        assert trades.is_file() and log.is_file() and (live / "manifest.json").is_file()
        rows = _rows(trades)
        assert len(rows) == m["trades"]
        assert all(r["model"] == m["key"] for r in rows)
        # the bucket copy is the journal, byte for byte
        journal = next((home / "journals").glob(f"*/{m['key']}/trades_{DAY}.csv"))
        assert trades.read_bytes() == journal.read_bytes()
        # every fill in the CSV is in the live log too
        fill_lines = [ln for ln in log.read_text().splitlines() if '"msg":"fill ' in ln]
        assert len(fill_lines) == len(rows)
        for r in rows:
            assert any(r["client_order_id"] in ln for ln in fill_lines)


def test_run_fills_are_next_bar_open_with_slippage(session: dict[str, Any]) -> None:
    home: Path = session["home"]
    run_dir = Path(session["summary"]["summary_path"]).parent
    bars = _rows(run_dir / "bars.csv")
    by_symbol: dict[str, list[dict[str, str]]] = {}
    for b in bars:
        by_symbol.setdefault(b["symbol"], []).append(b)
    for m in session["summary"]["models"]:
        trades = home / "bucket" / m["prefix"] / "live" / DAY / f"trades_{DAY}.csv"
        series = by_symbol[m["symbol"]]
        position = 0
        for r in _rows(trades):
            ts = int(r["ts_ns"])
            bar = next(b for b in series if _ts(b["timestamp"]) == ts)
            sign = 1 if r["side"] == "buy" else -1
            assert float(r["price"]) == pytest.approx(float(bar["open"]) * (1 + sign * 1e-4))
            position += sign * int(r["qty"])
            assert int(r["position_after"]) == position
        assert position == m["final_position"]


def _ts(text: str) -> int:
    from algostack.adapters.offline.bars_file import parse_timestamp

    return parse_timestamp(text)


def test_models_list_names_the_same_fleet(session: dict[str, Any]) -> None:
    home: Path = session["home"]
    proc = _algostack("models", "list", "--dir", str(home), "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    listed = {m["prefix"] for m in json.loads(proc.stdout)["models"]}
    assert listed == {m["prefix"] for m in session["summary"]["models"]}


def test_replay_of_run_bars_gives_the_same_fills(session: dict[str, Any], tmp_path: Path) -> None:
    home: Path = session["home"]
    run_dir = Path(session["summary"]["summary_path"]).parent
    proc = _algostack(
        "replay", "--bars", str(run_dir / "bars.csv"), "--models", str(home),
        "--journal-dir", str(tmp_path), "--json", "--no-report", "--home", str(tmp_path),
        home=home,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    replayed = {m["key"]: m for m in json.loads(proc.stdout)["models"]}
    for m in session["summary"]["models"]:
        live = _rows(home / "bucket" / m["prefix"] / "live" / DAY / f"trades_{DAY}.csv")
        back = _rows(tmp_path / m["key"] / f"trades_{DAY}.csv")
        fields = ("client_order_id", "side", "qty", "price", "ts_ns", "position_after")
        assert [tuple(r[f] for f in fields) for r in back] == [
            tuple(r[f] for f in fields) for r in live
        ]
        assert replayed[m["key"]]["realised_pnl"] == pytest.approx(m["realised_pnl"])
