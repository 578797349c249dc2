"""Faults a run must survive or report: dead and stalled processes, nats-server included."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from drill_kit import (
    DEFAULT_SPEED,
    SPEED,
    Outcome,
    Run,
    assert_bucket_equals_journals,
    assert_journals_whole,
    copy_models,
)

from algostack.testing.proctree import cmdline


def _recovered(out: Outcome, undisturbed: Outcome, home: Path, *, same_fills: bool = True) -> None:
    """A recoverable fault: exit 0 and the very fills of the undisturbed run (or, where the
    fault held fills back, every bar decided and the books equal to the account)."""
    assert out.code == 0, out.stderr[-2000:] + str(out.notes)
    assert out.summary is not None
    if same_fills:
        assert out.trades == undisturbed.trades
    else:
        assert undisturbed.summary is not None
        decided = {m["key"]: m["decisions"] for m in undisturbed.summary["models"]}
        assert {m["key"]: m["decisions"] for m in out.summary["models"]} == decided
        assert any(n.endswith("reconciliation ok") for n in out.notes), out.notes
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
    held = {k: rows[-1][5] for k, rows in out.trades.items() if rows and rows[-1][5] != "0"}
    said = [n for n in out.notes if n.startswith("positions left held at the abort")]
    assert bool(said) == bool(held), (held, out.notes)
    for key, qty in held.items():  # each named with the position its journal ends on
        assert f"{key} {qty} " in said[0], (key, qty, said)


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


def test_drill_nats_server_stopped_for_good_is_killed_restarted_and_trades_equal(
    models_home: Path, undisturbed: Outcome, tmp_path: Path
) -> None:
    """SIGSTOP: alive, answering nothing. The run's pings go unanswered, it kills the server
    and starts it again (it used to wait for ever)."""
    run = Run(copy_models(models_home, tmp_path))
    try:
        run.wait_trading()
        run.kill("nats-server", signal.SIGSTOP)
        out = run.finish()
    finally:
        run.close()
    _recovered(out, undisturbed, tmp_path)
    assert out.component("nats")["restarts"] == 1
    assert any("nats-server answered none of 3 pings: hung" in n for n in out.notes), out.notes


GATEWAY = " gateway --state-dir "
"""The gateway's command line (a trader's holds `` --broker gateway ``)."""


@pytest.mark.parametrize("what", [" trade ", " ingest ", GATEWAY])
def test_drill_component_stopped_for_good_is_killed_restarted_and_trades_equal(
    models_home: Path, undisturbed: Outcome, tmp_path: Path, what: str
) -> None:
    """SIGSTOP a trader, the ingest or the gateway: no heartbeat, bars or status for HANG_S,
    so the run kills it and its supervisor starts it again, which resumes from the durable
    state. The run used to wait for ever (ingest) or exit 0 with trades missing (gateway).
    A stopped gateway holds the fills back for HANG_S, three hours of session at this pace:
    the models decide those bars without them, so their later trades may differ (as with a
    broker that answers late); every bar is decided and the books equal the account.

    A trader and the ingest stop at the default pace, so HANG_S ends inside the session. The
    gateway stops at the drills' pace, twice as fast: its hang outlasts the session, and the
    run used to end then with exit 0, the gateway never restarted, its intents never placed
    and positions held at the close unsaid. The run now waits for a gateway that has not
    reported since the last bar, so the watchdog restarts it, and it names what is held."""
    speed = SPEED if what == GATEWAY else DEFAULT_SPEED
    run = Run(copy_models(models_home, tmp_path), speed=speed)
    try:
        run.wait_trading(fills=10)
        run.kill(what, signal.SIGSTOP)
        out = run.finish()
    finally:
        run.close()
    _recovered(out, undisturbed, tmp_path, same_fills=what != GATEWAY)
    assert out.summary is not None
    hung = [c for c in out.summary["components"] if c["restarts"]]
    assert [c["kind"] for c in hung] == [what.split()[0].replace("trade", "trader")], hung
    assert any(f"{hung[0]['name']} hung (no sign of life for " in n for n in out.notes), out.notes
    models = out.summary["models"]
    held = [
        f"{m['key']} {m['final_position']} {m['symbol']}" for m in models if m["final_position"]
    ]
    said = [n for n in out.notes if n.startswith("positions held at the end of the session: ")]
    assert said == (
        [f"positions held at the end of the session: {', '.join(held)}"] if held else []
    )


def test_drill_gateway_hung_again_after_its_restart_makes_the_run_exit_1_saying_so(
    models_home: Path, tmp_path: Path
) -> None:
    """The gateway stops; the watchdog restarts it after HANG_S, when the session is over;
    the new one stops too before it says anything. The settle wait then runs out with the
    traders' last intents unread: the run must not exit 0. It says the gateway did not place
    every intent and has not reported since the last bar, and what is held at the end."""
    run = Run(copy_models(models_home, tmp_path))
    try:
        run.wait_trading(fills=10)
        first = run.kill(GATEWAY, signal.SIGSTOP)
        run.wait_for(lambda: any(p != first for p in run.pids(GATEWAY)), "a new gateway", 60)
        os.kill(next(p for p in run.pids(GATEWAY) if p != first), signal.SIGSTOP)
        out = run.finish()
    finally:
        run.close()
    assert out.code == 1, out.stderr
    assert out.component("gateway")["restarts"] == 1
    said = (
        "run incomplete: the gateway did not place every intent by the end (settle wait 15 s):"
        " no report from it since the session's last bar"
    )
    assert said in out.notes, out.notes
    assert any(ln.startswith("error: run failed: ") for ln in out.stderr.splitlines()), out.stderr
    assert out.summary is not None
    held = [m for m in out.summary["models"] if m["final_position"]]
    assert bool(held) == any(n.startswith("positions held at the end") for n in out.notes)
    assert_journals_whole(tmp_path)
    assert_bucket_equals_journals(tmp_path, out.summary)


def test_drill_trader_dying_past_its_budget_makes_the_run_exit_1_saying_what_was_lost(
    models_home: Path, tmp_path: Path
) -> None:
    """Killed at every start: after its two restarts the trader has failed for good, the
    rest of the session is decided by no one, and the run says so (exit 1)."""
    run = Run(copy_models(models_home, tmp_path))
    try:
        run.wait_trading()
        name = cmdline(run.pids(" trade ")[0])  # one model's trader, every time
        for restarts_left in (2, 1, 0):
            dead = run.kill(name)
            if restarts_left:
                run.wait_for(lambda d=dead: any(p != d for p in run.pids(name)), "a restart", 30)
        out = run.finish(timeout=120)
    finally:
        run.close()
    assert out.code == 1
    assert out.summary is not None
    failed = [c for c in out.summary["components"] if c["status"] == "failed"]
    assert [c["kind"] for c in failed] == ["trader"] and failed[0]["restarts"] == 2, failed
    lost = [n for n in out.notes if "run incomplete" in n]
    assert lost and "undecided" in lost[0], out.notes
    (line,) = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert line.startswith(f"error: run failed: {failed[0]['name']} failed (exit code -9)"), line
    assert_journals_whole(tmp_path)
    assert_bucket_equals_journals(tmp_path, out.summary)
