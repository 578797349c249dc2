"""Faults a run must survive or report: dead and stalled processes, nats-server included."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from drill_kit import (
    Outcome,
    Run,
    assert_bucket_equals_journals,
    assert_journals_whole,
    copy_models,
)


def _recovered(out: Outcome, undisturbed: Outcome, home: Path) -> None:
    """A recoverable fault: exit 0 and the very fills of the undisturbed run."""
    assert out.code == 0, out.stderr[-2000:] + str(out.notes)
    assert out.trades == undisturbed.trades
    assert out.summary is not None
    assert_journals_whole(home)
    assert_bucket_equals_journals(home, out.summary)


def test_drill_nats_server_killed_is_restarted_and_trades_equal(
    models_home: Path, undisturbed: Outcome, tmp_path: Path
) -> None:
    run = Run(copy_models(models_home, tmp_path))
    try:
        run.wait_trading()
        run.kill("nats-server")
        out = run.finish()
    finally:
        run.close()
    _recovered(out, undisturbed, tmp_path)
    nats = out.component("nats")
    assert nats["restarts"] == 1 and nats["exit_code"] == -signal.SIGKILL


def test_drill_nats_server_dying_past_its_budget_stops_the_run_with_exit_1(
    models_home: Path, tmp_path: Path
) -> None:
    run = Run(copy_models(models_home, tmp_path))
    try:
        run.wait_trading()
        for _ in range(3):
            dead = run.kill("nats-server")
            run.wait_for(lambda d=dead: _restarted(run, d), "a restarted nats-server")
            time.sleep(0.5)
        out = run.finish(timeout=90)
    finally:
        run.close()
    assert out.code == 1
    assert out.notes and out.notes[0].startswith("run aborted: nats-server died 3 times"), out.notes
    assert out.component("nats")["status"] == "failed"
    assert out.summary is not None
    assert_journals_whole(tmp_path)
    assert_bucket_equals_journals(tmp_path, out.summary)


def _restarted(run: Run, dead: int) -> bool:
    return any(p != dead for p in run.pids("nats-server")) or run.proc.poll() is not None


def test_drill_trader_killed_is_restarted_and_trades_equal(
    models_home: Path, undisturbed: Outcome, tmp_path: Path
) -> None:
    run = Run(copy_models(models_home, tmp_path))
    try:
        run.wait_trading()
        run.kill(" trade ")
        out = run.finish()
    finally:
        run.close()
    _recovered(out, undisturbed, tmp_path)
    assert out.summary is not None
    assert sum(c["restarts"] for c in out.summary["components"] if c["kind"] == "trader") == 1
    for m in out.summary["models"]:  # each bar's decision counted once across the restart
        log = next((tmp_path / "journals").glob(f"*/{m['key']}/decisions_*.csv"))
        assert m["decisions"] == len(log.read_text().splitlines()) - 1, m["key"]


def test_drill_ingest_killed_resumes_where_the_stream_stands(
    models_home: Path, undisturbed: Outcome, tmp_path: Path
) -> None:
    run = Run(copy_models(models_home, tmp_path))
    try:
        run.wait_trading(fills=20)
        run.kill(" ingest ")
        out = run.finish()
    finally:
        run.close()
    _recovered(out, undisturbed, tmp_path)
    assert out.component("ingest")["restarts"] == 1
    log = Path(out.component("ingest")["log"]).read_text()
    assert "resuming after the stream's last event" in log  # not the session from its start


def test_drill_stalled_nats_server_recovers_and_trades_equal(
    models_home: Path, undisturbed: Outcome, tmp_path: Path
) -> None:
    run = Run(copy_models(models_home, tmp_path))
    try:
        run.wait_trading()
        pid = run.kill("nats-server", signal.SIGSTOP)
        time.sleep(3)
        import os

        os.kill(pid, signal.SIGCONT)
        out = run.finish()
    finally:
        run.close()
    _recovered(out, undisturbed, tmp_path)


def test_drill_stalled_trader_makes_an_incomplete_run_exit_1(
    models_home: Path, tmp_path: Path
) -> None:
    run = Run(copy_models(models_home, tmp_path))
    try:
        run.wait_trading()
        run.kill(" trade ", signal.SIGSTOP)  # hangs: decides nothing more, yet lives
        out = run.finish(timeout=120)
    finally:
        run.close()
    assert out.code == 1
    assert any("run incomplete" in n for n in out.notes), out.notes
    assert_journals_whole(tmp_path)
