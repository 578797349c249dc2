"""End to end: ``algostack drift`` on the day ``algostack run`` traded and archived (issue 13,
the third "Done when"): no difference on the undisturbed day, exactly the altered fill with
its cause when one live fill's price is changed, one line and exit 2 for a day not archived."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DAY = "2024-03-15"
JOURNAL = f"live/{DAY}/trades_{DAY}.csv"


def _algostack(*args: str, home: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from algostack.cli import main; main()", *args],
        capture_output=True, text=True, timeout=240, check=False, cwd=cwd,
        env=dict(os.environ, ALGOSTACK_HOME=str(home)),
    )  # fmt: skip


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home after ``algostack run --day DAY`` (demo models trained on the first run)."""
    home = tmp_path_factory.mktemp("drift") / "home"
    run = _algostack("run", "--day", DAY, "--max-speed", "--no-progress", "--no-report",
                     "--json", "--home", str(home), home=home, cwd=home.parent)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return home


def _drift(bucket: Path, home: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    out.mkdir(parents=True, exist_ok=True)
    return _algostack("drift", "--day", DAY, "--dir", str(bucket), "--models", str(home),
                      *extra, home=home, cwd=out)  # fmt: skip


def test_drift_undisturbed_day_reports_no_difference_exit_0(home: Path, tmp_path: Path) -> None:
    res = _drift(home / "bucket", home, tmp_path, "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads(res.stdout)
    assert report["differences"] == 0
    assert len(report["models"]) == 4
    assert all(m["matched"] == m["live_trades"] == m["replay_trades"] > 0 for m in report["models"])
    assert all(m["pnl_diff"] == 0 for m in report["models"])
    assert json.loads((tmp_path / f"drift_{DAY}.json").read_text()) == report
    assert "<table" not in (tmp_path / f"drift_{DAY}.html").read_text()  # nothing to list


def test_drift_altered_fill_price_reports_that_trade_with_its_cause_exit_1(
    home: Path, tmp_path: Path
) -> None:
    bucket = tmp_path / "bucket"
    shutil.copytree(home / "bucket", bucket)
    journal = sorted(bucket.glob(f"models/*/*/*/{JOURNAL}"))[0]
    lines = journal.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[2].split(",")  # the second fill
    cid = row[header.index("client_order_id")]
    row[header.index("price")] = f"{float(row[header.index('price')]) + 0.05:.6f}"
    lines[2] = ",".join(row)
    journal.write_text("\n".join(lines) + "\n")

    res = _drift(bucket, home, tmp_path / "out", "--json")
    assert res.returncode == 1, res.stdout + res.stderr
    report = json.loads(res.stdout)
    assert report["differences"] == 1
    (model,) = [m for m in report["models"] if m["differences"]]
    assert model["prefix"] == str(journal.parents[2].relative_to(bucket))
    (diff,) = model["differences"]
    assert diff["client_order_id"] == cid
    assert diff["kind"] == "price"
    assert diff["cause"].startswith("live fill price differs from the bar")
    assert diff["price_diff"] == pytest.approx(0.05)
    assert diff["time_diff_s"] == 0
    sign = 1 if diff["live"]["side"] == "sell" else -1  # selling higher earns more
    assert model["pnl_diff"] == pytest.approx(sign * 0.05 * diff["live"]["qty"], abs=1e-3)
    assert cid in (tmp_path / "out" / f"drift_{DAY}.html").read_text()
    text = _drift(bucket, home, tmp_path / "out")  # the table names it too
    assert text.returncode == 1 and cid in text.stdout and "1 difference(s)" in text.stdout


def test_drift_day_not_archived_is_one_line_exit_2(home: Path, tmp_path: Path) -> None:
    res = _algostack("drift", "--day", "2024-03-18", "--dir", str(home / "bucket"),
                     "--models", str(home), home=home, cwd=tmp_path)  # fmt: skip
    assert res.returncode == 2
    assert res.stdout == ""
    (line,) = res.stderr.strip().splitlines()
    assert "market/bars/date=2024-03-18/" in line and "no archived bars" in line
    assert not list(tmp_path.glob("drift_*"))
