"""The trader service: NATS -> ``ModelRunner`` per model -> broker, with restart safety.

Per model: a runner, a broker, a journal directory and state file, and a ``ModelFeed``;
models in one process share only the NATS connection. The service also answers the kill
switch, publishes heartbeats and commits each model (journals and state fsynced, then the
durable delivery acked), so a crash redelivers only bars past the last commit and each is
decided once. The commit protocol: docs/trader.md, "Restart safety".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from algostack.adapters.broker import Broker
from algostack.adapters.nats.bus import NatsBus, Subscription
from algostack.adapters.nats.feed_consumer import Delivery
from algostack.adapters.storage import BucketStore
from algostack.core import codec
from algostack.core.atomic_file import fsync_path
from algostack.core.backoff import cancel_and_wait
from algostack.core.events import Heartbeat, encode_event
from algostack.core.market import Bar, TradingStatus
from algostack.core.market_bus import BusMessage, recv_ns_of
from algostack.core.naming import ModelSpec, kill_subject, trader_subject
from algostack.core.sessions import new_york_date
from algostack.errors import FatalError, FileWriteError
from algostack.services import freeze_long_lived
from algostack.services.journal import LIVE_LOG_NAME, open_live_log
from algostack.services.trader.model_feed import FOLLOW_INTERVAL_S, REPOSITION_S, ModelFeed
from algostack.services.trader.runner import ModelRunner
from algostack.services.trader.state import (
    carried_position,
    load_state,
    read_journal_fills,
    save_state,
)
from algostack.services.trader.types import ScoringModel

log = logging.getLogger("algostack.trader.service")

HEARTBEAT_EVERY_S = 5.0
COMMIT_INTERVAL_S = 0.2
COMMIT_GRACE_S = 10.0
"""How long a model's commits may keep failing to write (a disk that fills, then frees
again) before the trader stops: past it, it would trade on with nothing durable."""
EVENTS_FLUSH_S = 0.005
"""Decision/fill events wait up to this long so one socket write carries many (see docs)."""


class _ModelFilter(logging.Filter):
    """Pass a model's own records and service-wide ones (no ``model`` field)."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def filter(self, record: logging.LogRecord) -> bool:
        fields = getattr(record, "fields", None)
        model = fields.get("model") if isinstance(fields, dict) else None
        return model is None or model == self.key


def journal_dir_for(root: Path, spec: ModelSpec) -> Path:
    """A model's journal directory under the trader's ``--journal-dir``: ``<root>/<key>``."""
    return Path(root) / spec.key


@dataclass
class _CommitJob:
    """One model's commit: the blocking writes, then what they make safe to ack."""

    write: Callable[[], None]
    msg: Delivery | None
    """The last durable market delivery the state covers."""
    seq: int
    """Its MARKET stream sequence (the resume point)."""
    broker_seq: int
    """The broker's checkpoint in the state."""


@dataclass
class ModelSlot:
    """One model inside the service: its runner, broker, feed and commit bookkeeping."""

    spec: ModelSpec
    runner: ModelRunner
    broker: Broker
    journal_dir: Path
    log_handler: logging.Handler
    feed: ModelFeed = field(init=False)
    malformed: int = 0
    commit_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    commit_task: asyncio.Task[None] | None = None
    commit_error: FileWriteError | None = None
    """The last commit's write error, ``None`` once a commit succeeds."""
    commit_failing_since: float = 0.0
    """``time.monotonic()`` of the first of the commits failing since the last success."""
    reports_task: asyncio.Task[None] | None = None
    reports_again: bool = False


