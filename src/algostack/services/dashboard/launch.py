"""Start the dashboard as a ``streamlit run`` subprocess, safely by default.

Used by ``algostack dashboard`` and by the local session supervisor. The server binds to
loopback unless the caller explicitly allows a remote address; settings travel as environment
variables of the child only, and the Alpaca keys are removed from that environment because
the dashboard never needs them.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from algostack.core.backoff import Backoff, retry_sync
from algostack.errors import ConfigError, FatalError, RetryableError

APP_PATH = Path(__file__).with_name("app.py")
# Never handed to the dashboard: it trades nothing and must not be able to show a key.
STRIPPED_ENV = ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY")


@dataclass(frozen=True)
class DashboardLaunch:
    """Everything ``streamlit run`` needs. ``nats_password`` only reaches the child's env."""

    host: str = "127.0.0.1"
    port: int = 8501
    env: str = "local"
    nats_url: str | None = None
    nats_user: str | None = None
    nats_password: str | None = None
    bucket: str | None = None
    journals: str | None = None
    """A live journal root (``algostack run``: ``<home>/journals/<run id>``)."""
    allow_remote: bool = False
    refresh_s: float | None = None


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, port: int, *, allow_remote: bool) -> None:
    """Refuse a non-loopback address without ``allow_remote`` and ports out of range."""
    if not 1 <= port <= 65_535:
        raise ConfigError(f"invalid dashboard port {port}: use 1-65535")
    if not is_loopback(host) and not allow_remote:
        raise ConfigError(
            f"refusing to serve the dashboard on {host}: it binds to loopback by default. "
            "Pass --allow-remote (and set ALGOSTACK_DASHBOARD_PASSWORD) to expose it"
        )


def streamlit_argv(launch: DashboardLaunch) -> list[str]:
    """The ``python -m streamlit run`` command line (no secrets on it)."""
    check_bind(launch.host, launch.port, allow_remote=launch.allow_remote)
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_PATH),
        "--server.address",
        launch.host,
        "--server.port",
        str(launch.port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--client.toolbarMode",
        "minimal",
        "--global.developmentMode",
        "false",
    ]


def child_env(launch: DashboardLaunch, base: Mapping[str, str]) -> dict[str, str]:
    """The child's environment: ``base`` without Alpaca keys, plus the dashboard settings."""
    env = {k: v for k, v in base.items() if k not in STRIPPED_ENV}
    env["ALGOSTACK_ENV"] = launch.env
    for name, value in (
        ("ALGOSTACK_NATS_URL", launch.nats_url),
        ("ALGOSTACK_NATS_USER", launch.nats_user),
        ("ALGOSTACK_NATS_PASSWORD", launch.nats_password),
        ("ALGOSTACK_DASHBOARD_BUCKET", launch.bucket),
        ("ALGOSTACK_DASHBOARD_JOURNALS", launch.journals),
        (
            "ALGOSTACK_DASHBOARD_REFRESH_S",
            None if launch.refresh_s is None else str(launch.refresh_s),
        ),
    ):
        if value is not None:
            env[name] = value
    env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
    return env


def start(
    launch: DashboardLaunch,
    *,
    base_env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Spawn the Streamlit server; its output goes to ``log_path`` (or is inherited)."""
    argv = streamlit_argv(launch)
    env = child_env(launch, os.environ if base_env is None else base_env)
    if log_path is None:
        return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL)
    with log_path.open("ab") as out:
        return subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )


def wait_healthy(
    proc: subprocess.Popen[bytes],
    host: str,
    port: int,
    *,
    timeout_s: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Wait until Streamlit answers ``/_stcore/health``; raise when it exits or times out."""
    if host in ("0.0.0.0", "localhost", ""):  # noqa: S104 - probing, not binding
        host = "127.0.0.1"
    elif host == "::" or ":" in host:
        host = "[::1]" if host == "::" else f"[{host}]"
    url = f"http://{host}:{port}/_stcore/health"

    def probe() -> None:
        if proc.poll() is not None:
            raise FatalError(f"dashboard exited with code {proc.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=2.0) as resp:
                if resp.status == 200:
                    return
                why = f"HTTP {resp.status}"
        except (urllib.error.URLError, OSError) as exc:
            why = str(exc)
        raise RetryableError(why)

    every = Backoff(base=0.2, factor=1.0, cap=0.2, floor=0.2)
    try:
        retry_sync(probe, backoff=every, deadline_s=timeout_s, sleep=sleep, clock=clock)
    except RetryableError as exc:
        raise FatalError(f"dashboard not healthy at {url} after {timeout_s:.0f} s: {exc}") from None
