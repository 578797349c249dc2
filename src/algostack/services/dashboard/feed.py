"""The dashboard's background reader: NATS and the bucket -> ``DashboardState``.

One thread with its own asyncio loop per Streamlit server (``app.py`` starts it once through
``st.cache_resource``). It

- reads today's market data from JetStream with an ordered, ephemeral push consumer on the
  ``MARKET`` stream starting at midnight New York (``history="today"``) or at the first
  stored message (``history="all"``), then keeps following it live; while the stream does not
  exist yet it listens on core NATS and switches over once the ingest has created it;
- subscribes to every trader event of the environment (``algostack.<env>.trader.>``) and to
  the execution gateway's status (``algostack.<env>.gateway.status``, core NATS, every second);
- re-reads the bucket (model list and today's journals) and the live journal root (the
  local session's ``journals/<run id>``) every ``journal_every_s``;
- publishes the kill switch on ``algostack.<env>.control.kill``.

Nothing here blocks the Streamlit script: it reads ``state.snapshot()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as dtime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import msgspec
import orjson

from algostack.core import codec, naming
from algostack.core.events import FILL_KIND, decode_desk_status, decode_event
from algostack.core.market_bus import MarketBus, StreamMissingError
from algostack.core.sessions import NEW_YORK, new_york_date
from algostack.errors import AlgostackError, ConfigError, RetryableError
from algostack.services.dashboard.aggregate import DashboardState
from algostack.services.dashboard.journals import apply_scan, scan_bucket, scan_journal_dir

if TYPE_CHECKING:
    from algostack.core.market_bus import BusMessage

log = logging.getLogger("algostack.dashboard.feed")

MARKET_FILTERS = ("market.bars.>", "market.updated_bars.>", "market.status.>")
KILL_ALL = "*"
_MODEL_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


@dataclass(frozen=True)
class FeedConfig:
    """Where the feed reads from. ``password`` is only handed to the NATS client."""

    nats_url: str
    env: str = "local"
    user: str | None = None
    password: str | None = None
    bucket: str | None = None
    journal_dir: str | None = None
    """A live journal root (one directory per model key), read like the bucket's journals."""
    history: Literal["today", "all"] = "today"
    journal_every_s: float = 30.0
    stream_retry_s: float = 2.0
    connect_timeout_s: float = 3600.0
    """The dashboard waits for NATS a long time: it is often started before the ingest."""


def kill_payload(model: str, reason: str, *, by: str = "dashboard", ts: int = 0) -> bytes:
    """Build the kill-switch message ``{"model", "reason", "by", "ts"}`` as JSON.

    ``model`` is a model key or ``"*"`` for every model; a reason is required.
    """
    if model != KILL_ALL and not _MODEL_KEY_RE.match(model):
        raise ConfigError(f"invalid model key {model!r} for the kill switch: use a key or '*'")
    if not reason.strip():
        raise ConfigError("the kill switch needs a reason (it is logged by every trader)")
    return orjson.dumps({"model": model, "reason": reason.strip(), "by": by, "ts": ts})


def day_start(now: datetime) -> datetime:
    """Midnight New York of the trading day ``now`` belongs to, as aware UTC."""
    return datetime.combine(new_york_date(now), dtime(0, 0), NEW_YORK).astimezone(UTC)


