"""What every drill needs: start ``algostack run`` as a user would, find its processes, hurt
them, and read what the run left behind (journals, bucket, summary).

Nothing of the project is patched: faults come from outside (signals to its processes, a
small tmpfs under its home), as a user or the kernel would cause them.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from algostack.testing.proctree import cmdline, descendants

DAY = "2024-03-15"  # a regular Friday session: 390 minutes, two symbols
DEFAULT_SPEED = "780"  # `algostack run`'s own pace: a session in ~30 s
SPEED = "1560"  # the drills' pace: a session in ~15 s, a fault still lands mid-session
ALGOSTACK = [sys.executable, "-c", "from algostack.cli import main; main()"]
TRADE_FIELDS = ("client_order_id", "side", "qty", "price", "ts_ns", "position_after")
"""What must be equal, fill by fill, between a disturbed run and the undisturbed one."""


def algostack(*args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run one ``algostack`` command to its end (bounded)."""
    return subprocess.run(
        [*ALGOSTACK, *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, ALGOSTACK_HOME=str(home)),
        timeout=timeout,
        check=False,
    )


@dataclass
class Outcome:
    """How a run ended."""

    code: int
    summary: dict[str, Any] | None
    stderr: str
    trades: dict[str, list[tuple[str, ...]]]
    """Every model's journaled fills (``journal_trades``)."""

    def error_lines(self) -> list[str]:
        """The stderr lines that report an error."""
        return [ln for ln in self.stderr.splitlines() if "error" in ln.lower()]

    @property
    def notes(self) -> list[str]:
        """The summary's notes (empty without a summary)."""
        return list(self.summary["notes"]) if self.summary else []

    def component(self, name: str) -> dict[str, Any]:
        """One component of the summary by name."""
        assert self.summary is not None
        return next(c for c in self.summary["components"] if c["name"] == name)


class Run:
    """One ``algostack run --json`` in the background on ``home``."""

    def __init__(self, home: Path, *args: str, models: Path | None = None, speed: str = SPEED):
        self.home = home
        argv = [*ALGOSTACK, "run", "--day", DAY, "--speed", speed, "--no-progress", "--json"]
        argv += ["--home", str(home), *args]
        if models is not None:
            argv += ["--models", str(models)]
        self.proc = subprocess.Popen(
            argv,
            env=dict(os.environ, ALGOSTACK_HOME=str(home)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_as_at_a_terminal,
        )

    def pids(self, what: str) -> list[int]:
        """Live processes of this run whose command line holds ``what`` (e.g. ``nats-server``,
        `` trade ``, `` ingest ``), oldest first."""
        return sorted(p for p in descendants(self.proc.pid) if what in cmdline(p))

    def wait_for(self, cond: Callable[[], bool], what: str, timeout: float = 90) -> None:
        """Poll ``cond`` until it holds; fail naming ``what`` when the run ends or time is up."""
        deadline = time.monotonic() + timeout
        while not cond():
            if self.proc.poll() is not None:
                raise AssertionError(f"the run ended before {what}: {self.proc.stderr.read()}")  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} after {timeout:.0f} s")
            time.sleep(0.05)

    def fills(self) -> int:
        """Fills journaled so far, over every model."""
        total = 0
        for path in (self.home / "journals").glob(f"*/*/trades_{DAY}.csv"):
            with contextlib.suppress(OSError):
                total += max(0, path.read_bytes().count(b"\n") - 1)
        return total

    def wait_trading(self, fills: int = 5) -> None:
        """Until the session has journaled ``fills`` fills (it is mid-session then)."""
        self.wait_for(lambda: self.fills() >= fills, f"{fills} fills journaled")

    def kill(self, what: str, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to the run's first process matching ``what``; its pid."""
        self.wait_for(lambda: bool(self.pids(what)), f"a process matching {what!r}")
        pid = self.pids(what)[0]
        os.kill(pid, sig)
        return pid

    def finish(self, timeout: float = 150) -> Outcome:
        """Wait for the run to end by itself (bounded: a hang fails the drill)."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise AssertionError(f"the run did not end within {timeout:.0f} s: it hangs") from None
        summary = json.loads(out) if out.strip() else None
        return Outcome(self.proc.returncode, summary, err, journal_trades(self.home))

    def close(self) -> None:
        """Kill the run and everything it started (a drill's teardown)."""
        kids = descendants(self.proc.pid)
        for pid in [self.proc.pid, *kids]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.communicate(timeout=10)


def _as_at_a_terminal() -> None:  # runs in the child before exec
    """SIGINT as a user's terminal delivers it: a test run started in the background (nohup,
    ``make test &``) hands its children SIGINT ignored, and a Ctrl-C drill would then be sent
    to a run that never hears it until its own handler is installed."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def copy_models(models_home: Path, home: Path) -> Path:
    """A new home holding the demo models (no training in the drill)."""
    shutil.copytree(models_home / "models", home / "models")
    return home


def journal_trades(home: Path) -> dict[str, list[tuple[str, ...]]]:
    """Every model's journaled fills: model key -> rows of ``TRADE_FIELDS``."""
    out: dict[str, list[tuple[str, ...]]] = {}
    for path in sorted((home / "journals").glob(f"*/*/trades_{DAY}.csv")):
        with path.open(newline="") as fh:
            out[path.parent.name] = [tuple(r[f] for f in TRADE_FIELDS) for r in csv.DictReader(fh)]
    return out


def assert_journals_whole(home: Path) -> None:
    """No journal line is partial: every file ends with a newline and every CSV row has the
    header's number of fields."""
    for path in (home / "journals").rglob("*"):
        if path.name.startswith(".") or path.suffix not in (".csv", ".log", ".jsonl"):
            continue  # state files are replaced whole, not appended
        if path.stat().st_size == 0:
            continue
        data = path.read_bytes()
        assert data.endswith(b"\n"), f"{path} ends in a partial line: {data[-80:]!r}"
        if path.suffix == ".csv":
            rows = list(csv.reader(data.decode().splitlines()))
            width = len(rows[0])
            bad = [r for r in rows if len(r) != width]
            assert not bad, f"{path}: rows of the wrong width {bad[:2]}"


def assert_bucket_equals_journals(home: Path, summary: dict[str, Any]) -> None:
    """Every journaled trades file is in the bucket, byte for byte."""
    for m in summary["models"]:
        for journal in (home / "journals").glob(f"*/{m['key']}/trades_{DAY}.csv"):
            synced = home / "bucket" / m["prefix"] / "live" / DAY / journal.name
            assert synced.is_file(), f"{journal} was not synced to {synced}"
            assert synced.read_bytes() == journal.read_bytes(), f"{synced} differs from {journal}"


def temp_files(root: Path) -> list[Path]:
    """Temporary files left anywhere under ``root`` (JetStream's own store excluded)."""
    return [
        p
        for p in root.rglob("*")
        if p.is_file() and ".tmp" in p.name and "nats" not in p.relative_to(root).parts
    ]
