"""A fake Alpaca trading server on 127.0.0.1: the v2 REST API alpaca-py parses and the
``trade_updates`` websocket, enforcing the rules the real account enforces.

REST routes: POST/GET ``/v2/orders`` (``status``, ``limit``, ``after``, ``until``,
``direction``, ``symbols``), GET ``/v2/orders:by_client_order_id``, GET/DELETE
``/v2/orders/{id}``, GET ``/v2/positions[/{symbol}]``, ``/v2/account``, ``/v2/clock`` and
``/v2/account/activities[/FILL]``. Failures (429, 504, 500) can be injected once, before or
after the order is stored, to prove that retries never double an order. The stream
(``stream_url``) runs its own event loop in a background thread and can duplicate, drop,
reorder or cut updates on demand. Every request is counted; timestamps come from ``now``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from algostack.core import sessions

OPEN_STATUSES = ("new", "accepted", "pending_new", "partially_filled")
PDT_EQUITY = 25_000.0
PDT_MAX_DAY_TRADES = 3
WASH_TRADE = {"code": 42210000, "message": "potential wash trade detected. use complex orders"}
PDT_DENIED = {"code": 40310100, "message": "trade denied due to pattern day trading protection"}
NOT_FOUND = {"code": 40410000, "message": "order not found"}
STREAM_PATH = "/stream"


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_iso(text: str) -> datetime:
    dt = datetime.fromisoformat(text.replace(" ", "+"))  # a '+' unescaped in a query is ' '
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _num(x: float) -> str:
    """A decimal string as Alpaca sends prices (``"185.25"``, ``"101"``)."""
    return f"{x:.6f}".rstrip("0").rstrip(".")


@dataclass
class Injected:
    """One injected failure: answer ``status`` to the next matching request."""

    status: int
    method: str
    path: str
    after: bool = False
    """When True the request is processed (an order is stored) before the error is sent."""
    retry_after: float | None = None
    """Sent as the ``Retry-After`` header when given."""


@dataclass
class _State:
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_client: dict[str, str] = field(default_factory=dict)
    positions: dict[str, tuple[int, float]] = field(default_factory=dict)
    prices: dict[str, float] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    inject: list[Injected] = field(default_factory=list)
    activities: list[dict[str, Any]] = field(default_factory=list)
    filled_value: dict[str, float] = field(default_factory=dict)
    opened_today: set[str] = field(default_factory=set)
    daytrade_orders: set[str] = field(default_factory=set)
    daytrades: dict[date, int] = field(default_factory=dict)


@dataclass
class _Faults:
    duplicate: int = 0
    drop: int = 0
    reorder: bool = False
    held: list[str | bytes] | None = None


class FakeAlpacaTrading:
    """The fake server. Use as a context manager; ``url`` is the base to pass as ``url``.

    Rules enforced as Alpaca enforces them:

    - auth headers on every request (401), auth message on the stream (``unauthorized``);
    - a reused ``client_order_id``: 422 ``{"code":40010001}``; unknown symbol, bad qty or
      side, non-market type: 422; a buy above ``buying_power``: 403 ``{"code":40310000}``;
    - wash trade: an order opposite in side to an open order in the same symbol: 422
      ``{"code":42210000,"message":"potential wash trade detected. use complex orders"}``;
    - pattern day trader protection: with ``equity`` under 25,000 and 3 day trades in the
      last 5 business days (``set_daytrade_count`` plus today's), an order that would reduce
      a position opened today: 403 ``{"code":40310100}``;
    - fills: volume-weighted ``filled_avg_price``, ``partially_filled`` until complete, one
      FILL activity and one ``partial_fill``/``fill`` stream update per execution;
    - cancel of a closed order: 422; the stream never replays what a client missed.
    """

    def __init__(
        self,
        key_id: str = "PKTEST0000000000000000",
        secret_key: str = "fake-secret",  # noqa: S107 - a test fixture, not a credential
        *,
        paper: bool = True,
        fill_immediately: bool = True,
        buying_power: float = 1_000_000.0,
        equity: float | None = None,
        now: datetime | None = None,
        stream_frames: Literal["binary", "text"] = "binary",
    ) -> None:
        self.key_id = key_id
        self.secret_key = secret_key
        self.paper = paper
        self.fill_immediately = fill_immediately
        self.buying_power = buying_power
        self.equity = buying_power if equity is None else equity
        self.now = now or datetime(2024, 1, 3, 15, 0, tzinfo=UTC)
        self.is_open = True
        self.state = _State()
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        """(method, path) of every authenticated request, in order (what a client asked)."""
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stream = _TradeStream(self, stream_frames)
        self._faults = _Faults()

    # -- control ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (alpaca-py appends ``/v2``)."""
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def stream_url(self) -> str:
        """``ws://127.0.0.1:<port>/stream``: the ``trade_updates`` websocket."""
        return self._stream.url

    def start(self) -> FakeAlpacaTrading:
        """Listen (REST and stream) on free loopback ports in background threads."""
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        self._stream.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._stream.stop()

    def __enter__(self) -> FakeAlpacaTrading:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_price(self, symbol: str, price: float) -> None:
        """Set the price market orders in ``symbol`` fill at."""
        with self.lock:
            self.state.prices[symbol] = price

    def set_position(self, symbol: str, qty: int, avg_price: float) -> None:
        """Seed a position (signed shares) as if it existed before the client started."""
        with self.lock:
            self.state.positions[symbol] = (qty, avg_price)

    def set_daytrade_count(self, n: int) -> None:
        """Set the day trades of the previous 4 business days (today's are counted on top)."""
        with self.lock:
            today = self._today()
            self.state.daytrades = {today: self.state.daytrades.get(today, 0)}
            self.state.daytrades[sessions.previous_session(today).day] = n

    def new_day(self, now: datetime) -> None:
        """Move the clock to another day: positions stay, nothing counts as opened today."""
        with self.lock:
            self.now = now
            self.state.opened_today.clear()
            self.state.daytrade_orders.clear()

    def advance(self, seconds: float) -> None:
        """Move the clock forward within the day."""
        with self.lock:
            self.now += timedelta(seconds=seconds)

    def inject(
        self,
        status: int,
        method: str = "POST",
        path: str = "/v2/orders",
        *,
        after: bool = False,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next ``method path`` request with ``status`` once (``after``: process it
        first, as a gateway timeout after the order reached the exchange would), with a
        ``Retry-After`` header when ``retry_after`` is given."""
        with self.lock:
            self.state.inject.append(Injected(status, method, path, after, retry_after))

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """Requests received, optionally only those of one method and/or path."""
        with self.lock:
            return sum(
                1
                for m, p in self.state.requests
                if (method is None or m == method) and (path is None or p == path)
            )

    def orders(self) -> list[dict[str, Any]]:
        """Every stored order (copies), oldest first."""
        with self.lock:
            return [dict(o) for o in self.state.orders.values()]

    def activities(self) -> list[dict[str, Any]]:
        """Every FILL activity (copies), oldest first."""
        with self.lock:
            return [dict(a) for a in self.state.activities]

    def add_order(self, client_order_id: str, symbol: str, side: str, qty: int) -> str:
        """Store an open order directly (as if placed by an earlier run); return its id."""
        with self.lock:
            order = self._order_json(client_order_id, symbol, side, qty)
            self.state.orders[order["id"]] = order
            self.state.by_client[client_order_id] = order["id"]
            return str(order["id"])

    def fill_open(
        self, symbol: str | None = None, qty: int | None = None, price: float | None = None
    ) -> int:
        """Execute open orders (of ``symbol`` only, when given), at most ``qty`` shares each,
        at ``price`` or the symbol's price; return how many orders got an execution."""
        with self.lock:
            n = 0
            for o in list(self.state.orders.values()):
                if o["status"] not in OPEN_STATUSES or symbol not in (None, o["symbol"]):
                    continue
                leaves = int(o["qty"]) - int(o["filled_qty"])
                self._execute(o, leaves if qty is None else min(qty, leaves), price)
                n += 1
            return n

    def expire_open(self) -> int:
        """Expire every open order (a day order at the close); return how many."""
        with self.lock:
            n = 0
            for o in self.state.orders.values():
                if o["status"] in OPEN_STATUSES:
                    o.update(status="expired", expired_at=_iso(self.now), updated_at=_iso(self.now))
                    self._emit("expired", o)
                    n += 1
            return n

    # -- stream control --------------------------------------------------------------------

    def stream_duplicate(self, n: int = 1) -> None:
        """Send each of the next ``n`` updates twice."""
        with self.lock:
            self._faults.duplicate += n

    def stream_drop(self, n: int = 1) -> None:
        """Never send the next ``n`` updates (orders and activities still record them)."""
        with self.lock:
            self._faults.drop += n

    def stream_reorder(self) -> None:
        """Hold the next update back and send it after the one that follows it."""
        with self.lock:
            self._faults.reorder = True

    def emit_raw(self, data: dict[str, Any]) -> None:
        """Send ``{"stream":"trade_updates","data":data}`` as the next update."""
        with self.lock:
            self._send_update(data)

    def disconnect_stream(self) -> int:
        """Close every stream connection now; return how many were open."""
        return self._stream.disconnect()

    def refuse_stream(self, seconds: float) -> None:
        """Answer new stream connections HTTP 503 for ``seconds`` (wall time)."""
        self._stream.refuse_until = time.monotonic() + seconds

    @property
    def stream_clients(self) -> int:
        """Stream connections authorized and listening to ``trade_updates`` now."""
        return self._stream.clients

    @property
    def stream_refused(self) -> int:
        """Stream connections answered 503 by ``refuse_stream``."""
        return self._stream.refused

    @property
    def stream_listens(self) -> int:
        """Listen requests answered since start (one per successful (re)connection)."""
        return self._stream.listens

    async def wait_listening(self, listens: int = 1, timeout_s: float = 5.0) -> None:
        """Wait until ``listens`` listens in total were answered and a client listens now."""
        await asyncio.to_thread(self._stream.wait_listening, listens, timeout_s)

    # -- server logic (call with the lock held) -------------------------------------------

    def _today(self) -> date:
        return sessions.new_york_date(self.now)

    def _daytrade_count(self) -> int:
        day = self._today()
        window = {day}
        for _ in range(4):
            day = sessions.previous_session(day).day
            window.add(day)
        return sum(n for d, n in self.state.daytrades.items() if d in window)

    def _order_json(self, cid: str, symbol: str, side: str, qty: int) -> dict[str, Any]:
        ts = _iso(self.now)
        return {
            "id": str(uuid.uuid4()),
            "client_order_id": cid,
            "created_at": ts,
            "updated_at": ts,
            "submitted_at": ts,
            "filled_at": None,
            "expired_at": None,
            "expires_at": None,
            "canceled_at": None,
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_OID, symbol)),
            "symbol": symbol,
            "asset_class": "us_equity",
            "notional": None,
            "qty": str(qty),
            "filled_qty": "0",
            "filled_avg_price": None,
            "order_class": "",
            "order_type": "market",
            "type": "market",
            "side": side,
            "position_intent": "buy_to_open" if side == "buy" else "sell_to_close",
            "time_in_force": "day",
            "limit_price": None,
            "stop_price": None,
            "status": "new",
            "extended_hours": False,
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "subtag": None,
            "source": None,
            "expires_at_ms": None,
        }

    def _execute(self, order: dict[str, Any], qty: int, price: float | None) -> None:
        """One execution of ``qty`` shares: position, day trades, order, activity, update."""
        if qty <= 0:
            return
        symbol, oid = order["symbol"], order["id"]
        px = self.state.prices[symbol] if price is None else price
        signed = qty if order["side"] == "buy" else -qty
        old, avg = self.state.positions.get(symbol, (0, 0.0))
        new = old + signed
        reduces = old != 0 and (old > 0) != (signed > 0)
        if reduces and symbol in self.state.opened_today and oid not in self.state.daytrade_orders:
            self.state.daytrade_orders.add(oid)
            today = self._today()
            self.state.daytrades[today] = self.state.daytrades.get(today, 0) + 1
        if abs(new) > abs(old) or (new != 0 and (new > 0) != (old > 0)):
            self.state.opened_today.add(symbol)
        if new == 0:
            self.state.positions.pop(symbol, None)
        else:
            if not reduces:
                avg = (avg * abs(old) + px * qty) / abs(new)
            elif (new > 0) != (old > 0):
                avg = px
            self.state.positions[symbol] = (new, avg)
        cum = int(order["filled_qty"]) + qty
        value = self.state.filled_value.get(oid, 0.0) + px * qty
        self.state.filled_value[oid] = value
        done = cum == int(order["qty"])
        ts = _iso(self.now)
        order.update(
            status="filled" if done else "partially_filled",
            filled_qty=str(cum),
            filled_avg_price=_num(value / cum),
            updated_at=ts,
        )
        if done:
            order["filled_at"] = ts
        kind = "fill" if done else "partial_fill"
        exec_id = str(uuid.uuid4())
        stamp = f"{self.now.astimezone(UTC):%Y%m%d%H%M%S}{self.now.microsecond // 1000:03d}"
        self.state.activities.append(
            {
                "id": f"{stamp}::{exec_id}",
                "activity_type": "FILL",
                "transaction_time": ts,
                "type": kind,
                "price": _num(px),
                "qty": str(qty),
                "side": order["side"],
                "symbol": symbol,
                "leaves_qty": str(int(order["qty"]) - cum),
                "order_id": oid,
                "cum_qty": str(cum),
                "order_status": order["status"],
            }
        )
        self._emit(
            kind,
            order,
            price=_num(px),
            qty=str(qty),
            position_qty=str(new),
            execution_id=exec_id,
        )

    def _emit(self, event: str, order: dict[str, Any], **extra: str) -> None:
        data: dict[str, Any] = {"event": event, "timestamp": _iso(self.now), "order": dict(order)}
        data.update(extra)
        self._send_update(data)

    def _send_update(self, data: dict[str, Any]) -> None:
        """Encode one update and pass it through the injected stream faults."""
        f = self._faults
        if f.drop:
            f.drop -= 1
            return
        frame = self._stream.encode({"stream": "trade_updates", "data": data})
        frames = [frame]
        if f.duplicate:
            f.duplicate -= 1
            frames.append(frame)
        if f.reorder and f.held is None:
            f.reorder, f.held = False, frames
            return
        if f.held is not None:
            frames, f.held = frames + f.held, None
        self._stream.broadcast(frames)

    def _position_json(self, symbol: str, qty: int, avg: float) -> dict[str, Any]:
        price = self.state.prices.get(symbol, avg)
        return {
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_OID, symbol)),
            "symbol": symbol,
            "exchange": "NASDAQ",
            "asset_class": "us_equity",
            "asset_marginable": True,
            "avg_entry_price": f"{avg:.4f}",
            "qty": str(qty),
            "side": "long" if qty > 0 else "short",
            "market_value": f"{qty * price:.2f}",
            "cost_basis": f"{qty * avg:.2f}",
            "unrealized_pl": f"{qty * (price - avg):.2f}",
            "unrealized_plpc": "0",
            "unrealized_intraday_pl": f"{qty * (price - avg):.2f}",
            "unrealized_intraday_plpc": "0",
            "current_price": f"{price:.4f}",
            "lastday_price": f"{price:.4f}",
            "change_today": "0",
            "qty_available": str(qty),
        }

    def _account_json(self) -> dict[str, Any]:
        count = self._daytrade_count()
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_OID, self.key_id)),
            "account_number": ("PA" if self.paper else "") + "3TESTACCT01",
            "status": "ACTIVE",
            "crypto_status": "ACTIVE",
            "currency": "USD",
            "buying_power": f"{self.buying_power:.2f}",
            "cash": f"{self.buying_power:.2f}",
            "portfolio_value": f"{self.equity:.2f}",
            "equity": f"{self.equity:.2f}",
            "last_equity": f"{self.equity:.2f}",
            "pattern_day_trader": count > PDT_MAX_DAY_TRADES,
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "created_at": "2024-01-01T00:00:00Z",
            "trade_suspended_by_user": False,
            "multiplier": "1",
            "shorting_enabled": True,
            "long_market_value": "0",
            "short_market_value": "0",
            "initial_margin": "0",
            "maintenance_margin": "0",
            "last_maintenance_margin": "0",
            "sma": "0",
            "daytrade_count": count,
        }

    def _clock_json(self) -> dict[str, Any]:
        return {
            "timestamp": _iso(self.now),
            "is_open": self.is_open,
            "next_open": _iso(self.now + timedelta(hours=18)),
            "next_close": _iso(self.now + timedelta(hours=1)),
        }

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        """Route one authenticated request; return (status, JSON body)."""
        self.requests.append((method, path))
        if method == "POST" and path == "/v2/orders":
            return self._submit(body)
        if method == "GET" and path == "/v2/orders":
            return self._list_orders(query)
        if method == "GET" and path == "/v2/orders:by_client_order_id":
            cid = query.get("client_order_id", [""])[0]
            oid = self.state.by_client.get(cid)
            if oid is None:
                return 404, NOT_FOUND
            return 200, self.state.orders[oid]
        if path.startswith("/v2/orders/"):
            order = self.state.orders.get(path.rsplit("/", 1)[1])
            if order is None:
                return 404, NOT_FOUND
            if method == "GET":
                return 200, order
            if method == "DELETE":
                if order["status"] not in OPEN_STATUSES:
                    return 422, {"code": 42210000, "message": "order is not cancelable"}
                order.update(
                    status="canceled", canceled_at=_iso(self.now), updated_at=_iso(self.now)
                )
                self._emit("canceled", order)
                return 204, None
        if method == "GET" and path == "/v2/positions":
            return 200, [
                self._position_json(s, q, a) for s, (q, a) in sorted(self.state.positions.items())
            ]
        if method == "GET" and path.startswith("/v2/positions/"):
            symbol = path.rsplit("/", 1)[1]
            if symbol not in self.state.positions:
                return 404, {"code": 40410000, "message": "position does not exist"}
            return 200, self._position_json(symbol, *self.state.positions[symbol])
        if method == "GET" and path == "/v2/account":
            return 200, self._account_json()
        if method == "GET" and path == "/v2/clock":
            return 200, self._clock_json()
        if method == "GET" and path in ("/v2/account/activities", "/v2/account/activities/FILL"):
            types = query.get("activity_types", ["FILL"])[0].split(",")
            if path.endswith("/FILL") or "FILL" in types:
                return self._list_activities(query)
            return 200, []
        return 404, {"code": 40410000, "message": f"no route {method} {path}"}

    def _list_orders(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        one = _query_value(query)
        status = one("status", "open")
        orders = list(self.state.orders.values())
        if status == "open":
            orders = [o for o in orders if o["status"] in OPEN_STATUSES]
        elif status == "closed":
            orders = [o for o in orders if o["status"] not in OPEN_STATUSES]
        elif status != "all":
            return 422, {"code": 40010001, "message": "invalid status"}
        if one("symbols"):
            wanted = set(one("symbols").split(","))
            orders = [o for o in orders if o["symbol"] in wanted]
        return _page(orders, one, "submitted_at", "limit", 50, 500)

    def _list_activities(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        one = _query_value(query)
        acts = list(self.state.activities)
        return _page(acts, one, "transaction_time", "page_size", 100, 100, paged=True)

    def _submit(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return 400, {"code": 40010000, "message": "request body format is invalid"}
        cid = body.get("client_order_id") or str(uuid.uuid4())
        if len(cid) > 128:
            return 422, {"code": 40010001, "message": "client_order_id must be no more than 128"}
        if cid in self.state.by_client:
            return 422, {"code": 40010001, "message": "client_order_id must be unique"}
        symbol, side, qty_raw = body.get("symbol"), body.get("side"), body.get("qty")
        if body.get("type") != "market":
            return 422, {"code": 40010001, "message": "only market orders are supported here"}
        try:
            qty = float(str(qty_raw))
        except (TypeError, ValueError):
            return 422, {"code": 40010001, "message": "qty is required"}
        if qty <= 0 or qty != int(qty):
            return 422, {"code": 40010001, "message": "qty must be > 0"}
        if side not in ("buy", "sell"):
            return 422, {"code": 40010001, "message": "side must be buy or sell"}
        if symbol not in self.state.prices:
            return 422, {"code": 40010001, "message": f'asset "{symbol}" not found'}
        if any(
            o["symbol"] == symbol and o["side"] != side and o["status"] in OPEN_STATUSES
            for o in self.state.orders.values()
        ):
            return 422, WASH_TRADE
        held = self.state.positions.get(symbol, (0, 0.0))[0]
        closes = held > 0 if side == "sell" else held < 0
        if (
            closes
            and symbol in self.state.opened_today
            and self.equity < PDT_EQUITY
            and self._daytrade_count() >= PDT_MAX_DAY_TRADES
        ):
            return 403, PDT_DENIED
        if side == "buy" and qty * self.state.prices[symbol] > self.buying_power:
            return 403, {"code": 40310000, "message": "insufficient buying power"}
        order = self._order_json(cid, symbol, side, int(qty))
        self.state.orders[order["id"]] = order
        self.state.by_client[cid] = order["id"]
        self._emit("new", order)
        if self.fill_immediately:
            self._execute(order, int(qty), None)
        return 200, order


class _TradeStream:
    """The ``trade_updates`` websocket: its own event loop in a background thread."""

    def __init__(self, fake: FakeAlpacaTrading, frames: Literal["binary", "text"]) -> None:
        self.fake = fake
        self.binary = frames == "binary"
        self.refuse_until = 0.0
        self.listens = 0
        self.refused = 0
        self._cond = threading.Condition()
        self._conns: set[ServerConnection] = set()
        self._listening: set[ServerConnection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self._queue: asyncio.Queue[list[str | bytes]] | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        assert self._port, "start() the fake first"
        return f"ws://127.0.0.1:{self._port}{STREAM_PATH}"

    @property
    def clients(self) -> int:
        with self._cond:
            return len(self._listening)

    def start(self) -> None:
        self._ready.clear()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self._thread.start()
        if not self._ready.wait(10.0):
            raise RuntimeError("the fake trade_updates stream did not start within 10 s")

    def stop(self) -> None:
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if loop is not None and stopping is not None and thread is not None:
            loop.call_soon_threadsafe(stopping.set)
            thread.join(10.0)
        self._loop = self._thread = None

    async def _main(self) -> None:
        self._queue = asyncio.Queue()
        self._stopping = asyncio.Event()
        server: Server = await serve(
            self._handler,
            "127.0.0.1",
            0,
            process_request=self._process_request,
            compression=None,
            logger=logging.getLogger("algostack.testing.fake_alpaca_trading.ws"),
        )
        self._port = int(next(iter(server.sockets)).getsockname()[1])
        self._loop = asyncio.get_running_loop()
        sender = asyncio.create_task(self._sender(self._queue))
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            sender.cancel()
            server.close()
            await server.wait_closed()

    def encode(self, message: dict[str, Any]) -> str | bytes:
        text = json.dumps(message)
        return text.encode() if self.binary else text

    def broadcast(self, frames: list[str | bytes]) -> None:
        """Queue frames for every listening connection (callable from any thread, in order)."""
        loop, queue = self._loop, self._queue
        if loop is not None and queue is not None:
            loop.call_soon_threadsafe(queue.put_nowait, frames)

    async def _sender(self, queue: asyncio.Queue[list[str | bytes]]) -> None:
        while True:
            frames = await queue.get()
            with self._cond:
                targets = list(self._listening)
            for ws in targets:
                for frame in frames:
                    try:
                        await ws.send(frame)
                    except ConnectionClosed:
                        break

    def disconnect(self) -> int:
        with self._cond:
            conns = list(self._conns)
            self._listening.clear()
            self._cond.notify_all()
        loop = self._loop
        if loop is not None:
            for ws in conns:
                loop.call_soon_threadsafe(_close_soon, ws)
        return len(conns)

    def wait_listening(self, listens: int, timeout_s: float) -> None:
        with self._cond:
            ok = self._cond.wait_for(
                lambda: self.listens >= listens and bool(self._listening), timeout_s
            )
        if not ok:
            raise TimeoutError(f"no {listens} trade_updates listens within {timeout_s} s")

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path != STREAM_PATH:
            return ws.respond(HTTPStatus.NOT_FOUND, "not found\n")
        if time.monotonic() < self.refuse_until:
            self.refused += 1
            return ws.respond(HTTPStatus.SERVICE_UNAVAILABLE, "service unavailable\n")
        return None

    async def _send(self, ws: ServerConnection, message: dict[str, Any]) -> None:
        await ws.send(self.encode(message))

    async def _handler(self, ws: ServerConnection) -> None:
        with self._cond:
            self._conns.add(ws)
        try:
            async with asyncio.timeout(10.0):
                msg = json.loads(await ws.recv())
            # Alpaca takes {"action":"auth","key","secret"} and (alpaca-py's)
            # {"action":"authenticate","data":{"key_id","secret_key"}}.
            data = msg.get("data") or {}
            key = msg.get("key", data.get("key_id"))
            secret = msg.get("secret", data.get("secret_key"))
            ok = msg.get("action") in ("auth", "authenticate") and (key, secret) == (
                self.fake.key_id,
                self.fake.secret_key,
            )
            reply = {"action": "authenticate", "status": "authorized" if ok else "unauthorized"}
            await self._send(ws, {"stream": "authorization", "data": reply})
            if not ok:
                await ws.close()
                return
            async for raw in ws:
                msg = json.loads(raw)
                if msg.get("action") != "listen":
                    continue
                asked = (msg.get("data") or {}).get("streams", [])
                streams = [s for s in asked if s == "trade_updates"]
                with self._cond:
                    if streams:
                        self._listening.add(ws)
                        self.listens += 1
                    else:
                        self._listening.discard(ws)
                    self._cond.notify_all()
                await self._send(ws, {"stream": "listening", "data": {"streams": streams}})
        except (ConnectionClosed, TimeoutError, ValueError, AttributeError):
            pass
        finally:
            with self._cond:
                self._conns.discard(ws)
                self._listening.discard(ws)
                self._cond.notify_all()


def _close_soon(ws: ServerConnection) -> None:
    task = asyncio.ensure_future(ws.close(1001, "going away"))
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


_BACKGROUND: set[asyncio.Future[None]] = set()


def _query_value(query: dict[str, list[str]]) -> Callable[..., str]:
    def one(name: str, default: str = "") -> str:
        return query.get(name, [default])[0]

    return one


def _page(
    items: list[dict[str, Any]],
    one: Callable[..., str],
    time_key: str,
    size_param: str,
    default_size: int,
    max_size: int,
    *,
    paged: bool = False,
) -> tuple[int, Any]:
    """Alpaca's list rules: ``after``/``until`` (exclusive) on ``time_key``, ``direction``
    (default desc), at most ``size_param`` items, and (``paged``: the activities) a
    ``page_token`` naming the last id seen."""
    try:
        if one("after", ""):
            after = _parse_iso(one("after", ""))
            items = [i for i in items if _parse_iso(i[time_key]) > after]
        if one("until", ""):
            until = _parse_iso(one("until", ""))
            items = [i for i in items if _parse_iso(i[time_key]) < until]
        size = int(one(size_param, str(default_size)))
    except ValueError as exc:
        return 422, {"code": 40010001, "message": str(exc)}
    if not 1 <= size <= max_size:
        return 422, {"code": 40010001, "message": f"{size_param} must be between 1 and {max_size}"}
    if one("direction", "desc") == "desc":
        items.reverse()
    token = one("page_token", "") if paged else ""
    if token:
        ids = [i["id"] for i in items]
        items = items[ids.index(token) + 1 :] if token in ids else []
    return 200, items[:size]


class _Handler(BaseHTTPRequestHandler):
    server_fake: FakeAlpacaTrading
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    """Headers and body leave in two writes: with Nagle on, the client's delayed ACK holds
    every reply ~40 ms, which Alpaca's servers do not do."""

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""

    def _dispatch(self, method: str) -> None:
        fake = self.server_fake
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with fake.lock:
            fake.state.requests.append((method, parts.path))
            if (
                self.headers.get("APCA-API-KEY-ID") != fake.key_id
                or self.headers.get("APCA-API-SECRET-KEY") != fake.secret_key
            ):
                self._send(401, {"code": 40110000, "message": "request is not authorized"})
                return
            injected = next(
                (i for i in fake.state.inject if i.method == method and i.path == parts.path),
                None,
            )
            if injected is not None:
                fake.state.inject.remove(injected)
                if not injected.after:
                    self._send(
                        injected.status,
                        {"message": f"injected {injected.status}"},
                        injected.retry_after,
                    )
                    return
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                self._send(400, {"code": 40010000, "message": "request body format is invalid"})
                return
            status, payload = fake.handle(method, parts.path, parse_qs(parts.query), body)
            retry_after = None
            if injected is not None:
                status, payload = injected.status, {"message": f"injected {injected.status}"}
                retry_after = injected.retry_after
            # Encoded under the lock: the payload may be a live order another thread fills.
            data = b"" if payload is None else json.dumps(payload).encode()
        self._send_bytes(status, data, retry_after)

    def _send(self, status: int, payload: Any, retry_after: float | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self._send_bytes(status, data, retry_after)

    def _send_bytes(self, status: int, data: bytes, retry_after: float | None = None) -> None:
        self.send_response(status)
        if retry_after is not None:
            self.send_header("Retry-After", f"{retry_after:g}")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def do_GET(self) -> None:
        """Handle GET."""
        self._dispatch("GET")

    def do_POST(self) -> None:
        """Handle POST."""
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        """Handle DELETE."""
        self._dispatch("DELETE")
