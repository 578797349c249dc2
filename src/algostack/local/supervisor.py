"""Supervise child processes: each in its own process group, restarted on failure, stopped
in order, never left behind; a child found hung (``kill_hung``: the caller judges its signs of
life) is killed and restarted like one that crashed.

Every child starts in a new session (so its process group holds it and anything it spawns,
e.g. the dashboard's Streamlit server) and gets ``SIGTERM`` if the supervisor dies
(``PR_SET_PDEATHSIG`` on Linux). ``stop`` sends ``SIGTERM`` to whole groups, waits a bounded
time, then ``SIGKILL``s what is left. ``kill_all`` (registered with ``atexit``) is the last
line of defence. A child that exits unexpectedly is restarted up to ``max_restarts`` times,
unless its exit code says a restart cannot help (``ChildSpec.final_codes``: bad input, or a
full disk or store, as ``errors.service_exit_code`` maps them; systemd units say the same with
``RestartPreventExitStatus``), or its log sits on a full disk: a child that cannot write even
its log exits with whatever code it could (its error line is lost), and would again.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from algostack.errors import EXIT_BAD_INPUT, EXIT_NO_RESTART
from algostack.local.summary import ComponentSummary

log = logging.getLogger("algostack.local.supervisor")

STOPPED_CODES = frozenset({0, -signal.SIGTERM, 128 + signal.SIGTERM, -signal.SIGINT, 130})
"""Exit codes that mean "stopped as asked" when we sent the signal."""
FINAL_CODES = frozenset({EXIT_BAD_INPUT, EXIT_NO_RESTART})
"""Bad input, or a full disk or store: the same failure again after every restart."""
_ERROR_MARKERS = (b'"level":"ERROR"', b'"level":"CRITICAL"', b"Traceback (most recent call")


def no_room_for(path: Path | None) -> bool:
    """Whether the disk that holds ``path`` (a child's log) has no byte left for it."""
    if path is None:
        return False
    try:
        return os.statvfs(path.parent).f_bavail == 0
    except OSError:
        return False


@dataclass(frozen=True)
class ChildSpec:
    """How to run one component."""

    name: str
    kind: str
    """``ingest``, ``trader``, ``dashboard``, ... (groups the summary)."""
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    log_path: Path | None = None
    """stdout and stderr go here (appended across restarts); ``None``: discarded."""
    max_restarts: int = 2
    restart_on_success: bool = False
    """Restart even after exit code 0 (for components that should never end on their own)."""
    final_codes: frozenset[int] = FINAL_CODES
    """Exit codes that leave the component failed at once: a restart cannot help."""


@dataclass
class Child:
    """The runtime state of one supervised component."""

    spec: ChildSpec
    proc: asyncio.subprocess.Process | None = None
    pgids: list[int] = field(default_factory=list)
    """Every process group this component ever had (one per start)."""
    restarts: int = 0
    exit_codes: list[int] = field(default_factory=list)
    stopping: bool = False
    finished: bool = False
    """Ended by itself with exit code 0 (before any stop)."""
    failed: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    started_at: float = 0.0
    hangs: int = 0
    """Times it was found hung and killed (each then restarted as after a crash)."""
    failed_at: float = float("inf")
    """When it failed for good (monotonic): the first to fail is the likely cause."""

    @property
    def exit_code(self) -> int | None:
        """The last exit code (``None`` while running or never started)."""
        return self.exit_codes[-1] if self.exit_codes and self.done.is_set() else None

    @property
    def running(self) -> bool:
        """True while the current process has not exited."""
        return self.proc is not None and self.proc.returncode is None


def _pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def group_alive(pgid: int) -> bool:
    """True when any process of group ``pgid`` still exists (zombies excluded)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - the group was reused by someone else
        return False
    # killpg(0) succeeds for zombies too: look for a live member
    for entry in os.scandir("/proc") if os.path.isdir("/proc") else ():
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        rest = stat[stat.rfind(b")") + 2 :].split()
        if len(rest) > 2 and int(rest[2]) == pgid and rest[0] != b"Z":
            return True
    return not os.path.isdir("/proc")


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def count_errors(path: Path | None) -> int:
    """Lines of a child's log that report an error (JSON ERROR/CRITICAL, tracebacks)."""
    if path is None or not path.exists():
        return 0
    n = 0
    with path.open("rb") as fh:
        for line in fh:
            if any(m in line for m in _ERROR_MARKERS):
                n += 1
    return n


def last_error(path: Path) -> str:
    """Why a child failed, on one line, from its log: the command's own last ``error: ...``
    line (the error it exited for) or else the last error record (a JSON record's ``msg``
    with its ``error``, ``reason`` or exception; a traceback's last line); "" when none."""
    import orjson

    found = verdict = ""
    try:
        with path.open("rb") as fh:
            for raw in fh:
                line = raw.strip()
                if line.startswith(b"{") and any(m in line for m in _ERROR_MARKERS[:2]):
                    try:
                        rec = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        continue
                    exc_lines = str(rec.get("exc") or "").strip().splitlines()
                    extra = (
                        rec.get("error")
                        or rec.get("reason")
                        or (exc_lines[-1] if exc_lines else "")
                    )
                    found = str(rec.get("msg", "")) + (f": {extra}" if extra else "")
                elif line[:6].lower() == b"error:":  # the command's own verdict: the cause
                    verdict = line[6:].strip().decode(errors="replace")
                elif raw[:1].isalpha() and not line.startswith(b"Traceback") and b"Error" in line:
                    found = line.decode(errors="replace")  # a traceback's last line
    except OSError:
        return ""
    return " ".join((verdict or found).split())[:600]


class Supervisor:
    """Start, watch, restart and stop child processes (see the module docstring)."""

    def __init__(
        self,
        *,
        stop_timeout_s: float = 3.0,
        restart_delay_s: float = 0.5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_event: Callable[[str, str], None] | None = None,
    ) -> None:
        self.stop_timeout_s = stop_timeout_s
        self.restart_delay_s = restart_delay_s
        self.children: dict[str, Child] = {}
        self._sleep = sleep
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._on_event = on_event
        atexit.register(self.kill_all)

    def _event(self, name: str, what: str) -> None:
        log.info("%s: %s", name, what, extra={"fields": {"component": name, "event": what}})
        if self._on_event is not None:
            self._on_event(name, what)

    async def _spawn(self, child: Child) -> None:
        spec = child.spec
        out = spec.log_path.open("ab") if spec.log_path is not None else None
        try:
            env = dict(os.environ if spec.env is None else spec.env)
            proc = await asyncio.create_subprocess_exec(
                *spec.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out if out is not None else asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=_pdeathsig if sys.platform.startswith("linux") else None,
            )
        finally:
            if out is not None:
                out.close()
        child.proc = proc
        child.pgids.append(proc.pid)
        child.started_at = time.monotonic()
        self._event(spec.name, f"started pid {proc.pid}")

    async def start(self, spec: ChildSpec) -> Child:
        """Start ``spec`` and watch it; names are unique."""
        if spec.name in self.children:
            raise ValueError(f"a component named {spec.name!r} is already supervised")
        if spec.log_path is not None:
            spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        child = Child(spec)
        self.children[spec.name] = child
        await self._spawn(child)
        self._watchers[spec.name] = asyncio.create_task(self._watch(child))
        return child

    async def _watch(self, child: Child) -> None:
        spec = child.spec
        while True:
            assert child.proc is not None
            rc = await child.proc.wait()
            child.exit_codes.append(rc)
            if child.stopping:
                break
            if rc == 0 and not spec.restart_on_success:
                child.finished = True
                self._event(spec.name, "finished")
                break
            final = rc in spec.final_codes or no_room_for(spec.log_path)
            if final or child.restarts >= spec.max_restarts:
                child.failed, child.failed_at = True, time.monotonic()
                why = "a restart cannot help" if final else "no restarts left"
                self._event(spec.name, f"failed with exit code {rc}, {why}")
                break
            child.restarts += 1
            self._event(spec.name, f"exited with {rc}; restart {child.restarts}")
            await self._sleep(self.restart_delay_s * child.restarts)
            if child.stopping:
                break
            try:
                await self._spawn(child)
            except OSError as exc:
                child.failed, child.failed_at = True, time.monotonic()
                self._event(spec.name, f"cannot restart: {exc}")
                break
        child.done.set()

    def kill_hung(self, name: str, why: str) -> bool:
        """SIGKILL the running process of ``name``, found hung (alive but giving no sign of
        life: ``why``); its watcher then restarts it as after a crash, within the same
        budget. False when it is not running or being stopped."""
        child = self.children.get(name)
        if child is None or child.stopping or not child.running:
            return False
        child.hangs += 1
        self._event(name, f"hung ({why}): SIGKILL")
        _signal_group(child.pgids[-1], signal.SIGKILL)
        return True

    async def wait(self, name: str, timeout_s: float | None = None) -> int | None:
        """Wait until ``name`` is done (finished, failed or stopped); its last exit code."""
        child = self.children[name]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(child.done.wait(), timeout_s)
        return child.exit_code

    async def stop(self, names: Iterable[str], timeout_s: float | None = None) -> None:
        """SIGTERM the groups of ``names``, wait up to ``timeout_s``, SIGKILL the rest."""
        timeout = self.stop_timeout_s if timeout_s is None else timeout_s
        chosen = [self.children[n] for n in names if n in self.children]
        for c in chosen:
            c.stopping = True
            for pgid in c.pgids:
                _signal_group(pgid, signal.SIGTERM)
        waits = [c.done.wait() for c in chosen if not c.done.is_set()]
        if waits:
            _done, pending = await asyncio.wait(
                [asyncio.ensure_future(w) for w in waits], timeout=timeout
            )
            for p in pending:
                p.cancel()
        for c in chosen:
            # the group may outlive its leader (a grandchild): kill whatever is left
            for pgid in c.pgids:
                if not c.done.is_set() or group_alive(pgid):
                    self._event(c.spec.name, "did not stop in time: SIGKILL")
                    _signal_group(pgid, signal.SIGKILL)
        left = [c.done.wait() for c in chosen if not c.done.is_set()]
        if left:
            await asyncio.wait([asyncio.ensure_future(w) for w in left], timeout=timeout)

    async def stop_all(self, order: Sequence[Sequence[str]] = ()) -> None:
        """Stop components stage by stage (``order``), then anything not named."""
        named: set[str] = set()
        for stage in order:
            await self.stop(stage)
            named.update(stage)
        rest = [n for n in self.children if n not in named]
        if rest:
            await self.stop(rest)
        for task in self._watchers.values():
            if not task.done():
                task.cancel()

    def kill_all(self) -> None:
        """SIGKILL every group still alive (sync; safe at interpreter exit)."""
        for c in self.children.values():
            for pgid in c.pgids:
                _signal_group(pgid, signal.SIGKILL)

    def failed_at(self, name: str) -> float:
        """When ``name`` failed for good (``inf`` when it did not, or is not ours)."""
        child = self.children.get(name)
        return child.failed_at if child is not None else float("inf")

    def survivors(self) -> list[int]:
        """Process groups of ours that still have a live process."""
        return [pgid for c in self.children.values() for pgid in c.pgids if group_alive(pgid)]

    def components(self) -> list[ComponentSummary]:
        """Per component: status, last exit code, restarts and error lines in its log."""
        out = []
        for c in self.children.values():
            if c.failed:
                status = "failed"
            elif c.finished:
                status = "ok"
            elif c.stopping:
                rc = c.exit_codes[-1] if c.exit_codes else None
                if rc is None or rc in STOPPED_CODES:
                    status = "stopped"
                elif rc == -signal.SIGKILL:
                    status = "killed"  # ignored SIGTERM for stop_timeout_s: reported, not fatal
                else:
                    status = "failed"
            elif c.done.is_set():
                status = "ok" if c.exit_code == 0 else "failed"
            else:
                status = "running"
            out.append(
                ComponentSummary(
                    name=c.spec.name,
                    kind=c.spec.kind,
                    status=status,
                    exit_code=c.exit_codes[-1] if c.exit_codes else None,
                    restarts=c.restarts,
                    errors=count_errors(c.spec.log_path),
                    log=str(c.spec.log_path or ""),
                )
            )
        return out
