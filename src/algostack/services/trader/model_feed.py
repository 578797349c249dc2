"""One model's market feed inside the trader: the live path, the durable path, and their lock.

``ModelFeed`` hands every message of the model's subjects to ``handle(subject, data,
headers)`` exactly once and in publish order (``adapters/nats/feed_consumer.py`` explains why that
holds):

- live: a core-NATS subscription per subject; ``LiveGate.take_live`` says whether the
  message is the next one, and if so it is handled at once;
- durable: the model's JetStream consumer (``FeedConsumer``). It reads (``read_pass``) when
  the live path passed a message over, until it has caught up and the gate opens again,
  and when the feed has been quiet for ``follow_interval_s`` (so the acks catch up while
  nothing is at stake). While the live path takes everything it reads nothing: the ingest
  tells the live path where each message's predecessor was stored (``LiveGate.safe_seq``),
  so commits still record an exact resume point; the consumer is moved up to the last
  commit every ``reposition_s``.

Both paths hold ``lock`` from "take" to "handled"; a commit takes it too, to snapshot the
model between two messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from algostack.adapters.nats.bus import NatsBus, Subscription
from algostack.adapters.nats.feed_consumer import Delivery, FeedConsumer
from algostack.core.backoff import Backoff, retry_async, sleep_unless
from algostack.core.live_gate import LiveGate
from algostack.core.market_bus import BusMessage
from algostack.errors import AlgostackError, RetryableError

log = logging.getLogger("algostack.trader.feed")

FOLLOW_INTERVAL_S = 1.0
"""While the live path takes everything, how often the durable path looks up."""
CATCH_UP_S = 0.002
"""How soon it fetches again while the live path waits for a message it passed over."""
FETCH_SLICE = 8
"""Messages per durable fetch: the most a live message can wait behind (~10 µs each)."""
REPOSITION_S = 30.0
"""While live, how often the durable consumer is moved up to the last commit."""

Handler = Callable[[str, bytes, Any], Awaitable[None]]


class ModelFeed:
    """The live and durable paths of one model; ``start`` it, then ``follow()`` in a task."""

    def __init__(
        self,
        key: str,
        handle: Handler,
        stop: asyncio.Event,
        *,
        follow_interval_s: float = FOLLOW_INTERVAL_S,
        reposition_s: float = REPOSITION_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        backoff: Backoff | None = None,
    ) -> None:
        """``sleep`` waits out a failed fetch's ``backoff`` (default 10 ms to 1 s, jittered;
        ``stop`` cuts it short)."""
        self.key = key
        self._sleep = sleep
        self._backoff = backoff or Backoff(base=0.01, cap=1.0, floor=0.005)
        self._handle = handle
        self._stop = stop
        self.follow_interval_s = follow_interval_s
        self.reposition_s = reposition_s
        self.gate = LiveGate()
        self.lock = asyncio.Lock()
        """Held while a message is taken and handled: the two paths never interleave."""
        self.kick = asyncio.Event()
        """Set when the live path passed a message over: the durable path fetches at once."""
        self.consumer: FeedConsumer | None = None
        self.live_subs: list[Subscription] = []
        self.last_msg: Delivery | None = None
        """The last durable delivery handled: what the next commit acks."""
        self.acked_seq = 0
        self.committed_seq = 0
        """The resume point the last commit made durable (a stream sequence)."""
        self.live_at = 0.0
        """``time.monotonic()`` when the live path last took a message."""
        self.fetch_failures = 0
        self._repositioned = 0.0

    async def start(
        self,
        bus: NatsBus,
        subjects: Sequence[str],
        start_seq: int,
        *,
        live: bool = True,
        ack_wait_s: float = 30.0,
    ) -> None:
        """Hold the durable consumer from ``start_seq`` (everything before it is committed)
        and subscribe the live path (unless ``live`` is false)."""
        self.committed_seq = self.acked_seq = self.gate.safe_seq = start_seq - 1
        self._repositioned = time.monotonic()
        self.consumer = await bus.feed_consumer(
            self.key, subjects, start_seq=start_seq, ack_wait_s=ack_wait_s
        )
        if live:
            self.live_subs = [await bus.subscribe(subj, self.on_live) for subj in subjects]

    async def on_live(self, msg: BusMessage) -> None:
        """A message from the live subscription."""
        if self._stop.is_set():
            return
        gate = self.gate
        async with self.lock:
            if gate.take_live(msg.subject, msg.headers):
                self.live_at = time.monotonic()
                await self._handle(msg.subject, msg.data, msg.headers)
            elif not gate.open:
                self.kick.set()  # passed over: the durable path brings it, soon

    async def follow(self) -> None:
        """The durable path, until ``stop`` is set (run it in a task)."""
        gate, stop, interval = self.gate, self._stop, self.follow_interval_s
        while not stop.is_set():
            self.kick.clear()
            if gate.open:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.kick.wait(), interval)
                if stop.is_set():
                    return
                if gate.open and time.monotonic() - self.live_at < interval:
                    await self.reposition(self.reposition_s)
                    continue
            await self.read_pass()
            if not gate.open:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.kick.wait(), CATCH_UP_S)

    async def read_pass(self) -> None:
        """Read the durable consumer from the last commit on until nothing is pending.

        In slices of ``FETCH_SLICE``, with the loop running between them, so a live
        message never waits behind more than one slice. The gate opens at the end when the
        live path no longer waits for anything.
        """
        gate, lock, stop = self.gate, self.lock, self._stop
        while not stop.is_set():
            self._backoff.reset()
            batch = await retry_async(
                self._fetch,
                backoff=self._backoff,
                deadline_s=math.inf,  # until it succeeds or ``stop`` is set
                on_retry=self._fetch_failed,
                sleep=self._wait,
            )
            if stop.is_set():
                return
            self.fetch_failures = 0
            for d in batch:
                if stop.is_set():
                    return  # not acked: redelivered to the next process
                async with lock:
                    if gate.take_durable(d.subject, d.headers, d.stream_seq):
                        await self._handle(d.subject, d.data, d.headers)
                    self.last_msg = d
            if batch and batch[-1].num_pending:
                await asyncio.sleep(0)  # more pending: the next slice after the loop ran
                continue
            gate.caught_up()
            return

    async def _fetch(self) -> list[Delivery]:
        """One slice of the durable consumer (``[]`` once stopping). A lost connection
        (nats-py reconnects by itself), no answer or a 409 is a ``RetryableError``."""
        consumer = self.consumer
        assert consumer is not None
        if self._stop.is_set():
            return []
        try:
            await self.reposition(0.0)
            batch = await consumer.fetch(FETCH_SLICE)
        except AlgostackError:
            raise
        except Exception as exc:
            raise RetryableError(f"{type(exc).__name__}: {exc}") from exc
        if not batch and consumer.status != "404":  # no answer, or 409 (e.g. deleted)
            raise RetryableError(f"no messages and status {consumer.status or 'none'}")
        return batch

    async def _wait(self, delay: float) -> None:
        await sleep_unless(self._stop, delay, self._sleep)

    def _fetch_failed(self, attempt: int, exc: BaseException, delay: float) -> None:
        """Count a failed fetch; log the first and every 100th."""
        self.fetch_failures = attempt
        if attempt == 1 or attempt % 100 == 0:
            log.warning(
                "durable fetch failed (%d in a row): %s",
                attempt,
                exc,
                extra={"fields": {"model": self.key}},
            )

    async def reposition(self, every_s: float) -> None:
        """Move the durable consumer up to the last commit (at most every ``every_s``)."""
        consumer = self.consumer
        start = self.committed_seq + 1
        if consumer is None or start <= consumer.position:
            return
        now = time.monotonic()
        if now - self._repositioned < every_s:
            return
        self._repositioned = now
        await consumer.restart_at(start)
        self.last_msg = None
        self.acked_seq = start - 1

    def commit_point(self) -> tuple[Delivery | None, int]:
        """What a commit taken now covers: (the durable delivery to ack, the resume point).

        Call it with ``lock`` held, with the snapshot of the model."""
        return self.last_msg, self.gate.safe_seq

    async def committed(self, msg: Delivery | None, seq: int) -> None:
        """A commit covering ``commit_point()`` is durable: record it, then ack ``msg``.

        Only the delivery taken with the snapshot is acked: a later one is not covered."""
        self.committed_seq = max(self.committed_seq, seq)
        if msg is not None and msg.stream_seq > self.acked_seq:
            try:
                await msg.ack()
            except Exception as exc:  # a lost connection: the next commit acks again
                log.warning("ack of stream seq %d failed: %s", msg.stream_seq, exc)
                return
            self.acked_seq = msg.stream_seq

    async def close(self) -> None:
        """Stop both paths (the consumer stays on the server with its ack floor)."""
        for sub in self.live_subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self.live_subs = []
        if self.consumer is not None:
            with contextlib.suppress(Exception):
                await self.consumer.close()