class TraderService:
    """Run one or more models from NATS until ``stop()``.

    ``models`` pairs each spec with its loaded model; ``broker_factory(spec)`` builds each
    model's broker. ``warmup`` replays the day's bars already in the stream through the
    features (no orders) on a first start; a restart always rebuilds the features up to the
    point where it resumes.
    """

    def __init__(
        self,
        bus: NatsBus,
        models: Sequence[tuple[ModelSpec, ScoringModel]],
        *,
        journal_root: Path,
        broker_factory: Callable[[ModelSpec], Broker],
        env: str = "local",
        warmup: bool = True,
        fsync: bool = True,
        heartbeat_s: float = HEARTBEAT_EVERY_S,
        commit_interval_s: float = COMMIT_INTERVAL_S,
        commit_grace_s: float = COMMIT_GRACE_S,
        follow_interval_s: float = FOLLOW_INTERVAL_S,
        reposition_s: float = REPOSITION_S,
        live: bool = True,
        events_flush_s: float = EVENTS_FLUSH_S,
        ack_wait_s: float = 30.0,
        runner_kwargs: dict[str, Any] | None = None,
        archive: BucketStore | None = None,
        session_day: str | None = None,
    ) -> None:
        keys = [s.key for s, _ in models]
        if len(set(keys)) != len(keys):
            raise ValueError(f"a model appears twice: {keys}")
        self.bus = bus
        self.env = env
        self.warmup = warmup
        self.archive = archive
        self.session_day = session_day
        """The session being traded (``YYYY-MM-DD``); ``None``: today in New York."""
        """The market-data archive: a model whose features run across sessions warms up from
        the sessions before the current one (``_warm_from_archive``); ``None``: it does not."""
        self.heartbeat_s = heartbeat_s
        self.commit_interval_s = commit_interval_s
        self.commit_grace_s = commit_grace_s
        self.live = live
        self.ack_wait_s = ack_wait_s
        self.journal_root = Path(journal_root)
        self.fsync = fsync
        self.slots: dict[str, ModelSlot] = {}
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._failure: BaseException | None = None
        """The first error that ended the service (a journal it cannot write): ``run``
        raises it once everything else is shut down."""
        self._kill_sub: Subscription | None = None
        self._outbox: list[tuple[str, bytes]] = []
        self.events_flush_s = events_flush_s
        self._drain_handle: asyncio.TimerHandle | None = None
        self._drain_tasks: set[asyncio.Task[None]] = set()
        self.events_dropped = 0
        for spec, model in models:
            jdir = journal_dir_for(self.journal_root, spec)
            jdir.mkdir(parents=True, exist_ok=True)
            handler = open_live_log(jdir, fsync=False)  # fsynced by each commit
            handler.addFilter(_ModelFilter(spec.key))
            broker = broker_factory(spec)
            runner = ModelRunner(
                spec,
                model,
                broker,
                journal_dir=jdir,
                fsync=False,  # fills are fsynced by each commit, before the state
                emit=self._emitter(spec.key),
                **(runner_kwargs or {}),
            )
            slot = ModelSlot(spec, runner, broker, jdir, handler)
            broker.on_reports(self._reports_waker(slot))
            slot.feed = ModelFeed(
                spec.key,
                self._handler(slot),
                self._stop,
                follow_interval_s=follow_interval_s,
                reposition_s=reposition_s,
            )
            self.slots[spec.key] = slot

    # -- events --------------------------------------------------------------------------------

    def _emitter(self, key: str) -> Callable[[str, msgspec.Struct], None]:
        subjects: dict[str, str] = {}
        outbox = self._outbox

        def emit(kind: str, event: msgspec.Struct) -> None:
            subj = subjects.get(kind)
            if subj is None:
                subj = subjects[kind] = trader_subject(self.env, key, kind)
            outbox.append((subj, encode_event(event)))

        return emit

    def _schedule_drain(self) -> None:
        """Publish the outbox in ``events_flush_s`` (one write for every event until then)."""
        if self._drain_handle is None:
            loop = asyncio.get_running_loop()
            self._drain_handle = loop.call_later(self.events_flush_s, self._start_drain)

    def _start_drain(self) -> None:
        self._drain_handle = None
        task = asyncio.get_running_loop().create_task(self._drain_outbox())
        self._drain_tasks.add(task)
        task.add_done_callback(self._drain_tasks.discard)

    async def _drain_outbox(self) -> None:
        """Publish the events the runners produced (plain NATS; never flushed per message)."""
        outbox = self._outbox
        if not outbox:
            return
        items = outbox[:]
        outbox.clear()
        publish = self.bus.publish
        for subj, payload in items:
            try:
                await publish(subj, payload)
            except Exception as exc:  # events are best effort; the journals are the record
                self.events_dropped += 1
                log.debug("event publish failed: %s", exc)

    # -- start ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Restore every model, warm it up, bind its consumer; subscribe the kill switch."""
        self._kill_sub = await self.bus.subscribe(kill_subject(self.env), self._on_kill)
        self.bus.on_gap(self._on_gap)
        for slot in self.slots.values():
            await self._start_slot(slot)
            self._tasks.append(asyncio.create_task(slot.feed.follow()))
        self._tasks.append(asyncio.create_task(self._heartbeat_loop()))
        self._tasks.append(asyncio.create_task(self._commit_loop()))

    async def _start_slot(self, slot: ModelSlot) -> None:
        spec, runner = slot.spec, slot.runner
        logging.getLogger("algostack.trader").addHandler(slot.log_handler)
        state = load_state(slot.journal_dir, spec.key)
        day = state.day if state and state.day else new_york_date(datetime.now(UTC)).isoformat()
        fills = read_journal_fills(slot.journal_dir, day)
        runner.restore(state, fills, carried_position(slot.journal_dir, day, spec.symbol))
        today = self.session_day or new_york_date(datetime.now(UTC)).isoformat()
        if state is not None and state.day == today:  # started before on the day it trades
            runner.stats.restarts = state.restarts + 1
        await runner.restore_broker(state.broker_seq if state else 0)
        start_seq, existed = await self.bus.resume_point(
            spec.key, committed_seq=state.stream_seq if state else 0
        )
        warm_upto = start_seq - 1
        if not existed and start_seq == 0:  # first start: decide only what arrives from now
            warm_upto = await self.bus.last_stream_seq()
            start_seq = warm_upto + 1
            if not self.warmup:
                warm_upto = 0
        if self.archive is not None and runner.sessions_to_warm():
            await asyncio.to_thread(self._warm_from_archive, runner, spec, today)
        history = await self.bus.read_history(codec.subject_for("bars", spec.symbol), warm_upto)
        for msg in history:
            try:
                event = codec.decode(msg.data)
            except msgspec.DecodeError:
                continue
            if type(event) is Bar:
                runner.warm(event)
        subjects = [codec.subject_for(kind, spec.symbol) for kind in ("bars", "status")]
        await slot.feed.start(
            self.bus, subjects, start_seq, live=self.live, ack_wait_s=self.ack_wait_s
        )
        log.info(
            "model trading: %s from stream seq %d (warm-up %d bars, position %d, %s)",
            spec.key,
            start_seq,
            runner.stats.warmup_bars,
            runner.position,
            "resumed" if existed or state else "first start",
            extra={"fields": {"model": spec.key, "symbol": spec.symbol}},
        )

    def _warm_from_archive(self, runner: ModelRunner, spec: ModelSpec, day: str) -> None:
        """Feed the ``sessions_to_warm`` sessions before ``day`` from the archive
        (``archive_reader.warm_from_archive``; a session it does not hold is logged)."""
        from datetime import date

        from algostack.services.archive_reader import warm_from_archive

        assert self.archive is not None
        warm = warm_from_archive(self.archive, runner, spec.symbol, date.fromisoformat(day))
        for why in warm.missing:
            log.warning("warm-up: %s", why, extra={"fields": {"model": spec.key}})
        log.info(
            "warm-up from the archive: %d of %d sessions, %d bars of the model",
            warm.found,
            warm.wanted,
            warm.bars,
            extra={"fields": {"model": spec.key, "sessions": warm.found, "bars": warm.bars}},
        )

    # -- messages ------------------------------------------------------------------------------

    def _handler(self, slot: ModelSlot) -> Callable[[str, bytes, Any], Awaitable[None]]:
        """Decode and handle one market message (``ModelFeed`` calls it with its lock held)."""
        runner = slot.runner
        decode = codec.decode

        async def handle(subject: str, data: bytes, headers: Any) -> None:
            try:
                await take(subject, data, headers)
            except Exception as exc:  # the live path's caller is nats-py: stop here, not there
                self._fail(exc)
                raise

        async def take(subject: str, data: bytes, headers: Any) -> None:
            try:
                event = decode(data)
            except msgspec.DecodeError as exc:
                slot.malformed += 1
                log.warning(
                    "malformed market payload skipped: %s",
                    exc,
                    extra={"fields": {"model": slot.spec.key, "subject": subject}},
                )
                return
            if type(event) is Bar:
                await runner.on_bar(event, recv_ns_of(headers))
                if self._outbox:
                    self._schedule_drain()
            elif type(event) is TradingStatus:
                runner.on_status(event)
            if runner.needs_commit:
                self.request_commit(slot)

        return handle

    def _reports_waker(self, slot: ModelSlot) -> Callable[[], None]:
        """Book a broker's reports between bars, under the feed lock, in one task at a time."""

        async def take() -> None:
            again = True
            while again:
                slot.reports_again = False
                async with slot.feed.lock:
                    await slot.runner.take_reports()
                if self._outbox:
                    self._schedule_drain()
                if slot.runner.needs_commit:
                    self.request_commit(slot)
                again = slot.reports_again

        def wake() -> None:
            task = slot.reports_task
            if task is None or task.done():
                slot.reports_task = asyncio.get_running_loop().create_task(take())
                slot.reports_task.add_done_callback(self._task_ended)
            else:
                slot.reports_again = True

        return wake

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        """A task that failed stops the service (its error is raised by ``run``)."""
        if not task.cancelled() and task.exception() is not None:
            self._fail(task.exception())

    def _fail(self, exc: BaseException | None) -> None:
        if exc is not None and self._failure is None:
            self._failure = exc
            log.error("trader stopping: %s", exc)
        self._stop.set()

    def _on_gap(self) -> None:
        for slot in self.slots.values():
            slot.feed.gate.lost()

    async def _on_kill(self, msg: BusMessage) -> None:
        reason = msg.data.decode("utf-8", "replace")[:200] or "kill switch"
        log.error("kill switch: %s", reason)
        for slot in self.slots.values():
            slot.runner.kill(reason)
            await self._commit(slot)
        await self._drain_outbox()

    # -- commits -------------------------------------------------------------------------------

    def request_commit(self, slot: ModelSlot) -> None:
        """Start a commit of ``slot`` in the background unless one is running."""
        task = slot.commit_task
        if task is None or task.done():
            slot.commit_task = asyncio.create_task(self._commit(slot))
            slot.commit_task.add_done_callback(self._task_ended)

    async def _commit(self, slot: ModelSlot) -> None:
        """Make the decisions up to the feed's resume point durable, then ack through it.

        The snapshot is taken between two messages (consistent); the fsyncs run in a worker
        thread while the model goes on deciding later bars, which stay unacked until the
        next commit.
        """
        async with slot.commit_lock:
            try:
                async with slot.feed.lock:  # between two messages
                    job = self._prepare_commit(slot)
                if job is None:
                    return
                await asyncio.to_thread(job.write)
            except FileWriteError as exc:
                self._commit_failed(slot, exc)
                return
            slot.commit_error = None
            await self._acknowledge(slot, job)

    def _commit_failed(self, slot: ModelSlot, exc: FileWriteError) -> None:
        """A commit could not write (nothing acked: the bars stay to be committed at the next
        tick); past ``commit_grace_s`` of failures the trader stops with the error."""
        now = time.monotonic()
        if slot.commit_error is None:
            slot.commit_failing_since = now
            log.warning("commit failed (tried again at the next tick): %s", exc)
        slot.commit_error = exc
        if now - slot.commit_failing_since >= self.commit_grace_s:
            self._fail(exc)

    async def _commit_group(self, slots: list[ModelSlot]) -> None:
        """``_commit`` for several models with one worker-thread hop for all their writes.

        The periodic commit makes every model due at once: one thread wake-up and one
        loop wake-up per tick instead of one each per model. Each model's writes still
        precede its own ack; a model whose writes fail is not acked (its error is raised
        after the others are acked, as its own ``_commit`` would have).
        """
        async with contextlib.AsyncExitStack() as stack:
            for slot in slots:
                await stack.enter_async_context(slot.commit_lock)
            jobs = []
            for slot in slots:
                try:
                    async with slot.feed.lock:  # between two messages
                        jobs.append((slot, self._prepare_commit(slot)))
                except FileWriteError as exc:
                    self._commit_failed(slot, exc)
            ready = [(slot, job) for slot, job in jobs if job is not None]
            if not ready:
                return

            def write_all() -> list[BaseException | None]:
                errors: list[BaseException | None] = []
                for _, job in ready:
                    try:
                        job.write()
                        errors.append(None)
                    except Exception as exc:
                        errors.append(exc)
                return errors

            errors = await asyncio.to_thread(write_all)
            for (slot, job), err in zip(ready, errors, strict=True):
                if err is None:
                    slot.commit_error = None
                    await self._acknowledge(slot, job)
                elif isinstance(err, FileWriteError):
                    self._commit_failed(slot, err)
            first = next((e for e in errors if not isinstance(e, FileWriteError | None)), None)
            if first is not None:
                raise first

    def _prepare_commit(self, slot: ModelSlot) -> _CommitJob | None:
        """Snapshot ``slot`` (on the loop); return its blocking writes and what they cover."""
        msg, seq = slot.feed.commit_point()
        runner = slot.runner
        if seq <= slot.feed.committed_seq and not runner.needs_commit:
            return None
        runner.needs_commit = False
        broker_seq = slot.broker.checkpoint()
        state = runner.snapshot(stream_seq=seq, broker_seq=broker_seq)
        trades = runner.trades_path
        durable = self.fsync

        def write() -> None:
            if durable:
                runner.sync_journals()
                if trades is not None:
                    fsync_path(trades)
                fsync_path(slot.journal_dir / LIVE_LOG_NAME)
            save_state(slot.journal_dir, state, fsync=durable)

        return _CommitJob(write, msg, seq, broker_seq)

    async def _acknowledge(self, slot: ModelSlot, job: _CommitJob) -> None:
        """``job``'s writes are durable: ack the market messages and the broker's reports."""
        await slot.feed.committed(job.msg, job.seq)
        await slot.broker.committed(job.broker_seq)

    async def _commit_loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.commit_interval_s)
            due = [
                slot
                for slot in self.slots.values()
                if (slot.feed.gate.safe_seq > slot.feed.committed_seq or slot.runner.needs_commit)
                and (slot.commit_task is None or slot.commit_task.done())
            ]
            if len(due) == 1:
                self.request_commit(due[0])
            elif due:
                task = asyncio.create_task(self._commit_group(due))
                task.add_done_callback(self._task_ended)
                for slot in due:
                    slot.commit_task = task

    # -- heartbeats ----------------------------------------------------------------------------

    def heartbeat(self, slot: ModelSlot) -> Heartbeat:
        """The heartbeat of one model now."""
        r = slot.runner
        lat = sorted(list(r.latencies_us)[-1000:])
        p50 = lat[len(lat) // 2] if lat else 0.0
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0.0
        return Heartbeat(
            model=slot.spec.key,
            ts=time.time_ns(),
            symbol=slot.spec.symbol,
            state=str(r.risk.state),
            position=r.position,
            last_bar_ts=r.last_bar_ts,
            bars=r.stats.bars,
            decisions=r.stats.decisions,
            orders=r.stats.orders,
            latency_p50_us=p50,
            latency_p99_us=p99,
            warmed_up=r.features.ready,
            realised=r.portfolio.realised_pnl,
            unrealised=r.portfolio.unrealised_pnl,
            restarts=r.stats.restarts,
        )

    async def _heartbeat_loop(self) -> None:
        ready_sent = False
        while not self._stop.is_set():
            for slot in self.slots.values():
                hb = self.heartbeat(slot)
                with contextlib.suppress(Exception):
                    await self.bus.publish(
                        trader_subject(self.env, slot.spec.key, "heartbeat"), encode_event(hb)
                    )
            if not ready_sent:
                ready_sent = True
                await self._notify_ready()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.heartbeat_s)

    async def _notify_ready(self) -> None:
        """Under systemd (``Type=notify``): READY=1 once connected, every consumer created
        and the first heartbeats on the server (flushed). ``notify_ready`` is a no-op
        anywhere else."""
        from algostack.services.node import notify_ready

        with contextlib.suppress(Exception):
            await self.bus.flush()
        notify_ready(f"trading {', '.join(self.slots)}")

    # -- stop ----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the service to stop (safe from a signal handler); ``run`` then shuts down."""
        self._stop.set()

    async def wait(self) -> None:
        """Wait until ``stop()``."""
        await self._stop.wait()

    async def shutdown(self) -> None:
        """Stop consuming, commit and fsync every model, close brokers and journals."""
        self._stop.set()
        for slot in self.slots.values():
            await slot.feed.close()
        for exc in await cancel_and_wait(self._tasks):
            self._fail(exc)  # finish the shutdown of every model, then raise it
        if self._kill_sub is not None:
            with contextlib.suppress(Exception):
                await self._kill_sub.unsubscribe()
        for slot in self.slots.values():
            if slot.commit_task is not None:
                with contextlib.suppress(Exception):
                    await slot.commit_task
            slot.runner.needs_commit = True
            try:
                await self._commit(slot)
            except FatalError as exc:  # the other models still commit
                self._fail(exc)
            if slot.commit_error is not None:  # a full disk: nothing of it is durable
                self._fail(slot.commit_error)
            gate = slot.feed.gate
            log.info(
                "model feed: %d live, %d confirmed, %d gate closes",
                gate.live,
                gate.confirmed,
                gate.closes,
                extra={"fields": {"model": slot.spec.key, "live": gate.live,
                                  "confirmed": gate.confirmed, "closes": gate.closes}},
            )  # fmt: skip
            try:
                slot.runner.close()
            except FatalError as exc:
                self._fail(exc)
            await slot.broker.close()
            logging.getLogger("algostack.trader").removeHandler(slot.log_handler)
            slot.log_handler.close()
        if self._drain_handle is not None:
            self._drain_handle.cancel()
            self._drain_handle = None
        for drain in list(self._drain_tasks):
            with contextlib.suppress(Exception):
                await drain
        await self._drain_outbox()
        log.info("trader stopped", extra={"fields": {"models": list(self.slots)}})
        if self._failure is not None:
            raise self._failure

    async def run(self) -> None:
        """``start``, wait for ``stop()``, ``shutdown``.

        A task of the service that ends first or fails (a model's feed or a report taker that
        met a journal it cannot write, a full disk) ends the run too: ``shutdown`` finishes
        every model and then raises the first such error."""
        try:
            await self.start()
            freeze_long_lived()  # models, features and imports
            stopped = asyncio.ensure_future(self.wait())
            try:
                await asyncio.wait([stopped, *self._tasks], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
        finally:
            await self.shutdown()
