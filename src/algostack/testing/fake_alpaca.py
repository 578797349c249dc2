"""A fake Alpaca market-data server that speaks the real v2 stock-stream protocol.

One loopback port serves both the websocket stream (``/v2/<feed>``) and the historical bars
REST route (``GET /v2/stocks/bars``, through ``websockets``' ``process_request`` hook). It
speaks msgpack to clients that send ``Content-Type: application/msgpack`` and JSON otherwise,
answers ``connected`` / auth / subscription exactly like Alpaca, sends batched data arrays
filtered by each connection's subscription, and fails on demand: any error code, forced
disconnects, silent stalls, raw (malformed) frames, REST 429s.

Run it by hand: ``python -m algostack.testing.fake_alpaca --port 8765 --symbols AAPL,MSFT
--rate 1000`` streams synthetic trades and a bar per symbol every minute.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import msgspec
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from algostack.adapters.alpaca import wire
from algostack.core.market import Bar, MarketEvent, Trade

log = logging.getLogger(__name__)

# Mirrors of trades that Alpaca echoes in every subscription reply.
_ALL_CHANNELS = (*wire.CHANNELS, "corrections", "cancelErrors")
# Error codes after which Alpaca closes the socket.
CLOSING_CODES = frozenset({402, 404, 406, 407, 408, 409, 411, 500})


@dataclass(eq=False)
class _Conn:
    ws: ServerConnection
    msgpack: bool
    authenticated: bool = False
    stalled: bool = False
    subs: dict[str, set[str]] = field(default_factory=lambda: {c: set() for c in wire.CHANNELS})

    def wants(self, channel: str, symbol: str) -> bool:
        s = self.subs[channel]
        return bool(s) and (symbol in s or "*" in s)

    async def send(self, messages: Sequence[dict[str, Any]]) -> None:
        await self.ws.send(wire.encode_frame(messages, msgpack=self.msgpack))


class FakeAlpacaServer:
    """Alpaca's market-data stream and bars route on 127.0.0.1, with failure injection."""

    def __init__(
        self,
        *,
        key_id: str | None = "test-key",
        secret_key: str | None = "test-secret",  # noqa: S107  (a fake's fixed test key)
        host: str = "127.0.0.1",
        port: int = 0,
        feed: str = "iex",
        auth_timeout_s: float = 10.0,
        symbol_limit: int | None = None,
        record_history: bool = True,
    ) -> None:
        """``key_id=None`` accepts any non-empty key pair (for manual runs)."""
        self.key_id = key_id
        self.secret_key = secret_key
        self.host = host
        self.port = port
        self.feed = feed
        self.auth_timeout_s = auth_timeout_s
        self.symbol_limit = symbol_limit
        self.record_history = record_history
        self.history: dict[str, dict[int, Bar]] = {}
        """Bars served by the REST route, per symbol and timestamp."""
        self.connections = 0
        self.auths = 0
        self.subscriptions = 0
        self.messages_sent = 0
        self.frames_sent = 0
        self.rest_requests = 0
        self.rest_queries: list[dict[str, str]] = []
        self.client_headers: list[dict[str, str]] = []
        self._conns: set[_Conn] = set()
        self._auth_failures: list[int] = []
        self._subscribe_failures: list[int] = []
        self._rest_failures: list[tuple[int, float | None]] = []
        self._server: Server | None = None
        self._changed: asyncio.Condition | None = None

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> FakeAlpacaServer:
        """Bind and serve; ``port=0`` picks a free port (see ``.port``)."""
        self._changed = asyncio.Condition()
        self._server = await serve(
            self._handler,
            self.host,
            self.port,
            process_request=self._process_request,
            compression=None,
            max_size=None,
            logger=logging.getLogger("algostack.testing.fake_alpaca.ws"),
        )
        sock = next(iter(self._server.sockets))
        self.port = int(sock.getsockname()[1])
        return self

    async def stop(self) -> None:
        """Close every connection and stop serving."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeAlpacaServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:PORT/v2/<feed>``."""
        return f"ws://{self.host}:{self.port}/v2/{self.feed}"

    @property
    def rest_url(self) -> str:
        """``http://127.0.0.1:PORT``: base URL of the historical bars route."""
        return f"http://{self.host}:{self.port}"

    @property
    def subscribers(self) -> int:
        """Connections currently authenticated with at least one subscription."""
        return sum(1 for c in self._conns if c.authenticated and any(c.subs.values()))

    # --- failure injection --------------------------------------------------------------

    def fail_next_auth(self, code: int, times: int = 1) -> None:
        """Answer the next ``times`` auth requests with error ``code`` (e.g. 402, 406)."""
        self._auth_failures.extend([code] * times)

    def fail_next_subscribe(self, code: int, times: int = 1) -> None:
        """Answer the next ``times`` subscribe requests with error ``code`` (405, 409, 410)."""
        self._subscribe_failures.extend([code] * times)

    def fail_next_rest(
        self, status: int = 429, times: int = 1, retry_after: float | None = None
    ) -> None:
        """Answer the next ``times`` REST requests with HTTP ``status``."""
        self._rest_failures.extend([(status, retry_after)] * times)

    async def inject_error(
        self, code: int, msg: str | None = None, *, close: bool | None = None
    ) -> None:
        """Send ``[{"T":"error","code":code}]`` to every connection; close when Alpaca would."""
        text = msg or wire.error_policy(code).meaning
        for conn in list(self._conns):
            with contextlib.suppress(ConnectionClosed):
                await conn.send([{"T": "error", "code": code, "msg": text}])
                if close if close is not None else code in CLOSING_CODES:
                    await conn.ws.close()

    def drop_connections(self) -> int:
        """Abort every socket without a close frame (the client sees 1006); return how many."""
        conns = list(self._conns)
        for conn in conns:
            conn.ws.transport.abort()
        return len(conns)

    def stall(self) -> None:
        """Keep current connections open but send them nothing more (a silent socket)."""
        for conn in self._conns:
            conn.stalled = True

    async def send_raw(self, data: bytes | str) -> None:
        """Send ``data`` as one frame to every connection (malformed-frame tests)."""
        for conn in list(self._conns):
            with contextlib.suppress(ConnectionClosed):
                await conn.ws.send(data)

    def add_history(self, bars: Iterable[Bar]) -> None:
        """Make ``bars`` available through ``GET /v2/stocks/bars``."""
        for b in bars:
            self.history.setdefault(b.symbol, {})[b.ts] = b

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
        """Wait until ``predicate()`` holds (checked on every state change); TimeoutError else."""
        assert self._changed is not None, "server not started"
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(predicate)

    async def wait_subscribed(self, count: int = 1, timeout_s: float = 5.0) -> None:
        """Wait until ``count`` subscribe requests in total have been answered."""
        await self.wait_until(lambda: self.subscriptions >= count, timeout_s)

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    # --- publishing ---------------------------------------------------------------------

    async def publish(self, events: Sequence[MarketEvent], *, batch: int = 100) -> int:
        """Send ``events`` to each subscribed connection in frames of up to ``batch``.

        Returns the number of messages sent (summed over connections). Bars are recorded
        in the history when ``record_history`` is set, whether or not anyone listens.
        """
        if self.record_history:
            self.add_history(e for e in events if type(e) is Bar)
        sent = 0
        wired: dict[bool, list[dict[str, Any]]] = {}
        for conn in list(self._conns):
            if conn.stalled or not conn.authenticated:
                continue
            if conn.msgpack not in wired:
                wired[conn.msgpack] = [wire.to_wire(e, msgpack=conn.msgpack) for e in events]
            msgs = wired[conn.msgpack]
            picked = [
                m
                for e, m in zip(events, msgs, strict=True)
                if conn.wants(wire.CHANNEL_OF[type(e)], e.symbol)
            ]
            try:
                for i in range(0, len(picked), batch):
                    await conn.send(picked[i : i + batch])
                    self.frames_sent += 1
            except ConnectionClosed:
                continue
            sent += len(picked)
        self.messages_sent += sent
        return sent

    # --- websocket protocol ---------------------------------------------------------------

    async def _handler(self, ws: ServerConnection) -> None:
        headers = ws.request.headers if ws.request is not None else Headers()
        self.client_headers.append({k.lower(): v for k, v in headers.raw_items()})
        use_mp = headers.get("Content-Type", "").lower().startswith("application/msgpack")
        conn = _Conn(ws, use_mp)
        self._conns.add(conn)
        self.connections += 1
        await self._notify()
        try:
            await conn.send([{"T": "success", "msg": "connected"}])
            while True:
                try:
                    timeout_s = None if conn.authenticated else self.auth_timeout_s
                    async with asyncio.timeout(timeout_s):
                        raw = await ws.recv()
                except TimeoutError:
                    await self._error(conn, 404)
                    return
                await self._on_message(conn, raw)
        except ConnectionClosed:
            pass
        finally:
            self._conns.discard(conn)
            await self._notify()

    async def _error(self, conn: _Conn, code: int) -> None:
        await conn.send([{"T": "error", "code": code, "msg": wire.error_policy(code).meaning}])
        if code in CLOSING_CODES:
            await conn.ws.close()

    async def _on_message(self, conn: _Conn, raw: bytes | str) -> None:
        try:
            msg = (
                msgspec.msgpack.decode(raw)
                if isinstance(raw, bytes)
                else msgspec.json.decode(raw.encode())
            )
        except msgspec.DecodeError:
            await self._error(conn, 400)
            return
        action = msg.get("action") if isinstance(msg, dict) else None
        if action == "auth":
            await self._on_auth(conn, msg)
        elif action in ("subscribe", "unsubscribe"):
            await self._on_subscribe(conn, msg, action == "subscribe")
        else:
            await self._error(conn, 400)

    async def _on_auth(self, conn: _Conn, msg: dict[str, Any]) -> None:
        if conn.authenticated:
            await self._error(conn, 403)
            return
        if self._auth_failures:
            await self._error(conn, self._auth_failures.pop(0))
            return
        key, secret = msg.get("key"), msg.get("secret")
        if self.key_id is None:
            ok = bool(key) and bool(secret)
        else:
            ok = key == self.key_id and secret == self.secret_key
        if not ok:
            await self._error(conn, 402)
            return
        conn.authenticated = True
        self.auths += 1
        await conn.send([{"T": "success", "msg": "authenticated"}])
        await self._notify()

    async def _on_subscribe(self, conn: _Conn, msg: dict[str, Any], add: bool) -> None:
        if not conn.authenticated:
            await self._error(conn, 401)
            return
        if self._subscribe_failures:
            await self._error(conn, self._subscribe_failures.pop(0))
            return
        for ch in wire.CHANNELS:
            syms = msg.get(ch) or []
            if not isinstance(syms, list) or not all(isinstance(s, str) for s in syms):
                await self._error(conn, 400)
                return
            if add:
                conn.subs[ch].update(syms)
            else:
                conn.subs[ch].difference_update(syms)
        if self.symbol_limit is not None:
            distinct = set().union(*conn.subs.values())
            if len(distinct) > self.symbol_limit:
                await self._error(conn, 405)
                return
        reply: dict[str, Any] = {"T": "subscription"}
        for ch in _ALL_CHANNELS:
            source = "trades" if ch in ("corrections", "cancelErrors") else ch
            reply[ch] = sorted(conn.subs[source])
        self.subscriptions += 1
        await conn.send([reply])
        await self._notify()

    # --- REST ------------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path, _, query = request.path.partition("?")
        if request.headers.get("Upgrade", "").lower() == "websocket":
            if path.startswith(("/v2/", "/v1beta")):
                return None
            return _json_response(404, {"message": "not found"})
        if path != "/v2/stocks/bars":
            return _json_response(404, {"message": "not found"})
        self.rest_requests += 1
        params = dict(urllib.parse.parse_qsl(query))
        self.rest_queries.append(params)
        if self._rest_failures:
            status, retry_after = self._rest_failures.pop(0)
            extra = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            return _json_response(status, {"message": "too many requests"}, extra)
        key = request.headers.get("APCA-API-KEY-ID")
        secret = request.headers.get("APCA-API-SECRET-KEY")
        ok = (
            bool(key and secret)
            if self.key_id is None
            else (key == self.key_id and secret == self.secret_key)
        )
        if not ok:
            return _json_response(401, {"message": "unauthorized."})
        try:
            return _json_response(200, self._bars_page(params))
        except ValueError as exc:
            return _json_response(422, {"message": str(exc)})

    def _bars_page(self, params: dict[str, str]) -> dict[str, Any]:
        if params.get("timeframe") != "1Min":
            raise ValueError("only timeframe=1Min is served by the fake")
        symbols = [s for s in params.get("symbols", "").split(",") if s]
        if not symbols:
            raise ValueError("symbols is required")
        start = wire.rfc3339_to_ns(params["start"]) if "start" in params else 0
        end = wire.rfc3339_to_ns(params["end"]) if "end" in params else 2**62  # inclusive
        limit = min(int(params.get("limit", "1000")), 10_000)
        if limit <= 0:
            raise ValueError("limit must be positive")
        token = params.get("page_token")
        offset = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
        rows = [
            b
            for sym in sorted(symbols)
            for ts, b in sorted(self.history.get(sym, {}).items())
            if start <= ts <= end
        ]
        page = rows[offset : offset + limit]
        out: dict[str, list[dict[str, Any]]] = {}
        for b in page:
            out.setdefault(b.symbol, []).append(
                {k: v for k, v in wire.to_wire(b, msgpack=False).items() if k not in ("T", "S")}
            )
        nxt = offset + limit
        next_token = (
            base64.urlsafe_b64encode(str(nxt).encode()).decode() if nxt < len(rows) else None
        )
        return {"bars": out, "next_page_token": next_token}


