"""The execution gateway: the one process per broker account that talks to the broker.

``GatewayService`` takes the traders' intents from JetStream, checks them (desk risk
included), nets each batch of one symbol and bar into at most one venue order, reports each
model its share of the fills, reconciles the account with the sum of the model books and
publishes ``DeskStatus``; its state file makes a restart lose and double nothing. The rules
and the figures: docs/gateway.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import nats.errors

from algostack.adapters.nats import order_channel as channel
from algostack.adapters.nats.bus import NatsBus, Subscription
from algostack.core import codec, sessions
from algostack.core.backoff import Backoff, cancel_and_wait, retry_async
from algostack.core.desk_risk import DeskLimits, DeskRisk
from algostack.core.events import DeskStatus, Heartbeat, decode_event, encode_event
from algostack.core.execution import (
    VENUE_CID_PREFIX,
    Attributed,
    BatchBook,
    Execution,
    OverfillError,
)
from algostack.core.market import Bar
from algostack.core.market_bus import BusMessage
from algostack.core.naming import kill_subject, safe_token
from algostack.core.orders import OrderIntent, OrderReport
from algostack.core.risk import RiskEvent
from algostack.errors import RetryableError
from algostack.services import freeze_long_lived
from algostack.services.gateway.state import FSYNC_EVERY_S, BatchRecord, GatewayState, StateFile
from algostack.services.gateway.venue import BarHistory, Venue, VenueOrder, VenueUpdate

log = logging.getLogger("algostack.gateway")

BATCH_WINDOW_S = 0.002
RECONCILE_EVERY_S = 5.0
ACCOUNT_EVERY_S = 30.0
STATUS_EVERY_S = 1.0
_NONE: frozenset[str] = frozenset()
"""Message ids remembered to drop the second copy of an intent (live and durable paths)."""
MARKET_WAIT_S = 60.0
"""How long the gateway waits at start for the ingest to create the MARKET stream."""
SAVE_AFTER_S = 0.05
"""How soon the state is saved after fills were booked (coalesced; not write-ahead)."""


def status_subject(env: str) -> str:
    """``algostack.<env>.gateway.status``: the desk snapshot for the dashboard."""
    return f"algostack.{env}.gateway.status"


@dataclass
class _Batch:
    book: BatchBook
    record: BatchRecord


@dataclass
class _Open:
    """Intents of one symbol and bar waiting for their batch to close."""

    intents: list[OrderIntent] = field(default_factory=list)
    members: set[str] = field(default_factory=set)
    """The models with an intent in it."""
    timer: asyncio.TimerHandle | None = None


class GatewayService:
    """Run the gateway until ``stop()`` (see the module docstring)."""

    def __init__(
        self,
        bus: NatsBus,
        venue: Venue,
        history: BarHistory,
        *,
        state_dir: Path,
        env: str = "local",
        limits: DeskLimits | None = None,
        batch_window_s: float = BATCH_WINDOW_S,
        reconcile_every_s: float = RECONCILE_EVERY_S,
        account_every_s: float = ACCOUNT_EVERY_S,
        status_every_s: float = STATUS_EVERY_S,
        fsync: bool = True,
    ) -> None:
        self.bus = bus
        self.venue = venue
        self.history = history
        self.env = env
        self.batch_window_s = batch_window_s
        self.reconcile_every_s = reconcile_every_s
        self.account_every_s = account_every_s
        self.status_every_s = status_every_s
        self.desk = DeskRisk(limits or DeskLimits(), on_event=self._on_risk_event)
        self.file = StateFile(state_dir, fsync=fsync)
        self.state = GatewayState()
        self.models: dict[str, str] = {}
        self._trading: dict[str, set[str]] = {}
        """Symbol -> the models known to trade it."""
        self.seen: set[str] = set()
        self.books: dict[str, dict[str, int]] = {}
        self.batches: dict[str, _Batch] = {}
        self.by_venue_cid: dict[str, str] = {}
        self.finished_cum: dict[str, int] = {}
        """Venue client order id -> the shares booked when its batch finished (this run)."""
        self.open: dict[tuple[str, int], _Open] = {}
        self.waiting: dict[str, deque[str]] = {}
        self.working: dict[str, str] = {}
        """Symbol -> the batch whose venue order is open there (at most one)."""
        self.pending: dict[str, int] = {}
        """Symbol -> signed shares taken and not filled or closed yet."""
        self.reconciliation: dict[str, str] = {}
        self.counters: dict[str, int] = {
            "intents": 0,
            "refused": 0,
            "malformed": 0,
            "batches": 0,
            "venue_orders": 0,
            "crossed_shares": 0,
            "fills": 0,
            "foreign_updates": 0,
            "late_updates": 0,
            "duplicates": 0,
        }
        self.day: date | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._subs: list[Subscription] = []
        self._psub: Any = None
        self._dispatching = asyncio.Lock()
        self._wake = asyncio.Event()
        self._dirty = False
        self._save_handle: asyncio.TimerHandle | None = None
        self._last_intent: Any = None
        self._placing: set[asyncio.Task[None]] = set()
        self._flattening = False
        self.failure: BaseException | None = None
        self.ready = asyncio.Event()

    # -- start -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Restore, connect the venue, follow bars, heartbeats and the kill switch, consume."""
        saved = self.file.load()
        if saved is not None:
            self._restore(saved)
            self.seen = self.file.load_seen()
        await channel.ensure_orders_stream(self.bus)
        env = self.env
        self._subs.append(await self.bus.subscribe(kill_subject(env), self._on_kill))
        self._subs.append(
            await self.bus.subscribe(f"algostack.{env}.trader.*.heartbeat", self._on_heartbeat)
        )
        await self._follow_bars()
        await self.venue.start(self._on_update, self._on_venue_ready)
        await self._refresh_account()
        for key in sorted(self.open):  # batches open at the crash: their members are final
            self._close_open(key)
        self._psub = await channel.push_consumer(
            self.bus, channel.GATEWAY_CONSUMER, "orders.intent.>", self._on_intent
        )
        self._tasks += [
            asyncio.create_task(self._dispatch_loop()),
            asyncio.create_task(self._every(self.reconcile_every_s, self.reconcile)),
            asyncio.create_task(self._every(self.account_every_s, self._refresh_account)),
            asyncio.create_task(self._every(self.status_every_s, self.publish_status)),
            asyncio.create_task(self._every(FSYNC_EVERY_S, self._fsync)),
        ]
        self._wake.set()
        self.ready.set()
        log.info(
            "gateway trading: venue %s, %d model(s) known, %d batch(es) resumed",
            self.venue.name,
            len(self.models),
            len(self.batches),
            extra={"fields": {"venue": self.venue.name}},
        )
        from algostack.services.node import notify_ready  # systemd's Type=notify on AWS

        notify_ready(f"gateway trading: venue {self.venue.name}")

    async def _follow_bars(self) -> None:
        """Every bar of the day's MARKET stream (from its start, then live), in order."""

        async def on_bar(msg: BusMessage) -> None:
            try:
                event = codec.decode(msg.data)
            except msgspec.DecodeError:
                return
            if type(event) is Bar:
                await self.on_bar(event)

        async def subscribe() -> Subscription:
            # StreamMissingError (retryable) until the ingest has created the stream
            return await self.bus.ordered_subscribe([codec.subject_for("bars", ">")], on_bar)

        def on_retry(n: int, exc: BaseException, delay: float) -> None:
            if n == 1:
                log.info("waiting for the MARKET stream: %s", exc)

        sub = await retry_async(
            subscribe, backoff=Backoff(0.1, 1.5, 1.0), deadline_s=MARKET_WAIT_S, on_retry=on_retry
        )
        self._subs.append(sub)

    def _restore(self, saved: GatewayState) -> None:
        self.state = saved
        self.day = date.fromisoformat(saved.day) if saved.day else None
        if self.day is not None:
            self.desk.reset_day(self.day)
        self.books = {m: dict(b) for m, b in saved.books.items()}
        for model, symbol in saved.models.items():
            self._know(model, symbol)
        self.counters.update(saved.counters)
        for intent in saved.open:
            key = (intent.symbol, intent.bar_ts)
            entry = self.open.setdefault(key, _Open())
            entry.intents.append(intent)
            entry.members.add(intent.model)
            self.pending[intent.symbol] = self.pending.get(intent.symbol, 0) + intent.signed_qty
        for rec in saved.batches:
            book = BatchBook(rec.batch_id, rec.intents, self.venue.rules)
            replayed: list[Attributed] = []
            if rec.crossed is not None:
                replayed += book.cross(*rec.crossed)
            for ex in rec.executions:
                replayed += book.execute(ex)
            if rec.close_reason is not None:
                book.close(rec.close_reason)
            batch = _Batch(book, rec)
            self.batches[rec.batch_id] = batch
            self.by_venue_cid[book.venue_client_order_id] = rec.batch_id
            for it in rec.intents:
                left = book.remaining(it.client_order_id) if rec.close_reason is None else 0
                self.pending[it.symbol] = self.pending.get(it.symbol, 0) + left * it.side.sign
            if rec.placed and not book.done and rec.close_reason is None:
                self.working[book.symbol] = rec.batch_id
            elif not rec.placed:
                self.waiting.setdefault(book.symbol, deque()).append(rec.batch_id)
        self.desk.restore(saved.desk)
        hold = getattr(self.venue, "hold", None)
        if hold is not None:  # the simulator resumes holding the desk's books
            hold(self.account_books())

    # -- intents ---------------------------------------------------------------------------

    async def _on_intent(self, msg: Any) -> None:
        """An intent from the durable consumer, in order (acked once the state holds it)."""
        self._last_intent = msg
        reports = self.take_intent(msg.subject, msg.data)
        if reports:
            await self._publish(reports)
        self._wake.set()

    def take_intent(self, subject: str, data: bytes) -> list[OrderReport]:
        """Check one intent and batch it; the refusal reports to send (none when taken)."""
        token = subject.rsplit(".", 1)[-1]
        try:
            intent = channel.decode_intent(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.counters["malformed"] += 1
            log.error("malformed intent on %s dropped: %s", subject, exc)
            return []
        cid = intent.client_order_id
        if cid in self.seen:
            self.counters["duplicates"] += 1
            return []
        self.counters["intents"] += 1
        self._roll_day(intent.bar_ts)
        self.seen.add(cid)
        self.file.append_seen(cid)
        self._dirty = True
        reason = ""
        known = self.models.get(intent.model)
        if safe_token(intent.model) != token:
            reason = f"intent of model {intent.model} sent on {subject}"
        elif known is not None and known != intent.symbol:
            reason = f"model {intent.model} trades {known}, not {intent.symbol}"
        elif intent.qty <= 0:
            reason = f"order quantity must be positive, got {intent.qty}"
        else:
            last = self.history.last(intent.symbol)
            price = intent.price or (last.close if last is not None else 0.0)
            verdict = self.desk.check(intent, pending=self.pending, price=price)
            if not verdict.approved:
                reason = f"desk risk: {verdict.reason}"
        if reason:
            self.counters["refused"] += 1
            log.warning(
                "intent %s refused: %s",
                cid,
                reason,
                extra={"fields": {"model": intent.model, "symbol": intent.symbol}},
            )
            return [
                OrderReport(
                    kind="closed",
                    report_id=f"refused:{cid}",
                    client_order_id=cid,
                    model=intent.model,
                    unfilled=intent.qty,
                    reason=reason,
                )
            ]
        sym = intent.symbol
        self.pending[sym] = self.pending.get(sym, 0) + intent.signed_qty
        key = (sym, intent.bar_ts)
        entry = self.open.get(key)
        if entry is None:
            entry = self.open[key] = _Open()
            loop = asyncio.get_running_loop()
            entry.timer = loop.call_later(self.batch_window_s, self._close_by_timer, key)
        entry.intents.append(intent)
        entry.members.add(intent.model)
        if self._trading.get(sym, _NONE) <= entry.members:  # every model of the symbol is in
            self._close_open(key)
        return []

    def _close_by_timer(self, key: tuple[str, int]) -> None:
        if key in self.open:
            self._close_open(key)
            self._wake.set()

    def _close_open(self, key: tuple[str, int]) -> None:
        """Close the batch of ``key`` (and first every open batch of the symbol's earlier
        bars: a later bar never goes to the venue before an earlier one)."""
        sym, bar_ts = key
        for earlier in sorted(k for k in self.open if k[0] == sym and k[1] < bar_ts):
            self._close_one(earlier)
        self._close_one(key)

    def _close_one(self, key: tuple[str, int]) -> None:
        entry = self.open.pop(key)
        if entry.timer is not None:
            entry.timer.cancel()
        self.state.batch_seq += 1
        batch_id = f"{safe_token(key[0])}-{key[1] // 1_000_000_000}-{self.state.batch_seq}"
        book = BatchBook(batch_id, entry.intents, self.venue.rules)
        rec = BatchRecord(batch_id=batch_id, intents=list(entry.intents))
        self.batches[batch_id] = _Batch(book, rec)
        self.by_venue_cid[book.venue_client_order_id] = batch_id
        queue = self.waiting.setdefault(book.symbol, deque())
        at = len(queue)  # in bar order: a late batch of an earlier bar goes first
        while at and self.batches[queue[at - 1]].book.bar_ts > book.bar_ts:
            at -= 1
        queue.insert(at, batch_id)
        self.counters["batches"] += 1
        self.counters["crossed_shares"] += book.crossed
        self._dirty = True

    def _roll_day(self, ts: int) -> None:
        day = sessions.new_york_date_of_ns(ts)
        if self.day is None or day > self.day:
            if self.day is not None:
                self.seen.clear()
                self.file.clear_seen()
            self.day = day
            account = self.desk.account
            self.desk.reset_day(day)
            if account is not None:  # the day's starting day-trade count
                self.desk.on_account(account)
            self._flattening = False

    # -- placing ---------------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            await self._wake.wait()
            self._wake.clear()
            await self.dispatch()

    async def dispatch(self) -> None:
        """Place what may be placed: per symbol, the oldest waiting batch, when nothing of
        the desk is open there; a batch that nets to zero crosses at the next bar's open.

        One write-ahead save covers every order of the pass (a restart knows each order and
        its id) and every intent taken so far, which are then acked; a pass that places
        nothing leaves the save to ``_save_soon`` (a burst of intents costs one save). Each
        order is placed in a task of its own, so symbols go out concurrently.
        """
        async with self._dispatching:
            crosses: list[tuple[_Batch, list[Attributed]]] = []
            placing: list[_Batch] = []
            for sym in list(self.waiting):
                queue = self.waiting[sym]
                while queue and sym not in self.working:
                    batch = self.batches[queue[0]]
                    book = batch.book
                    if book.venue_side is None:
                        bar = self.history.first_after(sym, book.bar_ts)
                        if bar is None:
                            break
                        queue.popleft()
                        batch.record.crossed = (bar.open, bar.ts)
                        crosses.append((batch, book.cross(bar.open, bar.ts)))
                        continue
                    if not self.venue.ready:
                        break
                    queue.popleft()
                    self.working[sym] = book.batch_id
                    batch.record.placed = True
                    placing.append(batch)
                if not queue:
                    self.waiting.pop(sym, None)
            if placing:
                self._save()  # write-ahead, then the intents it holds may be acked
                self._ack_intents()
            elif self._dirty or self._last_intent is not None:
                self._save_soon()  # nothing goes out: one save for a burst of intents
            for batch, fills in crosses:
                await self._book(batch, fills, [])
            for batch in placing:  # each in its own task: a slow reply holds no other symbol
                task = asyncio.get_running_loop().create_task(self._place_batch(batch))
                self._placing.add(task)
                task.add_done_callback(self._placing.discard)

    async def _place_batch(self, batch: _Batch) -> None:
        book = batch.book
        self.counters["venue_orders"] += 1
        refusal = await self._place(book)
        if refusal:
            self.working.pop(book.symbol, None)
            batch.record.close_reason = refusal
            await self._book(batch, [], book.close(f"broker refused: {refusal}"))
            self._wake.set()

    async def _place(self, book: BatchBook) -> str:
        order = _venue_order(book)
        try:
            return await self.venue.place(order)
        except RetryableError as exc:
            # Unknown outcome: the order stays working; the next sync tells what happened.
            log.warning("venue order %s not confirmed: %s", order.client_order_id, exc)
            return ""

    # -- venue updates ---------------------------------------------------------------------

    def _late_update(self, u: VenueUpdate) -> None:
        """An update of an order the desk finished: a repeat (the stream and the sync both
        tell a fill) is counted; more shares than were booked is an error, and the next
        reconciliation halts the symbol on the difference."""
        booked = self.finished_cum.get(u.client_order_id, 0)
        if u.cum_qty <= booked:
            self.counters["late_updates"] += 1
            log.debug("repeated update of finished order %s (%d)", u.client_order_id, u.cum_qty)
            return
        self.counters["foreign_updates"] += 1
        log.error(
            "venue reports %d shares for finished order %s, %d were booked: the difference "
            "is in no model's book",
            u.cum_qty,
            u.client_order_id,
            booked,
        )

    async def _on_update(self, u: VenueUpdate) -> None:
        batch_id = self.by_venue_cid.get(u.client_order_id)
        if batch_id is None and u.client_order_id.startswith(VENUE_CID_PREFIX):
            # The desk's, finished before this process started (the state keeps only the
            # unfinished): what it booked is in the books; reconciliation checks the rest.
            self.counters["late_updates"] += 1
            log.debug("update of desk order %s from before this start", u.client_order_id)
            return
        if batch_id is None:
            self.counters["foreign_updates"] += 1
            log.warning(
                "update for an order the desk did not place: %s %d", u.client_order_id, u.cum_qty
            )
            return
        if batch_id not in self.batches:
            self._late_update(u)
            return
        batch = self.batches[batch_id]
        book, rec = batch.book, batch.record
        fills: list[Attributed] = []
        delta = u.cum_qty - rec.venue_cum
        if delta > 0:
            price = (u.cum_value - rec.venue_value) / delta
            ex = Execution(f"c{u.cum_qty}", delta, price, u.ts)
            try:
                fills = book.execute(ex)
            except (OverfillError, ValueError) as exc:
                log.error("venue update not booked: %s", exc)
                self.desk.halt(book.symbol, f"venue reported more than ordered: {exc}")
                return
            rec.executions.append(ex)
            rec.venue_cum, rec.venue_value = u.cum_qty, u.cum_value
        short: list[tuple[OrderIntent, int]] = []
        if u.done and rec.close_reason is None and not book.done:
            rec.close_reason = u.reason or "the venue ended the order"
            short = book.close(rec.close_reason)
        await self._book(batch, fills, short)
        if u.done or book.done:
            if self.working.get(book.symbol) == batch_id:
                del self.working[book.symbol]
            self._wake.set()

    async def _book(
        self, batch: _Batch, fills: Sequence[Attributed], short: Sequence[tuple[OrderIntent, int]]
    ) -> None:
        """Book attributed fills and shortfalls, send their reports, then save."""
        reports = []
        for a in fills:
            f = a.fill
            held = self.books.setdefault(f.model, {})
            held[f.symbol] = held.get(f.symbol, 0) + f.signed_qty
            self.pending[f.symbol] = self.pending.get(f.symbol, 0) - f.signed_qty
            self.desk.on_fill(f)
            self.counters["fills"] += 1
            reports.append(
                OrderReport(
                    kind="fill",
                    report_id=a.fill_id,
                    client_order_id=f.client_order_id,
                    model=f.model,
                    fill=f,
                )
            )
        for intent, unfilled in short:
            self.pending[intent.symbol] = self.pending.get(intent.symbol, 0) - (
                unfilled * intent.side.sign
            )
            reports.append(
                OrderReport(
                    kind="closed",
                    report_id=f"{batch.book.batch_id}:closed:{intent.client_order_id}",
                    client_order_id=intent.client_order_id,
                    model=intent.model,
                    unfilled=unfilled,
                    reason=batch.record.close_reason or "",
                )
            )
        await self._publish(reports)
        if batch.book.done or batch.record.close_reason is not None:
            self.batches.pop(batch.book.batch_id, None)
            self.finished_cum[batch.book.venue_client_order_id] = batch.record.venue_cum
        self._save_soon()  # a lost save costs nothing: the venue's sync books it again
        self._check_loss()

    async def _publish(self, reports: Sequence[OrderReport]) -> None:
        async def one(r: OrderReport) -> None:
            payload = channel.encode(r)
            subject = channel.report_subject(r.model)
            await retry_async(
                lambda: channel.publish(self.bus, subject, payload, r.report_id),
                backoff=Backoff(0.05, 2.0, 2.0),
                deadline_s=600.0,
            )

        if reports:
            await asyncio.gather(*(one(r) for r in reports))

    async def _on_venue_ready(self) -> None:
        """The venue (re)connected: look up every working order, then reconcile."""
        if self.ready.is_set():
            await self.reconcile()  # syncs the working orders first
        else:
            await self.venue.sync(self._working_orders())
        self._wake.set()

    def _working_orders(self) -> list[VenueOrder]:
        return [
            _venue_order(self.batches[b].book) for b in self.working.values() if b in self.batches
        ]

    # -- bars, marks, risk -----------------------------------------------------------------

    async def on_bar(self, bar: Bar) -> None:
        """A bar of the day: history, marks, the simulator's fills, crosses waiting for it."""
        if not self.history.add(bar):
            return
        self._roll_day(bar.ts)
        self.desk.on_mark(bar.symbol, bar.close, bar.ts)
        await self.venue.on_bar(bar)
        if bar.symbol in self.waiting:
            self._wake.set()
        self._check_loss()

    def _check_loss(self) -> None:
        if self.desk.loss_breached and not self._flattening:
            self._flattening = True
            reason = (
                f"desk daily loss limit: PnL {self.desk.desk_pnl:,.2f} <= "
                f"-{self.desk.limits.daily_loss_limit:,.2f}: flatten every model"
            )
            log.error(reason)
            asyncio.get_running_loop().create_task(
                self.bus.publish(kill_subject(self.env), reason.encode())
            )

    def _on_risk_event(self, ev: RiskEvent) -> None:
        log.warning("desk risk %s: %s", ev.kind, ev.reason, extra={"fields": {"symbol": ev.symbol}})

    async def _on_kill(self, msg: BusMessage) -> None:
        reason = msg.data.decode("utf-8", "replace")[:200] or "kill switch"
        if not self.desk.killed:
            self.desk.kill(reason)

    async def _on_heartbeat(self, msg: BusMessage) -> None:
        try:
            hb = decode_event(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        if type(hb) is Heartbeat and self.models.get(hb.model) != hb.symbol:
            self._know(hb.model, hb.symbol)
            self._dirty = True

    def _know(self, model: str, symbol: str) -> None:
        """``model`` trades ``symbol`` (its batches wait for it)."""
        old = self.models.get(model)
        if old is not None:
            self._trading.get(old, set()).discard(model)
        self.models[model] = symbol
        self._trading.setdefault(symbol, set()).add(model)

    async def _refresh_account(self) -> None:
        try:
            view = await self.venue.account()
        except RetryableError as exc:
            log.warning("account not read: %s", exc)
            return
        if view is not None:
            self.desk.on_account(view)

    # -- reconciliation --------------------------------------------------------------------

    def account_books(self) -> dict[str, int]:
        """Symbol -> the sum of the model books."""
        out: dict[str, int] = {}
        for held in self.books.values():
            for sym, qty in held.items():
                out[sym] = out.get(sym, 0) + qty
        return {s: q for s, q in sorted(out.items()) if q}

    async def reconcile(self) -> dict[str, str]:
        """Account positions against the sum of the model books, per symbol not in flight.

        A difference halts opening orders in that symbol (a risk event naming the figures);
        a symbol no model trades is reported as foreign and left alone.
        """
        if not self.venue.ready:
            return self.reconciliation
        try:
            await self.venue.sync(self._working_orders())  # what the stream may have missed
            account = await self.venue.positions()
        except RetryableError as exc:
            log.warning("reconciliation skipped: %s", exc)
            return self.reconciliation
        books = self.account_books()
        traded = set(self.models.values()) | {s for h in self.books.values() for s in h}
        in_flight = set(self.working) | set(self.waiting) | {k[0] for k in self.open}
        for sym in sorted(set(account) | set(books) | set(self.reconciliation)):
            if sym in in_flight:
                continue
            acct, booked = account.get(sym, 0), books.get(sym, 0)
            if sym not in traded:
                self.reconciliation[sym] = f"foreign: {acct} shares the desk did not trade"
                continue
            if acct != booked:
                per_model = {m: h[sym] for m, h in self.books.items() if h.get(sym)}
                why = f"account holds {acct}, the model books sum to {booked} ({per_model})"
                if self.reconciliation.get(sym) != f"halted: {why}":
                    log.error("reconciliation: %s %s", sym, why)
                self.reconciliation[sym] = f"halted: {why}"
                self.desk.halt(sym, f"reconciliation: {why}")
            else:
                self.reconciliation[sym] = "ok"
                if sym in self.desk.halted and self.desk.halted[sym].startswith("reconciliation"):
                    self.desk.resume(sym)
        return self.reconciliation

    # -- status ----------------------------------------------------------------------------

    def status(self) -> DeskStatus:
        """The desk as the dashboard shows it."""
        return DeskStatus(
            ts=time.time_ns(),
            venue=self.venue.name,
            venue_ready=self.venue.ready,
            account=self.account_books(),
            books={m: {s: q for s, q in h.items() if q} for m, h in sorted(self.books.items())},
            reconciliation=dict(self.reconciliation),
            halted=dict(self.desk.halted),
            killed=self.desk.killed,
            loss_breached=self.desk.loss_breached,
            desk_pnl=self.desk.desk_pnl,
            day_trades_left=self.desk.day_trades_left,
            working=len(self.working),
            counters=dict(self.counters),
            models=dict(sorted(self.models.items())),
            unplaced=sum(len(o.intents) for o in self.open.values())
            + sum(
                len(self.batches[b].record.intents)
                for q in self.waiting.values()
                for b in q
                if b in self.batches
            ),
        )

    async def publish_status(self) -> None:
        """Publish ``status()`` (core NATS; the dashboard reads it); stop on a venue failure."""
        if self.venue.failure is not None and not self._stop.is_set():
            self.failure = self.venue.failure
            log.error("the venue failed, the gateway stops: %s", self.venue.failure)
            self.stop()
        with contextlib.suppress(Exception):
            await self.bus.publish(status_subject(self.env), encode_event(self.status()))

    # -- state -----------------------------------------------------------------------------

    async def _fsync(self) -> None:
        await asyncio.to_thread(self.file.sync)

    def _save_soon(self) -> None:
        self._dirty = True
        if self._save_handle is None:
            self._save_handle = asyncio.get_running_loop().call_later(
                SAVE_AFTER_S, self._save_if_dirty
            )

    def _save_if_dirty(self) -> None:
        self._save_handle = None
        if self._dirty or self._last_intent is not None:
            self._save()
            self._ack_intents()

    def _ack_intents(self) -> None:
        """The state holds every intent taken so far: ack the durable consumer through them."""
        last, self._last_intent = self._last_intent, None
        if last is not None:
            task = asyncio.get_running_loop().create_task(_ack(last))
            self._placing.add(task)  # kept until done, like the placements
            task.add_done_callback(self._placing.discard)

    def _save(self) -> None:
        st = self.state
        st.day = self.day.isoformat() if self.day else ""
        st.books = self.books
        st.models = self.models
        st.open = [it for entry in self.open.values() for it in entry.intents]
        st.batches = [b.record for b in self.batches.values()]
        st.desk = self.desk.snapshot()
        st.counters = self.counters
        self.file.save(st)
        self._dirty = False

    # -- lifecycle -------------------------------------------------------------------------

    async def _every(self, period_s: float, fn: Any) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), period_s)
            if self._stop.is_set():
                return
            try:
                await fn()
            except Exception as exc:  # a periodic task must never die silently
                log.exception("gateway periodic task failed: %s", exc)

    def stop(self) -> None:
        """Ask the gateway to stop (safe from a signal handler)."""
        self._stop.set()
        self._wake.set()

    async def shutdown(self) -> None:
        """Stop consuming, save the state, close the venue."""
        self._stop.set()
        self._wake.set()
        if self._placing:  # orders on their way: let them land (bounded)
            await asyncio.wait(self._placing, timeout=10.0)
        await cancel_and_wait(self._tasks)
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if self._psub is not None:
            with contextlib.suppress(Exception):
                await self._psub.unsubscribe()
        if self._save_handle is not None:
            self._save_handle.cancel()
        self._save()
        last, self._last_intent = self._last_intent, None
        if last is not None:
            await _ack(last)
        self.file.close()
        await self.publish_status()
        await self.venue.close()
        log.info("gateway stopped", extra={"fields": dict(self.counters)})

    async def run(self) -> None:
        """``start``, wait for ``stop()``, ``shutdown``.

        A task of the gateway that ends first (the dispatch loop could not write the state:
        a full disk) ends the run too, with its error as ``failure``."""
        try:
            await self.start()
            freeze_long_lived()  # imports, connections, the restored state and its ids
            stopped = asyncio.ensure_future(self._stop.wait())
            try:
                await asyncio.wait([stopped, *self._tasks], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
            ended = [t for t in self._tasks if t.done() and not t.cancelled()]
            if self.failure is None and ended and ended[0].exception() is not None:
                self.failure = ended[0].exception()
        finally:
            await self.shutdown()


async def _ack(msg: Any) -> None:
    with contextlib.suppress(nats.errors.Error, TimeoutError):
        await msg.ack()


def _venue_order(book: BatchBook) -> VenueOrder:
    assert book.venue_side is not None, "a batch that nets to zero has no venue order"
    return VenueOrder(
        client_order_id=book.venue_client_order_id,
        symbol=book.symbol,
        side=book.venue_side,
        qty=book.venue_qty,
        bar_ts=book.bar_ts,
    )
