"""Whether a host came up (:func:`wait_ready`): each unit restarted, active, not restarting,
and its health check passing; the Python services are ``Type=notify`` and send ``READY=1``
through :func:`notify_ready` (nats-server answers ``/healthz``), then keep systemd's watchdog
fed from their event loop (:func:`feed_watchdog`): a service that hangs is restarted."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from algostack.core.unit_state import UnitState


@dataclass(frozen=True)
class UnitFailure:
    """A unit that did not come up: its name and what was seen."""

    unit: str
    state: str


def judge(state: UnitState, restarts_before: int = 0) -> str | None:
    """``"ready"``, ``None`` (keep waiting) or the failure to report, from one observation.

    A unit that failed, is waiting to be restarted after a crash (``auto-restart``), was
    restarted by systemd since run.sh restarted it (``NRestarts`` above ``restarts_before``,
    read before the restart: systemd does not always reset it), or stopped, is a failure:
    systemd would go on restarting it, but run.sh must not report success.
    """
    if state.job:
        return None  # the (re)start has not run yet: earlier states mean nothing
    if state.active == "failed":
        return f"failed: {state}"
    if state.sub == "auto-restart" or state.restarts > restarts_before:
        return f"crashed and is restarting: {state}"
    if state.active in ("activating", "deactivating", "reloading"):
        return None
    if state.active == "active":
        return "ready"
    return f"not running: {state}"


def wait_ready(
    units: Sequence[str],
    show: Callable[[str], UnitState],
    checks: Mapping[str, str],
    probe: Callable[[str], bool],
    *,
    wait_s: float,
    restarts_before: Mapping[str, int] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    poll_s: float = 1.0,
) -> list[UnitFailure]:
    """Poll every unit until each is ready (active and its check answering) or one fails.

    Returns ``[]`` when all are ready; else the failures (a failure is final at once; the
    units still pending at ``wait_s`` are reported with their last state). ``show`` reads a
    unit's state (``systemctl show``), ``probe`` a check URL; ``restarts_before`` is each
    unit's ``NRestarts`` read before the restart.
    """
    deadline = clock() + wait_s
    pending = list(units)
    last: dict[str, str] = {}
    while True:
        failures: list[UnitFailure] = []
        for unit in list(pending):
            state = show(unit)
            verdict = judge(state, (restarts_before or {}).get(unit, 0))
            last[unit] = str(state)
            if verdict == "ready":
                url = checks.get(unit)
                if url is None or probe(url):
                    pending.remove(unit)
                else:
                    last[unit] = f"{state}, but {url} does not answer"
            elif verdict is not None:
                failures.append(UnitFailure(unit, verdict))
        if failures:
            return failures
        if not pending:
            return []
        if clock() >= deadline:
            return [
                UnitFailure(u, f"not ready after {wait_s:g} s: {last.get(u, 'unknown')}")
                for u in pending
            ]
        sleep(poll_s)


# -- the services' side of readiness -----------------------------------------------------------


WATCHDOG_PINGS_PER_PERIOD = 4
"""``WATCHDOG=1`` is sent four times per ``WatchdogSec``: a late ping or two is not a hang."""


def sd_notify(message: str, *, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``message`` to systemd (``$NOTIFY_SOCKET``); stdlib only. False (and nothing
    done) outside a unit that listens, or when the socket is gone: a notification is a signal
    to systemd, never a reason for a service to fail."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if not address or not (address.startswith("/") or address.startswith("@")):
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError:
        return False
    return True


def notify_ready(status: str = "", *, environ: Mapping[str, str] | None = None) -> bool:
    """Tell systemd the service is ready (``READY=1``); False outside a ``Type=notify`` unit."""
    return sd_notify("READY=1" + (f"\nSTATUS={status}" if status else ""), environ=environ)


def watchdog_period_s(environ: Mapping[str, str] | None = None) -> float | None:
    """systemd's ``WatchdogSec`` for this process, in seconds; None when nothing watches it
    (no unit, no ``WatchdogSec``, or the variables were inherited from another process)."""
    env = os.environ if environ is None else environ
    usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1e6


async def feed_watchdog(
    *,
    environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Send ``WATCHDOG=1`` while the event loop runs (until cancelled); return at once when
    systemd watches nothing. A loop that hangs stops the pings, and systemd aborts the unit
    (``WatchdogSec``, docs/operations.md) and restarts it."""
    period = watchdog_period_s(environ)
    if period is None:
        return
    while True:
        sd_notify("WATCHDOG=1", environ=environ)
        await sleep(period / WATCHDOG_PINGS_PER_PERIOD)
