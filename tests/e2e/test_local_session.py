"""End to end: ``algostack run`` on a fresh state directory completes a whole session.

One run (module fixture, as fast as the traders keep up) is checked from every side: the
summary, the local bucket's files per model, the journal CSV against the bars (next-open
fills), the live log against the CSV, the fleet ``algostack models list --dir`` names, and
``algostack replay`` on the run's own bars, which must produce exactly the same fills.
"""

from __future__ import annotations

import contextlib
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


def test_a_second_run_on_a_busy_home_is_refused_naming_the_first(
    session: dict[str, Any],
) -> None:
    import signal
    import time

    from algostack.local.session import HomeLock

    home: Path = session["home"]
    env = dict(os.environ, ALGOSTACK_HOME=str(home))
    first = subprocess.Popen(
        [sys.executable, "-c", "from algostack.cli import main; main()",
         "run", "--day", DAY, "--speed", "1", "--no-progress", "--no-report", "--home", str(home)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        lock = home / ".lock"
        while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
            assert first.poll() is None and time.monotonic() < deadline, "first run never locked"
            time.sleep(0.05)
        second = _algostack("run", "--day", DAY, "--max-speed", "--no-progress", home=home)
        assert second.returncode == 2
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, second.stderr
        assert f"another algostack run (PID {first.pid}) is using {home}" in lines[0]
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=60)
    HomeLock(home).acquire().release()  # free again once the first run has ended


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--speed", "0"], "--speed must be a positive number of times real time, got 0.0"),
        (["run", "--replay", "{bad}"], "no usable bars"),
        (["replay", "--bars", "{bad}", "--models", "{home}"], "no usable bars"),
        (["replay", "--bars", "{other}", "--models", "{home}"], "none of its symbols (ZZZ)"),
        (["run", "--slippage-bps", "-5"], "--slippage-bps must be >= 0, got -5.0"),
        (["run", "--dashboard-port", "99999"], "--dashboard-port must be 1-65535, got 99999"),
        (["run", "--max-speed", "--models", "{corrupt}"], "1 model(s) cannot trade: "),
    ],
)
def test_bad_input_exits_2_with_one_line_naming_it(
    session: dict[str, Any], tmp_path: Path, args: list[str], message: str
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("symbol,timestamp,open,high,low,close,volume\nAAPL,notatime,1,1,1,1,1\n")
    home = tmp_path / "home"
    other = tmp_path / "other.csv"
    other.write_text("symbol,timestamp,open,high,low,close,volume\n"
                     "ZZZ,2024-03-15T13:30:00Z,1,1,1,1,1\n")  # fmt: skip
    corrupt = tmp_path / "store"
    (corrupt / "models/onnx/AAPL").mkdir(parents=True)
    (corrupt / "models/onnx/AAPL/model_1-outer_0_inner_0.onnx").write_bytes(b"not onnx")
    argv = [a.format(bad=bad, other=other, home=session["home"], corrupt=corrupt) for a in args]
    proc = _algostack(*argv, "--no-progress" if argv[0] == "run" else "--no-report",
                      "--home", str(home), home=home, timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and message in errors[0], proc.stderr


def test_ctrl_c_twice_still_writes_the_summary_and_exits_130(
    session: dict[str, Any], tmp_path: Path
) -> None:
    import signal
    import time

    home = tmp_path / "home"
    proc = _start_run(session["home"], home, speed="60")
    deadline = time.monotonic() + 90
    while not list((home / "journals").glob("*/*/trades_*.csv")):
        assert proc.poll() is None and time.monotonic() < deadline, "the run never traded"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)  # the second Ctrl-C, 0.5 s later
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 130
    summary = json.loads(out)
    assert summary["interrupted"] and Path(summary["summary_path"]).is_file()


def _start_run(models_home: Path, home: Path, *, speed: str) -> subprocess.Popen[str]:
    """``algostack run --json`` on a new home holding ``models_home``'s models, in the
    background (stdout piped: the summary)."""
    import shutil

    shutil.copytree(models_home / "models", home / "models")
    return subprocess.Popen(
        [sys.executable, "-c", "from algostack.cli import main; main()",
         "run", "--day", DAY, "--speed", speed, "--no-progress", "--json", "--home", str(home)],
        env=dict(os.environ, ALGOSTACK_HOME=str(home)),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip


def test_a_run_whose_trader_stalls_exits_1_naming_it(
    session: dict[str, Any], tmp_path: Path
) -> None:
    import signal
    import time

    home = tmp_path / "home"
    proc = _start_run(session["home"], home, speed="780")
    stalled = 0
    try:
        deadline = time.monotonic() + 90
        while not stalled:
            assert proc.poll() is None and time.monotonic() < deadline, "no trader started"
            found = subprocess.run(["pgrep", "-f", f"trade .*{home}"], capture_output=True,
                                   text=True, check=False).stdout.split()  # fmt: skip
            if found and list((home / "journals").glob("*/*/trades_*.csv")):
                stalled = int(found[0])
            time.sleep(0.1)
        os.kill(stalled, signal.SIGSTOP)  # hangs: decides nothing more, yet lives
        out, _ = proc.communicate(timeout=240)
    finally:
        if stalled:
            with contextlib.suppress(ProcessLookupError):
                os.kill(stalled, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1
    summary = json.loads(out)
    assert any("run incomplete" in n for n in summary["notes"]), summary["notes"]
