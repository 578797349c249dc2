"""Alpaca v2 stock market-data stream as a ``MarketSource``.

Speaks the wire protocol directly with ``websockets`` rather than through alpaca-py's
``StockDataStream``, because (checked in alpaca-py 0.44, ``alpaca/data/live/websocket.py``):
``run()`` calls ``asyncio.run`` and so cannot live inside the ingest service's loop; its
reconnect policy is fixed (1-30 s backoff, no 90 s wait after 406, no resubscribe hook for a
backfill); its ``_cast`` turns bars, updated bars and daily bars into one ``Bar`` model and
drops ``T``, so they can only be told apart by separate handlers; and it decodes through
``msgpack.unpackb`` into dicts then pydantic models, several times slower than the typed
msgspec decode in ``wire.py``. The protocol itself is small (connected -> auth ->
subscribe -> arrays of messages), so owning it costs little and every error code gets an
explicit behaviour (``wire.ERROR_CODES``).

Lifecycle: connect (``Content-Type: application/msgpack`` like the SDKs), wait for
``connected``, authenticate, subscribe, then yield one batch per data frame. Any drop, 407,
404, 500 or silent socket (nothing for ``silence_timeout_s`` while the market is open)
reconnects with exponential backoff and full jitter; 406 waits at least 90 s; 401, 402, 405,
408-411 raise ``AuthError``/``ConfigError``. After a reconnect it resubscribes and fetches the
minute bars missed during the gap through the ``HistoricalBars`` seam, skipping any bar
already yielded (``last_bar_ts`` per symbol); the NATS ``Nats-Msg-Id`` is the second net.

Receive time: before yielding a batch the source sets ``last_recv_ns`` to the wall time
(``time.time_ns()``, UTC ns) at which the frame holding it came off the socket (a backfill:
when the REST reply came). The ingest stamps it on every message (``Algostack-Recv-Ns``):
the start of the tick-to-decision latency. It is an attribute beside the ``MarketSource``
protocol, read right after each batch, so the protocol itself is unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from algostack.adapters.alpaca import wire
from algostack.adapters.alpaca.historical import (
    DEFAULT_DATA_URL,
    AlpacaHistoricalBars,
    HistoricalBars,
)
from algostack.adapters.alpaca.websocket import close_quietly, connect_ws, reconnect_delay
from algostack.core import sessions
from algostack.core.backoff import Backoff, retry_async, sleep_unless
from algostack.core.market import NS_PER_MIN, Bar, MarketEvent, datetime_to_ts
from algostack.core.source import SourceStats
from algostack.core.symbols import unique_symbols
from algostack.errors import AlgostackError, AuthError, ConfigError, RetryableError

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

    from algostack.config import AlpacaSettings

log = logging.getLogger(__name__)

FEEDS: Final = ("iex", "sip", "delayed_sip", "test")
STREAM_HOST: Final = "wss://stream.data.alpaca.markets"
TEST_SYMBOL: Final = "FAKEPACA"
MAX_FRAME_BYTES: Final = 64 * 1024 * 1024
_KEYS_HINT = "set APCA_API_KEY_ID and APCA_API_SECRET_KEY"


def feed_url(feed: str) -> str:
    """The stream URL of a feed: ``wss://stream.data.alpaca.markets/v2/{feed}``."""
    if feed not in FEEDS:
        raise ConfigError(f"unknown Alpaca feed {feed!r}; expected one of {', '.join(FEEDS)}")
    return f"{STREAM_HOST}/v2/{feed}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AlpacaStreamSource:
    """Market events from Alpaca's v2 stock stream, with reconnect, resubscribe and backfill."""

    name = "alpaca"

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        key_id: str,
        secret_key: str,
        feed: str = "iex",
        url: str | None = None,
        historical: HistoricalBars | None = None,
        silence_timeout_s: float = 30.0,
        market_open: Callable[[datetime], bool] = sessions.is_open,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        backoff: Backoff | None = None,
        channels: Sequence[str] = wire.DEFAULT_CHANNELS,
        use_msgpack: bool = True,
        now: Callable[[], datetime] = _utcnow,
        handshake_timeout_s: float = 10.0,
        wall_ns: Callable[[], int] = time.time_ns,
        backfill_deadline_s: float = 60.0,
        max_backfill_minutes: int = 24 * 60,
        stable_after_s: float = 60.0,
    ) -> None:
        """Validate everything before any connection; raise ``ConfigError`` naming the fix."""
        if not key_id or not secret_key:
            raise ConfigError(f"missing Alpaca keys: {_KEYS_HINT}")
        if feed not in FEEDS:
            raise ConfigError(f"unknown Alpaca feed {feed!r}; expected one of {', '.join(FEEDS)}")
        if not symbols:
            raise ConfigError("no symbols to subscribe to: pass at least one (or '*')")
        try:
            syms = unique_symbols(symbols, wildcard=True)
            wire.check_channels(channels)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if url is None and feed == "test" and set(syms) != {TEST_SYMBOL}:
            raise ConfigError(f"the 'test' feed only carries {TEST_SYMBOL}; got {', '.join(syms)}")
        if url is not None and not url.startswith(("ws://", "wss://")):
            raise ConfigError(f"stream URL must start with ws:// or wss://, got {url!r}")
        if silence_timeout_s <= 0 or handshake_timeout_s <= 0:
            raise ConfigError("silence_timeout_s and handshake_timeout_s must be positive")
        self.symbols: tuple[str, ...] = tuple(syms)
        self.feed = feed
        self.url = url or feed_url(feed)
        self.channels: tuple[str, ...] = tuple(channels)
        self.stats = SourceStats(subscribed=False)
        self.duplicates = 0
        """Bars dropped because one with the same or a later time was already yielded."""
        self.ignored = 0
        """Known message types not used here (LULD, corrections, cancel errors)."""
        self.silences = 0
        """Reconnects caused by a connected but silent socket while the market was open."""
        self.backfill_failures = 0
        self.last_error: str | None = None
        self._key_id = key_id
        self._secret_key = secret_key
        self._historical = historical
        self._owned_historical: AlpacaHistoricalBars | None = None
        self._silence_timeout_s = silence_timeout_s
        self._market_open = market_open
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._backoff = backoff or Backoff(base=1.0, factor=2.0, cap=30.0, rng=self._rng)
        self._msgpack = use_msgpack
        self._now = now
        self._handshake_timeout_s = handshake_timeout_s
        self._backfill_deadline_s = backfill_deadline_s
        self._max_backfill_ns = max_backfill_minutes * NS_PER_MIN
        self._stable_after_s = stable_after_s
        self._ws: ClientConnection | None = None
        self._wall_ns = wall_ns
        self.last_recv_ns = 0
        """Wall time (UTC ns) the frame of the batch just yielded was received."""
        self._closed = asyncio.Event()
        self._lost_at_ns: int | None = None

    @classmethod
    def from_settings(
        cls, settings: AlpacaSettings, symbols: Sequence[str], **kwargs: Any
    ) -> AlpacaStreamSource:
        """Build from ``AlpacaSettings``; ``ConfigError`` names the env vars of missing keys."""
        missing = [
            name
            for name, value in (
                ("APCA_API_KEY_ID", settings.key_id),
                ("APCA_API_SECRET_KEY", settings.secret_key),
            )
            if value is None or not value.get_secret_value()
        ]
        if missing:
            raise ConfigError(f"missing Alpaca keys: set {' and '.join(missing)}")
        assert settings.key_id is not None and settings.secret_key is not None
        key, secret = settings.key_id.get_secret_value(), settings.secret_key.get_secret_value()
        owned: AlpacaHistoricalBars | None = None
        if "historical" not in kwargs:
            owned = AlpacaHistoricalBars(
                key, secret, base_url=settings.data_url or DEFAULT_DATA_URL, feed=settings.feed
            )
            kwargs["historical"] = owned
        source = cls(
            symbols,
            key_id=key,
            secret_key=secret,
            feed=settings.feed,
            url=settings.stream_url,
            **kwargs,
        )
        source._owned_historical = owned
        return source

    # --- public -----------------------------------------------------------------------------

    async def stream(self) -> AsyncIterator[Sequence[MarketEvent]]:
        """Yield one batch per data frame (and one per backfill) until ``aclose()``."""
        had_session = False
        while not self._closed.is_set():
            min_wait: float | None = None
            started = self._clock()
            delivered = False
            try:
                ws, pending = await self._open()
                if had_session:
                    backfill = await self._backfill()
                    if backfill:
                        self.last_recv_ns = self._wall_ns()
                        yield backfill
                had_session = True
                self._lost_at_ns = None
                first = self._accept(pending)
                if first:
                    delivered = True
                    self.last_recv_ns = self._wall_ns()  # came with the handshake
                    yield first
                async for batch in self._read(ws):
                    if not delivered:
                        delivered = True
                        self._backoff.reset()
                    yield batch
            except RetryableError as exc:  # this connection is over: reconnect
                min_wait = exc.retry_after
                self._note_drop(str(exc), warn=True)
            except AlgostackError:
                raise
            except Exception as exc:
                if self._closed.is_set():
                    break
                self._note_drop(f"{type(exc).__name__}: {exc}", warn=True)
            finally:
                await self._close_ws()
            if self._closed.is_set():
                break
            delay = reconnect_delay(
                self._backoff,
                self._clock() - started,
                stable_after_s=self._stable_after_s,
                at_least_s=min_wait or 0.0,
            )
            self.stats.reconnects += 1
            log.info(
                "alpaca stream reconnecting",
                extra={"fields": {"delay_s": round(delay, 3), "attempt": self._backoff.attempt}},
            )
            if await sleep_unless(self._closed, delay, self._sleep):
                break

    def resume_after(self, ts_ns: int) -> None:
        """Live: the stream starts from now whatever the bus holds (gaps are backfilled)."""
        del ts_ns

    async def aclose(self) -> None:
        """Stop: close the socket (``stream()`` then ends) and an owned REST session."""
        self._closed.set()
        await self._close_ws()
        if self._owned_historical is not None:
            await self._owned_historical.aclose()

    # --- connection ---------------------------------------------------------------------------

    async def _open(self) -> tuple[ClientConnection, list[MarketEvent]]:
        """Connect, authenticate and subscribe; return the socket and any early data."""
        headers = {"Content-Type": "application/msgpack"} if self._msgpack else {}
        ws = await connect_ws(
            self.url,
            timeout_s=self._handshake_timeout_s,
            max_size=MAX_FRAME_BYTES,
            max_queue=64,
            headers=headers,
            refused=f"Alpaca stream refused the upgrade: {_KEYS_HINT}",
        )
        self._ws = ws
        pending: list[MarketEvent] = []
        try:
            async with asyncio.timeout(self._handshake_timeout_s):
                await self._expect(ws, "connected", pending)
                await ws.send(
                    wire.encode_client(
                        wire.auth_message(self._key_id, self._secret_key), msgpack=self._msgpack
                    )
                )
                await self._expect(ws, "authenticated", pending)
                await ws.send(
                    wire.encode_client(
                        wire.subscribe_message(self.symbols, self.channels), msgpack=self._msgpack
                    )
                )
                await self._expect(ws, "subscription", pending)
        except TimeoutError:
            raise RetryableError("no reply from the stream during the handshake") from None
        self.stats.subscribed = True
        log.info(
            "alpaca stream subscribed",
            extra={"fields": {"url": self.url, "symbols": len(self.symbols)}},
        )
        return ws, pending

    async def _expect(self, ws: ClientConnection, what: str, pending: list[MarketEvent]) -> None:
        """Read frames until the control message ``what``; act on errors on the way."""
        while True:
            parsed = self._parse(await ws.recv())
            pending.extend(parsed.events)
            for c in parsed.controls:
                if isinstance(c, wire.Error):
                    self._on_error(c)
                elif isinstance(c, wire.Subscription):
                    if what == "subscription":
                        return
                elif c.msg == what:
                    return

    def _on_error(self, err: wire.Error) -> None:
        spec = wire.error_policy(err.code)
        text = f"Alpaca stream error {err.code} ({err.msg or spec.meaning})"
        if spec.hint:
            text += f": {spec.hint}"
        self.last_error = text
        policy = spec.policy
        if policy is wire.Policy.FATAL_AUTH:
            raise AuthError(text)
        if policy is wire.Policy.FATAL_CONFIG:
            raise ConfigError(text)
        if policy is wire.Policy.WAIT_CONNECTION_LIMIT:
            raise RetryableError(text, retry_after=wire.CONNECTION_LIMIT_WAIT_S)
        if policy is wire.Policy.RECONNECT:
            raise RetryableError(text)
        log.warning(text)

    async def _read(self, ws: ClientConnection) -> AsyncIterator[list[MarketEvent]]:
        # One lazily re-armed timer per silence period instead of an ``asyncio.timeout``
        # (a Timeout, a timer handle and two loop look-ups) around every frame: the timer
        # only cancels a ``recv`` that has waited ``timeout`` s (never the consumer of
        # a yielded batch), exactly what the per-frame timeout did.
        timeout = self._silence_timeout_s
        wall_ns = self._wall_ns
        loop = asyncio.get_running_loop()
        current_task = asyncio.current_task
        now = loop.time
        # The task in recv (None between frames), when that recv began, silence fired.
        waiting: list[Any] = [None, 0.0, False]
        handle: asyncio.TimerHandle | None = None

        def watchdog() -> None:
            nonlocal handle
            t = now()
            task = waiting[0]
            if task is not None and t - waiting[1] >= timeout:
                waiting[2] = True
                task.cancel()
                handle = None
                return
            due = (waiting[1] if task is not None else t) + timeout
            # A timer may fire a hair early (uvloop rounds to ms): never spin on it.
            handle = loop.call_at(max(due, t + 0.001), watchdog)

        handle = loop.call_at(now() + timeout, watchdog)
        try:
            while True:
                task = current_task(loop)
                waiting[0], waiting[1] = task, now()
                try:
                    data = await ws.recv()
                except asyncio.CancelledError:
                    if not waiting[2] or task is None or task.uncancel():
                        raise  # not (only) ours: a real cancellation
                    waiting[0], waiting[2] = None, False
                    if self._market_open(self._now()):
                        self.silences += 1
                        raise RetryableError(
                            f"socket connected but silent for {timeout:g} s while the market "
                            "is open"
                        ) from None
                    handle = loop.call_at(now() + timeout, watchdog)
                    continue
                recv_ns = wall_ns()
                waiting[0] = None
                parsed = self._parse(data)
                for c in parsed.controls:
                    if isinstance(c, wire.Error):
                        self._on_error(c)
                if parsed.events:
                    events = self._accept(parsed.events)
                    if events:
                        self.last_recv_ns = recv_ns
                        yield events
        finally:
            if handle is not None:
                handle.cancel()

    def _parse(self, data: bytes | str) -> wire.ParsedFrame:
        parsed = wire.parse_frame(data)
        self.ignored += parsed.ignored
        if parsed.malformed:
            self.stats.malformed += parsed.malformed
            for problem in parsed.problems[:3]:
                log.warning("alpaca stream: malformed message skipped: %s", problem)
        return parsed

    def _accept(self, events: list[MarketEvent]) -> list[MarketEvent]:
        """Drop minute bars already yielded; count what is received."""
        out = self._unseen(events)
        self.stats.received += len(out)
        return out

    def _unseen(self, events: list[MarketEvent]) -> list[MarketEvent]:
        """``events`` without the minute bars at or before the last one yielded of their symbol
        (counted in ``duplicates``); the others become the last. ``events`` itself when none
        is dropped (the usual batch is not copied). The live frames and the backfill ask it."""
        last = self.stats.last_bar_ts
        kept: list[MarketEvent] | None = None
        for i, e in enumerate(events):
            if type(e) is Bar:
                if e.ts <= last.get(e.symbol, -1):
                    self.duplicates += 1
                    if kept is None:
                        kept = events[:i]
                    continue
                last[e.symbol] = e.ts
            if kept is not None:
                kept.append(e)
        return events if kept is None else kept

    def _note_drop(self, reason: str, *, warn: bool) -> None:
        if self._lost_at_ns is None:
            self._lost_at_ns = datetime_to_ts(self._now())
        if warn:
            log.warning("alpaca stream lost: %s", reason)

    async def _close_ws(self) -> None:
        ws, self._ws = self._ws, None
        await close_quietly(ws)

    # --- backfill -----------------------------------------------------------------------------

    async def _backfill(self) -> list[MarketEvent]:
        """Fetch the minute bars of the gap; return those not yet yielded, oldest first."""
        if self._historical is None or "bars" not in self.channels:
            return []
        now_ns = datetime_to_ts(self._now())
        end_ns = now_ns // NS_PER_MIN * NS_PER_MIN  # only minutes that have ended
        lost = self._lost_at_ns if self._lost_at_ns is not None else now_ns
        default_start = lost // NS_PER_MIN * NS_PER_MIN - NS_PER_MIN
        last = self.stats.last_bar_ts
        syms = [s for s in self.symbols if s != "*"] or sorted(last)
        starts = {s: (last[s] + 1 if s in last else default_start) for s in syms}
        if not starts:
            return []
        start_ns = max(min(starts.values()), end_ns - self._max_backfill_ns)
        if start_ns >= end_ns:
            return []
        historical = self._historical

        async def fetch() -> list[Bar]:
            return await historical.minute_bars(syms, start_ns, end_ns)

        try:
            bars = await retry_async(
                fetch,
                backoff=Backoff(base=1.0, cap=10.0, rng=self._rng),
                deadline_s=self._backfill_deadline_s,
                sleep=self._sleep,
                clock=self._clock,
            )
        except AlgostackError as exc:
            self.backfill_failures += 1
            log.error("alpaca backfill failed; gap left to the replay tools: %s", exc)
            return []
        out = self._unseen(
            [
                b
                for b in sorted(bars, key=lambda b: b.ts)
                if b.symbol in starts and b.ts >= starts[b.symbol]
            ]
        )
        self.stats.backfilled += len(out)
        log.info(
            "alpaca backfill done",
            extra={"fields": {"bars": len(out), "start_ns": start_ns, "end_ns": end_ns}},
        )
        return out
