"""Alpaca's ``trade_updates`` websocket: order events of the account, with reconnects.

Speaks the wire protocol directly with ``websockets`` rather than through alpaca-py's
``TradingStream``, because (alpaca-py 0.44, ``alpaca/trading/stream.py``) its ``run()`` calls
``asyncio.run`` and so cannot live inside the gateway's loop, and its reconnect loop has no
hook: nothing runs after a reconnect, so the updates missed meanwhile could not be fetched.

Protocol: connect, send ``{"action":"auth","key":..,"secret":..}``, expect ``authorization``
``authorized``, send ``listen`` for ``trade_updates``, expect ``listening``; then each frame
(binary on paper, text elsewhere, JSON either way) carries one update with its ``event`` and
the full ``order``. There are no sequence numbers and no replay, so ``on_connected`` is
awaited after every listen (the first included) for the caller to read fill activities and
open orders. A fill delivered twice carries one ``execution_id`` and is passed on once.
Keepalive pings (``websockets``' default) find a dead socket; a refused key is fatal.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import msgspec
from websockets.exceptions import WebSocketException

from algostack.adapters.alpaca.trading import (
    BrokerOrder,
    Number,
    WireOrder,
    broker_order,
    float_of,
    shares_of,
)
from algostack.adapters.alpaca.websocket import close_quietly, connect_ws, reconnect_delay
from algostack.adapters.alpaca.wire import auth_message, rfc3339_to_ns
from algostack.core.backoff import Backoff, sleep_unless
from algostack.errors import AuthError, ConfigError, DataError, FatalError, RetryableError

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

log = logging.getLogger(__name__)

PAPER_URL: Final = "wss://paper-api.alpaca.markets/stream"
LIVE_URL: Final = "wss://api.alpaca.markets/stream"
STREAM: Final = "trade_updates"
EVENTS: Final = frozenset(
    {
        "new",
        "fill",
        "partial_fill",
        "canceled",
        "expired",
        "done_for_day",
        "replaced",
        "rejected",
        "pending_new",
        "stopped",
        "pending_cancel",
        "pending_replace",
        "calculated",
        "suspended",
        "order_replace_rejected",
        "order_cancel_rejected",
    }
)
MAX_FRAME_BYTES: Final = 4 * 1024 * 1024


class TradeUpdate(msgspec.Struct, frozen=True):
    """One order event: the order as it stands after it, and the event's own fill (if any)."""

    event: str
    order: BrokerOrder
    """The order after the event (``filled_qty`` is its total so far)."""
    execution_id: str = ""
    price: float = 0.0
    qty: int = 0
    """Shares of this event's fill (0 for an event that is not a fill)."""
    ts: int = 0
    """UTC ns of the update's ``timestamp`` (0 when absent)."""
    position_qty: int | None = None


class _WUpdate(msgspec.Struct):
    event: str
    order: WireOrder
    timestamp: str | None = None
    execution_id: str | None = None
    price: Number = None
    qty: Number = None
    position_qty: Number = None


class _Envelope(msgspec.Struct):
    stream: str
    data: msgspec.Raw = msgspec.Raw(b"null")


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_UPDATE = msgspec.json.Decoder(_WUpdate)


def decode_frame(frame: bytes | str) -> tuple[str, msgspec.Raw]:
    """Split one frame into its ``stream`` name and raw ``data``; ``DataError`` if malformed."""
    try:
        env = _ENVELOPE.decode(frame)
    except msgspec.DecodeError as exc:
        raise DataError(f"trade_updates frame is not a stream message: {exc}") from None
    return env.stream, env.data


def parse_update(data: bytes | msgspec.Raw) -> TradeUpdate:
    """Turn the ``data`` of a ``trade_updates`` message into a ``TradeUpdate``."""
    try:
        w = _UPDATE.decode(data)
        return TradeUpdate(
            event=w.event,
            order=broker_order(w.order),
            execution_id=w.execution_id or "",
            price=float_of(w.price),
            qty=shares_of(w.qty),
            ts=rfc3339_to_ns(w.timestamp) if w.timestamp else 0,
            position_qty=None if w.position_qty in (None, "") else shares_of(w.position_qty),
        )
    except (msgspec.DecodeError, ValueError) as exc:
        raise DataError(f"malformed trade update: {exc}") from None