def _quiet_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Log leftovers of the NATS client (e.g. a failed connect's task) on one debug line."""
    log.debug("asyncio: %s %r", context.get("message"), context.get("exception"))


class DashboardFeed:
    """Fill a ``DashboardState`` from NATS and the bucket in a background thread."""

    def __init__(
        self,
        config: FeedConfig,
        state: DashboardState | None = None,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        store_factory: Callable[[str], Any] | None = None,
    ) -> None:
        self.config = config
        self.state = state or DashboardState()
        self.clock_ns = clock_ns
        self._store_factory = store_factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._bus: MarketBus | None = None
        self._live = threading.Event()
        self._market_sub: Any = None
        self._market_mode = "none"
        self.journal_scans = 0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the background thread (idempotent); returns at once."""
        if self._thread is not None and self._thread.is_alive():
            return self
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="dashboard-feed", daemon=True
        )
        self._thread.start()
        ready.wait(5.0)
        return self

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(_quiet_exception_handler)
        self._loop = loop
        self._stop = asyncio.Event()
        ready.set()
        try:
            loop.run_until_complete(self._main())
        finally:
            # Ordered consumers leave helper tasks (flow control, activity checks): end them.
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            # A refused nats.connect leaves its socket in a reference cycle (nats-py 2.16):
            # collect it here, while its loop is open, not at a random point in another
            # thread (CPython 3.11.7 can then fail an ast.parse in progress with SystemError).
            gc.collect()
            loop.close()

    def wait_live(self, timeout_s: float) -> bool:
        """Block until NATS is connected and subscriptions are in place (tests, startup)."""
        return self._live.wait(timeout_s)

    @property
    def market_mode(self) -> str:
        """``jetstream`` (history + live), ``core`` (live only, no stream yet) or ``none``."""
        return self._market_mode

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread and close the connection (bounded)."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._live.clear()

    # -- kill switch ------------------------------------------------------------------------

    def kill(self, model: str, reason: str, *, timeout_s: float = 5.0) -> None:
        """Publish the kill switch for ``model`` (or ``"*"``); raise when it was not sent."""
        payload = kill_payload(model, reason, ts=self.clock_ns())
        loop, bus = self._loop, self._bus
        if loop is None or bus is None or not self._live.is_set():
            raise RetryableError("not connected to NATS: the kill switch was NOT sent")
        subject = naming.kill_subject(self.config.env)

        async def send() -> None:
            await bus.publish(subject, payload)
            await bus.flush(timeout_s)

        fut: Future[None] = asyncio.run_coroutine_threadsafe(send(), loop)
        try:
            fut.result(timeout_s)
        except Exception as exc:
            raise RetryableError(f"kill switch NOT confirmed by NATS: {exc}") from exc
        log.warning(
            "kill switch sent",
            extra={"fields": {"model": model, "reason": reason, "subject": subject}},
        )

    # -- the loop ---------------------------------------------------------------------------

    async def _main(self) -> None:
        assert self._stop is not None
        tasks = [asyncio.create_task(self._nats_task())]
        if self.config.bucket or self.config.journal_dir:
            tasks.append(asyncio.create_task(self._journal_task()))
        await self._stop.wait()
        # nats-py can swallow a cancellation (its connect path catches CancelledError while
        # closing a failed client): cancel again until every task has really ended.
        for _ in range(40):
            pending = [t for t in tasks if not t.done()]
            if not pending:
                break
            for t in pending:
                t.cancel()
            await asyncio.wait(pending, timeout=0.25)
        if self._market_mode == "jetstream":
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._market_sub.unsubscribe(), 2.0)
        if self._bus is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._bus.close(2.0), 5.0)
            self._bus = None

    async def _nats_task(self) -> None:
        from algostack.adapters.nats.bus import NatsBus
        from algostack.services.gateway.service import status_subject

        cfg = self.config
        self.state.set_feed_status("connecting")
        try:
            bus = await NatsBus.connect(
                cfg.nats_url,
                user=cfg.user,
                password=cfg.password,
                connect_timeout_s=cfg.connect_timeout_s,
                name="algostack-dashboard",
            )
        except AlgostackError as exc:
            reason = str(exc)  # keep no reference to the exception: it holds the dead client
            self.state.set_feed_status("error", reason)
            log.error("dashboard cannot reach NATS: %s", reason)
            return
        self._bus = bus
        await bus.subscribe(f"algostack.{cfg.env}.trader.>", self._on_trader)
        await bus.subscribe(status_subject(cfg.env), self._on_gateway)
        await self._subscribe_market()
        await bus.flush()  # the server has our subscriptions before we say we are live
        self.state.set_feed_status("live")
        self._live.set()
        while self._market_mode != "jetstream":
            await asyncio.sleep(cfg.stream_retry_s)
            await self._subscribe_market()

    async def _subscribe_market(self) -> None:
        """Bind the ordered JetStream consumer; fall back to core NATS while there's no stream."""
        bus = self._bus
        assert bus is not None  # connected before the market subscription
        start = None
        if self.config.history == "today":
            start = day_start(datetime.fromtimestamp(self.clock_ns() / 1e9, UTC))
        try:
            sub = await bus.ordered_subscribe(MARKET_FILTERS, self._on_js_market, start_time=start)
        except StreamMissingError:
            if self._market_mode == "none":
                subs = [await bus.subscribe(f, self._on_core_market) for f in MARKET_FILTERS]
                self._market_sub, self._market_mode = subs, "core"
            return
        if self._market_mode == "core":
            for s in self._market_sub:
                with contextlib.suppress(Exception):
                    await s.unsubscribe()
        self._market_sub, self._market_mode = sub, "jetstream"
        log.info("dashboard reading market data from JetStream (%s)", self.config.history)

    async def _on_js_market(self, msg: BusMessage) -> None:
        arrival = msg.stored_ns if msg.stored_ns is not None else self.clock_ns()
        self._apply_market(msg.data, arrival)

    async def _on_core_market(self, msg: BusMessage) -> None:
        self._apply_market(msg.data, self.clock_ns())

    def _apply_market(self, data: bytes, arrival_ns: int) -> None:
        try:
            event = codec.decode(data)
        except msgspec.DecodeError:
            self.state.count_ignored()
            return
        self.state.on_market(event, arrival_ns)

    async def _on_trader(self, msg: Any) -> None:
        arrival = self.clock_ns()
        kind = msg.subject.rsplit(".", 1)[-1]
        try:
            if kind == FILL_KIND:
                fields = msgspec.msgpack.decode(msg.data)
                if not isinstance(fields, dict):
                    raise msgspec.DecodeError("fill payload is not a map")
                model = str(fields.get("model") or msg.subject.split(".")[-2])
                self.state.on_fill(model, fields)
            else:
                self.state.on_trader(decode_event(msg.data), arrival)
        except msgspec.DecodeError:
            self.state.count_ignored()

    async def _on_gateway(self, msg: BusMessage) -> None:
        arrival = self.clock_ns()
        try:
            status = decode_desk_status(msg.data)
        except msgspec.DecodeError:  # ValidationError included
            self.state.count_ignored()
            return
        self.state.on_desk_status(status, arrival)

    async def _journal_task(self) -> None:
        from algostack.adapters.storage import open_store

        cfg = self.config
        factory = self._store_factory or open_store
        store = None
        while True:
            if store is None and cfg.bucket:
                try:
                    store = await asyncio.to_thread(factory, cfg.bucket)
                except AlgostackError as exc:  # retried on the next pass
                    log.error("dashboard cannot open the bucket: %s", exc)
            if store is not None or cfg.journal_dir:
                await self._scan_journals(store)
            await asyncio.sleep(cfg.journal_every_s)

    async def _scan_journals(self, store: Any) -> None:
        """One pass: the bucket's models and today's journals, then the live journal root."""
        cfg = self.config
        day = new_york_date(datetime.fromtimestamp(self.clock_ns() / 1e9, UTC)).isoformat()
        try:
            if store is not None:
                apply_scan(self.state, await asyncio.to_thread(scan_bucket, store, day))
            if cfg.journal_dir:
                scan = await asyncio.to_thread(scan_journal_dir, Path(cfg.journal_dir))
                for err in scan.errors:
                    log.warning("dashboard journals: %s", err)
                apply_scan(self.state, scan)
            self.journal_scans += 1
        except AlgostackError as exc:
            log.error("dashboard cannot read journals: %s", exc)
