"""``algostack run``: the whole desk on one machine, start to summary.

Order of events: demo models (first run) -> embedded nats-server and fresh ``MARKET`` and
``ORDERS`` streams -> the execution gateway (the simulated account, or Alpaca paper with
``--source alpaca``: the only process given the Alpaca keys) -> one trader process per model
(or one ``--packed`` process), each sending its orders through the gateway -> wait until
each has bound its consumer (first heartbeat) -> the ingest process (synthetic, replay or
Alpaca) ->
progress until the source ends -> wait until every trader has decided the last bar of its
symbol -> stop traders, ingest, dashboard (SIGTERM, bounded wait, SIGKILL) -> final sync of
every journal into the local bucket -> stop NATS -> summary and report.

SIGINT/SIGTERM at any point jumps to the stop sequence (a second one kills at once); the
journals are still synced and the summary says the run was interrupted.

Every component is watched until the stop, nats-server included: one that dies is restarted
(within its budget), and one that lives but gives no sign of life (``HANG_S``: a trader's
heartbeat, the gateway's status, the ingest's bars at the run's pace, nats-server's answer to
a ping) is hung: killed, then restarted as if it had died. So no component can hold the run
for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from algostack.core.naming import ModelSpec
from algostack.errors import EXIT_FAILED, ConfigError
from algostack.local.collector import Collector
from algostack.local.session import RunConfig, SourceKind
from algostack.local.summary import (
    ComponentSummary,
    ModelCurve,
    ModelSummary,
    RunSummary,
    summarize_model,
)
from algostack.local.supervisor import ChildSpec, Supervisor, last_error, no_room_for

log = logging.getLogger("algostack.local.desk")

READY_TIMEOUT_S = 30.0
"""How long traders may take to load their models and bind their consumers."""
SETTLE_S = 0.3
"""After the last bar: how long the gateway must have sent no report before traders stop."""
EXIT_INTERRUPTED = 130
NATS_MAX_RESTARTS = 2
"""How often a dead nats-server is started again before the run gives up (each restart keeps
its port, store and credentials: clients reconnect and resume from the durable state)."""
NATS_POLL_S = 0.2
HANG_S = 15.0
"""A running component silent this long is hung: three of a trader's heartbeats (every 5 s),
fifteen of the gateway's statuses (every 1 s), the ingest's bars (or three bar intervals at
the run's pace, if longer). Before its first sign of life a component has ``READY_TIMEOUT_S``
(loading models, restoring state). Nothing is judged while nats-server does not answer."""
NATS_PING_S = 1.0
"""How often the run pings nats-server (a flush round trip)."""
NATS_HUNG_PINGS = 3
"""Pings in a row that nats-server leaves unanswered (``NATS_PING_S`` + 2 s each) before it
is killed and restarted as if it had died."""


def algostack_argv(*args: str) -> list[str]:
    """The command line that runs ``algostack <args>`` with this interpreter."""
    return [sys.executable, "-c", "from algostack.cli import main; main()", *args]


@dataclass
class DeskResult:
    """What a run produced."""

    summary: RunSummary
    curves: list[ModelCurve]
    prices: dict[str, list[tuple[int, float, float]]]
    exit_code: int
    survivors: list[int] = field(default_factory=list)


def _mute_log(path: Path) -> str:
    """Why a failed component's log says nothing, when its disk is full (else "")."""
    full = no_room_for(path)
    return f"its log could not say why: no space left on device for {path}" if full else ""


class LocalDesk:
    """One local trading session (see the module docstring); ``await run()`` once."""

    def __init__(
        self,
        cfg: RunConfig,
        specs: list[ModelSpec],
        *,
        nats_password: str | None = None,
        on_progress: Callable[[LocalDesk], None] | None = None,
        base_env: dict[str, str] | None = None,
    ) -> None:
        if not specs:
            raise ConfigError("no models to trade")
        self.cfg = cfg
        self.specs = specs
        self.symbols = sorted({s.symbol for s in specs})
        self.collector = Collector(cfg.env)
        self.supervisor = Supervisor(stop_timeout_s=cfg.stop_timeout_s)
        self.stop_requested = asyncio.Event()
        self.interrupted = False
        self.incomplete = False
        """Set when a trader did not decide every bar, or booked fewer fills than reported:
        the run exits 1 (the notes say which models)."""
        self.abort_reason: str | None = None
        """Why the run stopped itself (a component it cannot do without is gone): exit 1."""
        self.nats_restarts = 0
        self.nats_exit_codes: list[int] = []
        self.nats_failed = False
        self.nats_error: str | None = None
        """The last error nats-server logged (a store that cannot write says why here)."""
        self.started = time.monotonic()
        self.phase = "starting"
        self._on_progress = on_progress
        self._nats_password = nats_password
        self._base_env = dict(os.environ if base_env is None else base_env)
        self._signals = 0
        self.trader_names: list[str] = []
        self.nats_url = ""
        self.hang_notes: list[str] = []
        """One note per component found hung and killed (it was restarted, or failed)."""
        self._caught_up_at = 0.0
        """Monotonic time the traders had all decided the last bar (the settle wait starts)."""
        self._bus: Any = None
        self._nats_up_since = 0.0
        """Monotonic time since when nats-server answers every ping (0: it does not now)."""

    # -- signals -------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop the run (first signal: orderly; second: kill everything now)."""
        self._signals += 1
        self.interrupted = True
        if self._signals > 1:
            self.supervisor.kill_all()
        self.stop_requested.set()

    def abort(self, reason: str) -> None:
        """Stop the run because it cannot go on (not a user's signal): the stop sequence
        runs, the journals are synced, and the run exits 1 with ``reason``."""
        if self.abort_reason is None:
            self.abort_reason = reason
            log.error("run aborted: %s", reason)
        self.stop_requested.set()

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)

    def _defer_signals(self) -> None:
        """From here to the end of the process a signal is noted, not obeyed: the bars, the
        summary and the report are written whatever comes (the exit code says interrupted)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
            signal.signal(sig, self._note_signal)

    def _note_signal(self, signum: int, frame: object) -> None:
        del signum, frame
        self.interrupted = True

    # -- children ------------------------------------------------------------------------------

    def _child_env(self, user: str, password: str) -> dict[str, str]:
        env = dict(self._base_env)
        env.update(
            {
                "ALGOSTACK_ENV": self.cfg.env,
                "ALGOSTACK_HOME": str(self.cfg.paths.home),
                "ALGOSTACK_NATS_URL": self.nats_url,
                "ALGOSTACK_NATS_USER": user,
                "ALGOSTACK_NATS_PASSWORD": password,
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def trader_specs(self, env: dict[str, str]) -> list[ChildSpec]:
        """One trader process per model, or one for all with ``packed``."""
        cfg = self.cfg
        from algostack.services.dashboard.launch import STRIPPED_ENV

        groups = [self.specs] if cfg.packed else [[s] for s in self.specs]
        env = {k: v for k, v in env.items() if k not in STRIPPED_ENV}  # keys: gateway only
        out = []
        for group in groups:
            name = "trader:packed" if cfg.packed else f"trader:{group[0].key}"
            argv = algostack_argv(
                "trade",
                "--bucket",
                str(cfg.paths.store),
                "--journal-dir",
                str(cfg.paths.journals),
                "--models",
                ",".join(s.prefix for s in group),
                "--nats-url",
                self.nats_url,
                "--broker",
                "gateway",
                "--env",
                cfg.env,
                "--archive",  # models whose features run across sessions warm up from it
                str(cfg.paths.bucket),
                "--day",
                cfg.day_text,
            )
            log_name = name.replace(":", "-") + ".log"
            out.append(
                ChildSpec(name, "trader", argv, env, cfg.paths.logs / log_name, max_restarts=2)
            )
        return out

    def gateway_spec(self, env: dict[str, str]) -> ChildSpec:
        """The execution gateway: every trader's orders go through it to the account."""
        cfg = self.cfg
        broker = "alpaca" if cfg.source is SourceKind.ALPACA else "sim"
        argv = algostack_argv(
            "gateway",
            "--state-dir",
            str(cfg.paths.run_dir / "gateway"),
            "--broker",
            broker,
            "--nats-url",
            self.nats_url,
            "--env",
            cfg.env,
            "--slippage-bps",
            repr(cfg.slippage_bps),
        )
        return ChildSpec(
            "gateway", "gateway", argv, env, cfg.paths.logs / "gateway.log", max_restarts=2
        )

    def ingest_spec(self, env: dict[str, str]) -> ChildSpec:
        """The market-data process for the configured source."""
        cfg = self.cfg
        args = ["ingest", "--source", cfg.source.value, "--nats-url", self.nats_url]
        args += ["--symbols", ",".join(self.symbols), "--log-every", "5"]
        if cfg.source is not SourceKind.ALPACA:
            args += ["--speed", "max" if cfg.speed is None else repr(cfg.speed)]
        if cfg.source is SourceKind.SYNTHETIC:
            args += ["--day", cfg.day_text, "--seed", str(cfg.seed)]
        if cfg.source is SourceKind.REPLAY:
            args += ["--replay-file", str(cfg.replay_file)]
        args += ["--archive", str(cfg.paths.bucket)]  # market/ beside the models' live/
        # A restarted ingest resumes after the stream's last event (MarketSource.resume_after).
        return ChildSpec(
            "ingest", "ingest", algostack_argv(*args), env, cfg.paths.logs / "ingest.log"
        )

    def dashboard_spec(self, env: dict[str, str]) -> ChildSpec:
        """The Streamlit dashboard on loopback, reading this run's NATS, models and journals.

        Models come from the run's model store (its ``models/`` artifacts: a trader that never
        speaks shows SILENT); trades from the run's journal root, read while the traders write
        it, so trades made before a browser first opened the page are shown too. The
        dashboard never gets the Alpaca keys.
        """
        from algostack.services.dashboard.launch import STRIPPED_ENV

        cfg = self.cfg
        argv = algostack_argv(
            "dashboard",
            "--port",
            str(cfg.dashboard_port),
            "--nats-url",
            self.nats_url,
            "--bucket",
            str(cfg.paths.store),
            "--journals",
            str(cfg.paths.journals),
            "--env",
            cfg.env,
        )
        dash_env = {k: v for k, v in env.items() if k not in STRIPPED_ENV}
        # an accelerated session trades in seconds what a day trades in minutes
        dash_env.setdefault("ALGOSTACK_DASHBOARD_JOURNAL_EVERY_S", "2")
        return ChildSpec(
            "dashboard",
            "dashboard",
            argv,
            dash_env,
            cfg.paths.logs / "dashboard.log",
            max_restarts=1,
        )

    # -- waiting -------------------------------------------------------------------------------

    async def _until(self, cond: Callable[[], bool], timeout_s: float, poll_s: float = 0.1) -> bool:
        """Poll ``cond`` until true, a stop request or the timeout; True when ``cond`` held."""
        deadline = time.monotonic() + timeout_s
        while not cond():
            if self.stop_requested.is_set() or time.monotonic() > deadline:
                return cond()
            self._tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_requested.wait(), poll_s)
        return True

    def _tick(self) -> None:
        if self._on_progress is not None:
            self._on_progress(self)

    def traders_alive(self) -> bool:
        """True while any trader is running or restarting."""
        kids = self.supervisor.children
        return any(not kids[n].done.is_set() for n in self.trader_names if n in kids)

    def _ready(self) -> bool:
        views = self.collector.models
        ready = all(s.key in views and views[s.key].heartbeat_at > 0 for s in self.specs)
        return ready or not self.traders_alive()

    def _trader_of(self, key: str) -> str:
        return "trader:packed" if self.cfg.packed else f"trader:{key}"

    def _failed_for_good(self, key: str) -> bool:
        child = self.supervisor.children.get(self._trader_of(key))
        return child is not None and child.failed

    def _caught_up(self) -> bool:
        col = self.collector
        done = all(
            col.caught_up(s.key, s.symbol) or self._failed_for_good(s.key) for s in self.specs
        )
        return done or not self.traders_alive()

    def _lost(self, spec: ModelSpec) -> str:
        """What model ``spec`` left undone: its bars not decided, the position it holds."""
        col = self.collector
        bars = len(col.prices.get(spec.symbol, ()))
        view = col.models.get(spec.key)
        decided = len(view.decided) if view is not None else 0
        held = view.position if view is not None else 0
        text = f"{spec.key}: {max(0, bars - decided)} of {bars} bar(s) undecided"
        return text + (f", {held} shares of {spec.symbol} left held" if held else "")

    def _settled(self) -> bool:
        """Every fill the gateway reported is booked, and it has been quiet for a moment; the
        gateway has reported since the traders caught up, every intent in a venue order (a
        gateway hung at the end of the session is silent, not settled: the watchdog then
        restarts it, and it places what it held)."""
        col = self.collector
        done = all(col.settled(s.key) for s in self.specs) and col.quiet_for() >= SETTLE_S
        if done and "gateway" in self.supervisor.children:
            desk = col.desk
            done = desk is not None and col.desk_at >= self._caught_up_at and not desk.unplaced
        return done or not self.traders_alive()

    # -- nats-server ---------------------------------------------------------------------------

    async def _supervise_nats(self, server: Any) -> None:
        """Restart a nats-server that died (same port, store and credentials), up to
        ``NATS_MAX_RESTARTS`` times; past that, abort the run. One that answers no ping
        ``NATS_HUNG_PINGS`` times in a row is killed first (hung, e.g. stopped)."""
        from algostack.adapters.nats.server import NatsServerError

        unanswered, pinged = 0.0, 0.0
        while True:
            await asyncio.sleep(NATS_POLL_S)
            if server.running:
                if self._bus is None or time.monotonic() - pinged < NATS_PING_S:
                    continue
                pinged = time.monotonic()
                answer = await self._nats_answers()
                if answer:
                    unanswered = 0
                    continue
                # unanswered on a live connection counts 1; no connection (the client still
                # reconnecting, as after every restart) counts a fifth, so only ~15 s of it does
                unanswered += 1 if answer is None else 0.2
                if unanswered < NATS_HUNG_PINGS:
                    continue
                unanswered = 0
                why = f"nats-server answered none of {NATS_HUNG_PINGS} pings"
                log.warning("%s: hung, killed to be restarted", why)
                self.hang_notes.append(f"{why}: hung, killed and restarted")
                server.kill()
            rc = server.returncode
            self.nats_exit_codes.append(rc if rc is not None else -1)
            if self.nats_restarts >= NATS_MAX_RESTARTS:
                self.nats_failed = True
                self.abort(
                    f"nats-server died {len(self.nats_exit_codes)} times (last exit code {rc}); "
                    f"restart budget of {NATS_MAX_RESTARTS} spent"
                )
                return
            self.nats_restarts += 1
            log.warning(
                "nats-server exited with %s; restart %d of %d",
                rc,
                self.nats_restarts,
                NATS_MAX_RESTARTS,
            )
            try:
                server.restart()  # on the loop's thread: PR_SET_PDEATHSIG follows the forker
            except NatsServerError as exc:
                self.nats_failed = True
                self.abort(f"nats-server died (exit code {rc}) and could not restart: {exc}")
                return

    async def _nats_answers(self) -> bool | None:
        """One ping (a flush round trip) of the run's own connection: True answered, None
        not answered on a live connection, False no connection (reconnecting); keeps
        ``_nats_up_since``."""
        bus = self._bus
        ok: bool | None = False
        if bus.connected:  # a restarted server: the client reconnects by itself first
            try:
                await bus.flush(timeout_s=2.0)
                ok = True
            except Exception:  # a timeout, or the connection lost meanwhile
                ok = None
        if not ok:
            self._nats_up_since = 0.0
        elif not self._nats_up_since:
            self._nats_up_since = time.monotonic()
        return ok

    def _signs_of_life(self) -> list[tuple[str, float, float]]:
        """(component, when it last gave a sign of life, how long it may be silent) for each
        component judged in the current phase."""
        col, kids = self.collector, self.supervisor.children
        out = []
        for name in self.trader_names:
            keys = [s.key for s in self.specs] if name == "trader:packed" else [name[7:]]
            beats = [col.models[k].heartbeat_at for k in keys if k in col.models]
            out.append((name, max(beats, default=0.0), HANG_S))
        out.append(("gateway", col.desk_at, HANG_S))
        cfg = self.cfg
        if self.phase == "trading" and cfg.source is not SourceKind.ALPACA and "ingest" in kids:
            pace = 0.0 if cfg.speed is None else 3 * 60.0 / cfg.speed  # three bar intervals
            out.append(("ingest", col.market_at, max(HANG_S, pace)))
        return out

    async def _watch_hung(self) -> None:
        """Kill a component that lives but gives no sign of life (``HANG_S``), so its
        supervisor restarts it as after a crash; only while nats-server answers."""
        while self.phase in ("loading models", "trading", "catching up"):
            await asyncio.sleep(1.0)
            now, up = time.monotonic(), self._nats_up_since
            if not up:
                continue  # silence says nothing while the bus is down
            kids = self.supervisor.children
            for name, last, limit in self._signs_of_life():
                child = kids.get(name)
                if child is None or not child.running:
                    continue
                if last < child.started_at:  # nothing yet from this process
                    limit = max(limit, READY_TIMEOUT_S)
                silent = now - max(last, child.started_at, up)
                if silent > limit:
                    why = f"no sign of life for {silent:.0f} s"
                    if self.supervisor.kill_hung(name, why):
                        log.warning("%s hung (%s): killed to be restarted", name, why)
                        self.hang_notes.append(f"{name} hung ({why}): killed")

    def nats_component(self) -> ComponentSummary:
        """The embedded nats-server as a component of the summary."""
        return ComponentSummary(
            name="nats",
            kind="nats",
            status="failed" if self.nats_failed else "stopped",
            exit_code=self.nats_exit_codes[-1] if self.nats_exit_codes else None,
            restarts=self.nats_restarts,
            errors=len(self.nats_exit_codes),
        )

    # -- the run -------------------------------------------------------------------------------

    async def run(self) -> tuple[list[str], int]:
        """Run the session; return (notes, exit code). Summaries come from ``summarize``."""
        from algostack.adapters.nats.bus import NatsBus
        from algostack.adapters.nats.server import EmbeddedNats

        cfg = self.cfg
        notes: list[str] = []
        self._install_signals()
        server = EmbeddedNats(cfg.paths.nats, password=self._nats_password)
        server.start()  # from the main thread: PR_SET_PDEATHSIG follows the forking thread
        bus = None
        hung_watch: asyncio.Task[None] | None = None
        watcher: asyncio.Task[None] | None = asyncio.create_task(self._supervise_nats(server))
        try:
            self.nats_url = server.url
            bus = await NatsBus.connect(
                server.url, user=server.user, password=server.password, name="algostack-run"
            )
            self._bus = bus
            from algostack.adapters.nats import order_channel as orders

            # each run starts from empty streams
            await bus.reset_stream()
            await bus.reset_stream(orders.STREAM, orders.SUBJECTS)
            col = self.collector

            async def on_bar(msg: Any) -> None:
                col.on_market(msg.data)

            async def on_trader(msg: Any) -> None:
                col.on_trader(msg.subject, msg.data)

            async def on_report(msg: Any) -> None:
                col.on_report(msg.data)

            async def on_desk(msg: Any) -> None:
                col.on_desk(msg.data)

            from algostack.services.gateway.service import status_subject

            await bus.subscribe(col.market_subject, on_bar)
            await bus.subscribe("orders.report.>", on_report)
            await bus.subscribe(status_subject(cfg.env), on_desk)
            await bus.subscribe(col.trader_subject, on_trader)
            env = self._child_env(server.user, server.password)
            self.phase = "loading models"
            hung_watch = asyncio.create_task(self._watch_hung())
            await self.supervisor.start(self.gateway_spec(env))
            for spec in self.trader_specs(env):
                await self.supervisor.start(spec)
                self.trader_names.append(spec.name)
            if cfg.dashboard:
                await self.supervisor.start(self.dashboard_spec(env))
            ready = await self._until(self._ready, READY_TIMEOUT_S)
            if not ready and not self.stop_requested.is_set():
                notes.append(f"some traders were not ready after {READY_TIMEOUT_S:.0f} s")
            if not self.stop_requested.is_set():
                self.phase = "trading"
                await self.supervisor.start(self.ingest_spec(env))
                ingest = self.supervisor.children["ingest"]
                # until the session is sent, or no trader is left to trade it (all failed)
                await self._until(
                    lambda: ingest.done.is_set() or not self.traders_alive(), float("inf"), 0.1
                )
                if not ingest.done.is_set() and not self.stop_requested.is_set():
                    # their failures are the causes; the rest of the session helps no one
                    notes.append("every trader failed: the ingest was stopped mid-session")
            if not self.stop_requested.is_set():
                self.phase = "catching up"
                await self._until(self._caught_up, cfg.catch_up_timeout_s)
                self._caught_up_at = time.monotonic()
                lagging = [s for s in self.specs if not col.caught_up(s.key, s.symbol)]
                if lagging:
                    notes.append(
                        "run incomplete: "
                        + "; ".join(self._lost(s) for s in lagging)
                        + f" (caught-up wait {cfg.catch_up_timeout_s:.0f} s)"
                    )
                    self.incomplete = True
                elif not await self._until(self._settled, cfg.catch_up_timeout_s, 0.05):
                    self.incomplete = True
                    unsettled = [s.key for s in self.specs if not col.settled(s.key)]
                    if unsettled:
                        notes.append(f"fills reported by the gateway not booked: {unsettled}")
                    else:  # the gateway's own note says how many, if it reported at all
                        silent = col.desk_at < self._caught_up_at
                        notes.append(
                            "run incomplete: the gateway did not place every intent by the end"
                            f" (settle wait {cfg.catch_up_timeout_s:.0f} s)"
                            + (": no report from it since the session's last bar" if silent else "")
                        )
            self.phase = "stopping"
            self._tick()
            await self.supervisor.stop_all(
                [self.trader_names, ["gateway"], ["ingest"], ["dashboard"]]
            )
        finally:
            self.phase = "syncing"
            self._tick()
            try:
                sync_notes = self.final_sync()
                if sync_notes:  # a journal not in the bucket: the run did not finish its job
                    self.incomplete = True
                    notes.extend(sync_notes)
            finally:
                if bus is not None:
                    with contextlib.suppress(Exception):
                        await bus.close(timeout_s=2.0)
                await self.supervisor.stop_all()  # no-op unless an exception skipped it
                for task in (watcher, hung_watch):
                    if task is not None:
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
                server.stop()
                self.nats_error = server.last_error()
                self._defer_signals()
        if self.collector.bar_log:
            from algostack.adapters.offline.bars_file import write_bars
            from algostack.core.atomic_file import write_error

            # the exact bars of this run: `algostack replay --bars` on it is the backtest twin
            try:
                write_bars(cfg.paths.bars_csv, self.collector.bar_log)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    cfg.paths.bars_csv.unlink()  # no half file: replaying it would mislead
                notes.append(f"bars not written: {write_error(cfg.paths.bars_csv, exc)}")
                self.incomplete = True
        survivors = self.supervisor.survivors()
        if survivors:
            notes.append(f"process groups still alive after stop: {survivors} (killed)")
            self.supervisor.kill_all()
        comps = self.components()
        causes = [f"run aborted: {self.abort_reason}"] if self.abort_reason else []
        for c in sorted(comps, key=lambda c: self.supervisor.failed_at(c.name)):
            if c.failed and c.kind != "nats":
                why = (last_error(Path(c.log)) or _mute_log(Path(c.log))) if c.log else ""
                if "JetStream store full" in why:
                    why += f" (the store: {self.cfg.paths.nats})"
                if "JetStream" in why and self.nats_error:  # the server says why it refused
                    why += f" (nats-server: {self.nats_error})"
                causes.append(
                    f"{c.name} failed (exit code {c.exit_code})" + (f": {why}" if why else "")
                )
        notes[0:0] = causes  # the causes first: `run` prints the first one as its error line
        notes.extend(self.hang_notes)

        code = 0
        if self.incomplete or causes:
            code = EXIT_FAILED
        if self.interrupted:
            code = EXIT_INTERRUPTED
        self.phase = "done"
        return notes, code

    def components(self) -> list[ComponentSummary]:
        """Every component of the run, the nats-server first."""
        return [self.nats_component(), *self.supervisor.components()]

    def final_sync(self) -> list[str]:
        """Sync every model's journals into the local bucket (``final``: with manifest)."""
        from algostack.adapters.storage import LocalDirStore
        from algostack.services.sync import sync_journals

        store = LocalDirStore(self.cfg.paths.bucket)
        notes = []
        for spec in self.specs:
            jdir = self.cfg.paths.journal_dir(spec.key)
            if not jdir.is_dir():
                notes.append(f"{spec.key}: no journal directory (trader never started)")
                continue
            days = sorted(
                p.name.removeprefix("trades_").removesuffix(".csv")
                for p in jdir.glob("trades_*.csv")
            ) or [self.cfg.day_text]
            for day in days:
                try:
                    sync_journals(jdir, store, spec.live_prefix(day), day=day, final=True)
                except Exception as exc:  # one model's failed sync must not stop the others
                    notes.append(f"{spec.key}: final sync failed: {exc}")
        return notes

    def summarize(self, run_id: str, notes: list[str]) -> tuple[RunSummary, list[ModelCurve]]:
        """Figures from the journals (fills), the bars heard on NATS and the trader events."""
        from algostack.local.summary import read_journal_fills

        col = self.collector
        if col.desk_line():
            notes.append(col.desk_line())
        held = [
            f"{s.key} {v.position} {s.symbol}"
            for s in self.specs
            if (v := col.models.get(s.key)) is not None and v.position
        ]
        if held:  # said whatever the cause: a model that keeps positions, or a fault
            notes.append("positions held at the end of the session: " + ", ".join(held))
        models: list[ModelSummary] = []
        curves: list[ModelCurve] = []
        for spec in sorted(self.specs, key=lambda s: s.prefix):
            jdir = self.cfg.paths.journal_dir(spec.key)
            fills = []
            for path in sorted(jdir.glob("trades_*.csv")) if jdir.is_dir() else []:
                fills.extend(read_journal_fills(path))
            view = col.view(spec.key)
            heard = {f.client_order_id for f in view.fills}
            journaled = {f.client_order_id for f in fills}
            if heard - journaled:
                notes.append(
                    f"{spec.key}: {len(heard - journaled)} fill(s) published but not journaled"
                )
            s, c = summarize_model(
                spec.key,
                spec.prefix,
                spec.symbol,
                fills,
                col.prices.get(spec.symbol, []),
                view.latencies_us,
                decisions=len(view.decided) or view.decisions,
            )
            models.append(s)
            curves.append(c)
        held = [f"{m.key} {m.final_position} {m.symbol}" for m in models if m.final_position]
        if self.abort_reason and held:  # nothing could flatten them: their bus was gone
            notes.append("positions left held at the abort (journals): " + "; ".join(held))
        summary = RunSummary(
            mode="run",
            run_id=run_id,
            day=self.cfg.day_text,
            source=self.cfg.source.value,
            wall_s=round(time.monotonic() - self.started, 3),
            bars=col.bars,
            models=models,
            components=self.components(),
            interrupted=self.interrupted,
            bucket=str(self.cfg.paths.bucket),
            notes=notes,
        )
        return summary, curves