def _json_response(status: int, body: Any, extra: dict[str, str] | None = None) -> Response:
    payload = msgspec.json.encode(body)
    headers = Headers(
        {
            "Content-Type": "application/json",
            "Content-Length": str(len(payload)),
            "Connection": "close",
            **(extra or {}),
        }
    )
    return Response(status, HTTPStatus(status).phrase, headers, payload)


# --- manual runs ---------------------------------------------------------------------------


async def run_synthetic(
    server: FakeAlpacaServer,
    symbols: Sequence[str],
    *,
    rate: float,
    batch: int = 100,
    seed: int = 0,
    stop: asyncio.Event | None = None,
) -> None:
    """Stream random-walk trades at ``rate`` msg/s and one bar per symbol each minute."""
    import random
    import time

    from algostack.core.market import NS_PER_MIN

    rng = random.Random(seed)
    price = dict.fromkeys(symbols, 100.0)
    minute: dict[str, list[float]] = {s: [] for s in symbols}
    current = time.time_ns() // NS_PER_MIN * NS_PER_MIN
    trade_id = 0
    tick = 0.05  # publish in 50 ms slices: rate/20 trades each
    stop = stop or asyncio.Event()
    while not stop.is_set():
        t_ns = time.time_ns()
        if t_ns // NS_PER_MIN * NS_PER_MIN > current:
            bars = [
                Bar(
                    symbol=s,
                    ts=current,
                    open=p[0],
                    high=max(p),
                    low=min(p),
                    close=p[-1],
                    volume=float(len(p) * 100),
                    trade_count=len(p),
                    vwap=sum(p) / len(p),
                )
                for s, p in minute.items()
                if p
            ]
            await server.publish(bars, batch=batch)
            minute = {s: [] for s in symbols}
            current = t_ns // NS_PER_MIN * NS_PER_MIN
        trades: list[MarketEvent] = []
        for k in range(max(1, round(rate * tick))):
            s = symbols[k % len(symbols)]
            price[s] = max(0.01, price[s] * (1 + rng.gauss(0, 0.0005)))
            minute[s].append(round(price[s], 2))
            trade_id += 1
            trades.append(
                Trade(
                    symbol=s,
                    ts=t_ns + k,
                    price=round(price[s], 2),
                    size=float(rng.randint(1, 5) * 100),
                    exchange="V",
                    trade_id=trade_id,
                    tape="C",
                )
            )
        await server.publish(trades, batch=batch)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), tick)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m algostack.testing.fake_alpaca --port 8765 --symbols AAPL,MSFT --rate 1000``."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--symbols", default="AAPL,MSFT")
    parser.add_argument("--rate", type=float, default=1000.0, help="trades per second")
    parser.add_argument("--batch", type=int, default=100, help="messages per frame")
    parser.add_argument("--feed", default="iex")
    parser.add_argument("--key-id", default=None, help="accepted key id (default: any)")
    parser.add_argument("--secret-key", default=None, help="accepted secret (default: any)")
    args = parser.parse_args(argv)
    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]

    async def _run() -> None:
        async with FakeAlpacaServer(
            key_id=args.key_id,
            secret_key=args.secret_key if args.key_id else None,
            host=args.host,
            port=args.port,
            feed=args.feed,
        ) as server:
            print(f"fake Alpaca stream: {server.ws_url}", flush=True)
            print(f"historical bars:    {server.rest_url}/v2/stocks/bars", flush=True)
            print(
                f"use: ALGOSTACK_ALPACA_STREAM_URL={server.ws_url} "
                f"ALGOSTACK_ALPACA_DATA_URL={server.rest_url}",
                flush=True,
            )
            await run_synthetic(server, symbols, rate=args.rate, batch=args.batch)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run())


if __name__ == "__main__":
    main()
