"""The process supervisor with real (tiny) child processes: restarts, ordered stop, SIGKILL
escalation, process-group cleanup, status and error counting."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from algostack.local.supervisor import (
    ChildSpec,
    Supervisor,
    count_errors,
    group_alive,
    last_error,
)
from algostack.testing.tiny_disk import FILLER, fill, tiny_disk

PY = sys.executable


async def _no_sleep(_s: float) -> None:
    await asyncio.sleep(0)


def _spec(name: str, code: str, tmp: Path, **kw: object) -> ChildSpec:
    return ChildSpec(name, "test", [PY, "-c", code], log_path=tmp / f"{name}.log", **kw)  # type: ignore[arg-type]


async def test_supervisor_child_exits_zero_status_ok(tmp_path: Path) -> None:
    sup = Supervisor(sleep=_no_sleep)
    await sup.start(_spec("done", "print('hello')", tmp_path))
    assert await sup.wait("done", 10) == 0
    (comp,) = sup.components()
    assert (comp.status, comp.exit_code, comp.restarts, comp.errors) == ("ok", 0, 0, 0)
    assert (tmp_path / "done.log").read_text().strip() == "hello"


async def test_supervisor_crashing_child_restarted_then_failed(tmp_path: Path) -> None:
    sup = Supervisor(sleep=_no_sleep)
    code = "import sys; print('Traceback (most recent call last): boom'); sys.exit(1)"
    await sup.start(_spec("crash", code, tmp_path, max_restarts=2))
    assert await sup.wait("crash", 20) == 1
    (comp,) = sup.components()
    assert comp.status == "failed" and comp.failed
    assert comp.restarts == 2
    assert comp.errors == 3  # one traceback line per start, appended across restarts
    assert len(sup.children["crash"].pgids) == 3


@pytest.mark.parametrize("code", [2, 3])
async def test_supervisor_leaves_failed_at_once_a_child_whose_exit_says_restarts_cannot_help(
    tmp_path: Path, code: int
) -> None:
    events: list[str] = []
    sup = Supervisor(sleep=_no_sleep, on_event=lambda _n, what: events.append(what))
    await sup.start(
        _spec("full", f"import sys; print('error: disk full'); sys.exit({code})", tmp_path)
    )
    assert await sup.wait("full", 20) == code
    (comp,) = sup.components()
    assert (comp.status, comp.restarts, len(sup.children["full"].pgids)) == ("failed", 0, 1)
    assert events[-1] == f"failed with exit code {code}, a restart cannot help"


async def test_supervisor_leaves_failed_at_once_a_child_whose_log_disk_is_full(
    tmp_path: Path,
) -> None:
    """A child that cannot write even its log dies with whatever code it could (its error
    line lost): restarting it into the full disk would fail the same way, so it is not."""
    events: list[str] = []
    sup = Supervisor(sleep=_no_sleep, on_event=lambda _n, what: events.append(what))
    with tiny_disk(tmp_path / "logs", "64k") as logs:
        await sup.start(_spec("mute", "import sys; sys.exit(1)", logs))
        fill(logs)
        assert await sup.wait("mute", 20) == 1
        (comp,) = sup.components()
        assert (comp.status, comp.restarts) == ("failed", 0)
        assert events[-1] == "failed with exit code 1, a restart cannot help"
        (logs / FILLER).unlink()  # room again: the same crash is restarted as before
        await sup.start(_spec("crash", "import sys; sys.exit(1)", logs, max_restarts=1))
        assert await sup.wait("crash", 20) == 1
        assert sup.components()[1].restarts == 1


async def test_supervisor_stop_escalates_to_sigkill_and_kills_grandchild(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    code = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"p = subprocess.Popen([{PY!r}, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    sup = Supervisor(stop_timeout_s=0.5, sleep=_no_sleep)
    child = await sup.start(_spec("stubborn", code, tmp_path))
    deadline = time.monotonic() + 10
    while not pidfile.exists() or not pidfile.read_text():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    grandchild = int(pidfile.read_text())
    t0 = time.monotonic()
    await sup.stop(["stubborn"])
    assert time.monotonic() - t0 < 5
    assert child.done.is_set()
    await asyncio.sleep(0.1)
    assert not group_alive(child.pgids[0])
    assert _gone(grandchild)
    (comp,) = sup.components()
    assert comp.status == "killed" and not comp.failed
    assert sup.survivors() == []


def _gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (absent, or a zombie waiting for its reaper)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] == b"Z"


async def test_supervisor_stop_all_orders_stages(tmp_path: Path) -> None:
    order: list[str] = []
    sup = Supervisor(stop_timeout_s=3, sleep=_no_sleep, on_event=lambda n, e: order.append(n))
    code = "import time; time.sleep(60)"
    for name in ("trader", "ingest", "dash"):
        await sup.start(_spec(name, code, tmp_path))
    order.clear()
    await sup.stop_all([["trader"], ["ingest"]])
    assert all(c.done.is_set() for c in sup.children.values())
    assert [c.status for c in sup.components()] == ["stopped"] * 3
    assert sup.survivors() == []
    # SIGTERM leaves quietly: no "did not stop in time" events
    assert order == []


async def test_supervisor_duplicate_name_refused(tmp_path: Path) -> None:
    sup = Supervisor(sleep=_no_sleep)
    await sup.start(_spec("one", "pass", tmp_path))
    with pytest.raises(ValueError, match="already supervised"):
        await sup.start(_spec("one", "pass", tmp_path))
    await sup.stop_all()


def test_count_errors_counts_error_lines_only(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text(
        '{"level":"INFO","msg":"fine"}\n'
        '{"level":"ERROR","msg":"order refused"}\n'
        '{"level":"WARNING","msg":"ERROR in text only"}\n'
        '{"level":"CRITICAL","msg":"dead"}\n'
    )
    assert count_errors(log) == 2
    assert count_errors(tmp_path / "missing.log") == 0
    assert count_errors(None) == 0


def test_last_error_is_one_line_from_the_last_error_record_or_traceback(tmp_path: Path) -> None:
    log = tmp_path / "trader.log"
    log.write_text(
        '{"level":"ERROR","msg":"first"}\n'
        '{"level":"INFO","msg":"fine"}\n'
        '{"level":"CRITICAL","msg":"journal write failed","exc":"Traceback (most recent call'
        ' last):\\n  File \\"x\\"\\nJournalWriteError: cannot write /h/t.csv: disk full"}\n'
        '{"level":"INFO","msg":"after"}\n'
    )
    assert last_error(log) == (
        "journal write failed: JournalWriteError: cannot write /h/t.csv: disk full"
    )
    crash = tmp_path / "crash.log"
    crash.write_text(
        "Traceback (most recent call last):\n"
        '  File "a.py", line 1, in <module>\n'
        "OSError: [Errno 28] No space left on device\n"
    )
    assert last_error(crash) == "OSError: [Errno 28] No space left on device"
    assert last_error(tmp_path / "missing.log") == ""
    ingest = tmp_path / "ingest.log"
    ingest.write_text(
        '{"level":"ERROR","msg":"JetStream refused a message","reason":"503 insufficient"}\n'
        "error: JetStream store full (insufficient resources) publishing to market.bars.A\n"
        '{"level":"ERROR","msg":"archive write failed","error":"cannot write part-1"}\n'
    )  # the command's verdict wins over what it logged while shutting down
    assert last_error(ingest) == (
        "JetStream store full (insufficient resources) publishing to market.bars.A"
    )
