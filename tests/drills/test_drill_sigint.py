"""Ctrl-C in the middle of ``algostack run``: everything stops within seconds, nothing is left
running (traders, ingest, nats-server), and the journals are synced into the bucket."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from algostack.testing.proctree import alive, cmdline, descendants

DAY = "2024-03-15"


def test_run_sigint_mid_session_stops_all_and_syncs(tmp_path: Path) -> None:
    env = dict(os.environ, ALGOSTACK_HOME=str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-c", "from algostack.cli import main; main()", "run", "--day", DAY,
         "--speed", "300", "--no-progress", "--json", "--home", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )  # fmt: skip
    try:
        # wait until the session is trading: some trader has journaled a fill
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if any((tmp_path / "journals").glob(f"*/*/trades_{DAY}.csv")) and any(
                p.stat().st_size > 400
                for p in (tmp_path / "journals").glob(f"*/*/trades_{DAY}.csv")
            ):
                break
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            time.sleep(0.2)
        else:
            raise AssertionError("the session never traded")
        children = descendants(proc.pid)
        names = " ".join(cmdline(p) for p in children)
        assert "nats-server" in names and " trade " in names and " ingest " in names
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        stop_s = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err[-3000:]
    print(f"stopped in {stop_s:.2f} s")
    assert stop_s < 10, stop_s
    time.sleep(0.2)
    survivors = [p for p in children if alive(p)]
    assert not survivors, [(p, cmdline(p)) for p in survivors]

    summary = json.loads(out)
    assert summary["interrupted"] and summary["failed"]
    assert 0 < summary["bars"] < 2 * 390  # stopped mid-session
    synced = 0
    for m in summary["models"]:
        journal = next((tmp_path / "journals").glob(f"*/{m['key']}"))
        live = tmp_path / "bucket" / m["prefix"] / "live" / DAY
        assert (live / "live_trader.log").is_file() and (live / "manifest.json").is_file()
        local = journal / f"trades_{DAY}.csv"
        if local.exists():
            assert (live / f"trades_{DAY}.csv").read_bytes() == local.read_bytes()
            synced += 1
    assert synced >= 1
