"""Ctrl-C in the middle of ``algostack run``: everything stops (bounded), nothing is left
running (traders, gateway, ingest, nats-server), and the journals are synced into the bucket."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from drill_kit import DAY, Run, assert_bucket_equals_journals, assert_journals_whole, copy_models

from algostack.testing.proctree import alive, cmdline, descendants


def test_drill_ctrl_c_mid_session_stops_everything_and_syncs(
    models_home: Path, tmp_path: Path
) -> None:
    home = copy_models(models_home, tmp_path / "home")
    run = Run(home, speed="300")
    try:
        run.wait_trading(fills=3)
        children = descendants(run.proc.pid)
        names = " ".join(cmdline(p) for p in children)
        assert "nats-server" in names and " trade " in names and " ingest " in names
        run.proc.send_signal(signal.SIGINT)
        out = run.finish(timeout=60)
    finally:
        run.close()
    assert out.code == 130, out.stderr[-3000:]
    time.sleep(0.2)
    survivors = [p for p in children if alive(p)]
    assert not survivors, [(p, cmdline(p)) for p in survivors]
    summary = out.summary
    assert summary is not None and summary["interrupted"] and summary["failed"]
    assert 0 < summary["bars"] < 2 * 390  # stopped mid-session
    for m in summary["models"]:
        live = home / "bucket" / m["prefix"] / "live" / DAY
        assert (live / "live_trader.log").is_file() and (live / "manifest.json").is_file()
    assert_journals_whole(home)
    assert_bucket_equals_journals(home, summary)


def test_drill_sigterm_in_the_report_phase_still_writes_the_summary_and_exits_130(
    models_home: Path, tmp_path: Path
) -> None:
    """SIGTERM once the session is over and ``bars.csv`` is written (the report is drawn
    next): it is noted, not obeyed; the report and the summary are still written. It used to
    leave no summary.json and exit 143."""
    home = copy_models(models_home, tmp_path / "home")
    run = Run(home, "--max-speed")
    try:
        run.wait_for(lambda: any((home / "runs").glob("*/bars.csv")), "bars.csv", timeout=120)
        run.proc.send_signal(signal.SIGTERM)
        out = run.finish(timeout=60)
    finally:
        run.close()
    assert out.code == 130, out.stderr[-3000:]
    summary = out.summary
    assert summary is not None and summary["interrupted"]
    assert Path(summary["summary_path"]).is_file() and Path(summary["report"]).is_file()
    assert summary["bars"] == 2 * 390  # the session had ended: every bar traded
    assert_journals_whole(home)
    assert_bucket_equals_journals(home, summary)