class TradeUpdatesStream:
    """Delivers the account's order events to ``on_update`` until ``stop()``."""

    def __init__(
        self,
        key_id: str,
        secret_key: str,
        *,
        url: str,
        on_update: Callable[[TradeUpdate], Awaitable[None]],
        on_connected: Callable[[], Awaitable[None]] | None = None,
        on_disconnected: Callable[[], Awaitable[None]] | None = None,
        backoff: Backoff | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        handshake_timeout_s: float = 10.0,
        stable_after_s: float = 60.0,
        remember: int = 100_000,
    ) -> None:
        """``remember``: how many execution ids are kept to drop duplicated fills."""
        if not key_id or not secret_key:
            raise ConfigError("missing Alpaca keys: set APCA_API_KEY_ID and APCA_API_SECRET_KEY")
        self.url = url
        self._key_id = key_id
        self._secret_key = secret_key
        self._on_update = on_update
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._backoff = backoff or Backoff(base=1.0, factor=2.0, cap=30.0)
        self._sleep = sleep
        self._handshake_timeout_s = handshake_timeout_s
        self._stable_after_s = stable_after_s
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        self._remember = remember
        self._unknown_logged: set[str] = set()
        self._stopped = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._closing: asyncio.Task[None] | None = None
        self.connected = False
        """True while authorized and listening."""
        self.connections = 0
        """Successful listens (the first connection and every reconnection)."""
        self.reconnects = 0
        self.duplicates = 0
        """Updates dropped because their ``execution_id`` was already delivered."""
        self.malformed = 0
        self.last_error: str | None = None

    async def run(self) -> None:
        """Connect, listen and deliver until ``stop()``; reconnect with backoff and jitter.

        Raises ``AuthError`` when the keys are refused (never retried) and whatever
        ``on_update`` or a callback raises, except ``RetryableError`` from a callback,
        which ends the connection and is retried like a drop.
        """
        loop = asyncio.get_running_loop()
        while not self._stopped.is_set():
            started = loop.time()
            try:
                ws = await self._open()
                self.connected = True
                self.connections += 1
                if self._on_connected is not None:
                    await self._on_connected()
                await self._read(ws)
            except (RetryableError, OSError, TimeoutError, WebSocketException) as exc:
                self._note(f"{type(exc).__name__}: {exc}")
            finally:
                await self._close_ws()
                if self.connected:
                    self.connected = False
                    if self._on_disconnected is not None:
                        await self._on_disconnected()
            if self._stopped.is_set():
                break
            delay = reconnect_delay(
                self._backoff, loop.time() - started, stable_after_s=self._stable_after_s
            )
            self.reconnects += 1
            log.info("trade_updates reconnecting in %.3f s", delay)
            if await sleep_unless(self._stopped, delay, self._sleep):
                break

    def stop(self) -> None:
        """End ``run()``: close the socket (call from the loop ``run()`` is in)."""
        self._stopped.set()
        ws = self._ws
        if ws is not None:
            self._closing = asyncio.get_running_loop().create_task(ws.close())

    # --- connection -------------------------------------------------------------------------

    async def _open(self) -> ClientConnection:
        ws = await connect_ws(
            self.url,
            timeout_s=self._handshake_timeout_s,
            max_size=MAX_FRAME_BYTES,
            refused="Alpaca trade_updates refused the upgrade",
        )
        self._ws = ws
        try:
            async with asyncio.timeout(self._handshake_timeout_s):
                await ws.send(json.dumps(auth_message(self._key_id, self._secret_key)))
                data = await self._expect(ws, "authorization")
                if data.get("status") != "authorized":
                    raise AuthError(
                        f"Alpaca trade_updates refused the keys ({data.get('status')!r}): check "
                        "APCA_API_KEY_ID/APCA_API_SECRET_KEY and paper vs live"
                    )
                listen = {"action": "listen", "data": {"streams": [STREAM]}}
                await ws.send(json.dumps(listen))
                data = await self._expect(ws, "listening")
        except TimeoutError:
            raise RetryableError("no reply from trade_updates during the handshake") from None
        if STREAM not in (data.get("streams") or []):
            raise FatalError(f"Alpaca did not listen to {STREAM}: {data}")
        log.info("trade_updates listening", extra={"fields": {"url": self.url}})
        return ws

    async def _expect(self, ws: ClientConnection, stream: str) -> dict[str, Any]:
        """Read frames until the control message ``stream``; updates before it are delivered."""
        while True:
            name, raw = self._decode(await ws.recv())
            if name == stream:
                data = json.loads(bytes(raw))
                return data if isinstance(data, dict) else {}
            if name == STREAM:
                await self._deliver(raw)

    async def _read(self, ws: ClientConnection) -> None:
        async for frame in ws:
            name, raw = self._decode(frame)
            if name == STREAM:
                await self._deliver(raw)
        raise RetryableError("stream closed by the server")

    def _decode(self, frame: bytes | str) -> tuple[str, msgspec.Raw]:
        try:
            return decode_frame(frame)
        except DataError as exc:
            self.malformed += 1
            log.warning("trade_updates: %s", exc)
            return "", msgspec.Raw(b"null")

    async def _deliver(self, raw: msgspec.Raw) -> None:
        try:
            update = parse_update(raw)
        except DataError as exc:
            self.malformed += 1
            log.warning("trade_updates: %s", exc)
            return
        if update.event not in EVENTS and update.event not in self._unknown_logged:
            self._unknown_logged.add(update.event)
            log.warning("trade_updates: unknown event %r passed on as is", update.event)
        xid = update.execution_id
        if xid:
            if xid in self._seen:
                self.duplicates += 1
                return
            self._seen.add(xid)
            self._seen_order.append(xid)
            if len(self._seen_order) > self._remember:
                self._seen.discard(self._seen_order.popleft())
        self._backoff.reset()
        await self._on_update(update)

    def _note(self, reason: str) -> None:
        self.last_error = reason
        if not self._stopped.is_set():
            log.warning("trade_updates lost: %s", reason)

    async def _close_ws(self) -> None:
        ws, self._ws = self._ws, None
        await close_quietly(ws)
