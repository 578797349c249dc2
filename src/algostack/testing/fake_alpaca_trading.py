"""A fake Alpaca trading REST server on 127.0.0.1 that speaks the v2 JSON alpaca-py parses.

Routes: POST/GET ``/v2/orders``, GET ``/v2/orders:by_client_order_id``, GET/DELETE
``/v2/orders/{id}``, GET ``/v2/positions``, GET ``/v2/account``, GET ``/v2/clock``. Auth
headers are checked. Market orders fill at a settable price (at once, or on ``fill_open()``);
a reused ``client_order_id`` answers 422 ``{"code":40010001,...}`` as Alpaca does. Failures
(429, 504, 500) can be injected once, before or after the order is stored, to prove that the
client's own retries never double an order. Every request is counted.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

OPEN_STATUSES = ("new", "accepted", "pending_new", "partially_filled")


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Injected:
    """One injected failure: answer ``status`` to the next matching request."""

    status: int
    method: str
    path: str
    after: bool = False
    """When True the request is processed (an order is stored) before the error is sent."""


@dataclass
class _State:
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_client: dict[str, str] = field(default_factory=dict)
    positions: dict[str, tuple[int, float]] = field(default_factory=dict)
    prices: dict[str, float] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    inject: list[Injected] = field(default_factory=list)


class FakeAlpacaTrading:
    """The fake server. Use as a context manager; ``url`` is the base to pass as ``url``."""

    def __init__(
        self,
        key_id: str = "PKTEST0000000000000000",
        secret_key: str = "fake-secret",  # noqa: S107 - a test fixture, not a credential
        *,
        paper: bool = True,
        fill_immediately: bool = True,
        buying_power: float = 1_000_000.0,
        now: datetime | None = None,
    ) -> None:
        self.key_id = key_id
        self.secret_key = secret_key
        self.paper = paper
        self.fill_immediately = fill_immediately
        self.buying_power = buying_power
        self.now = now or datetime(2024, 1, 3, 15, 0, tzinfo=UTC)
        self.is_open = True
        self.state = _State()
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (alpaca-py appends ``/v2``)."""
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeAlpacaTrading:
        """Listen on a free loopback port in a background thread."""
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

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

    def inject(
        self, status: int, method: str = "POST", path: str = "/v2/orders", *, after: bool = False
    ) -> None:
        """Answer the next ``method path`` request with ``status`` once (``after``: process it
        first, as a gateway timeout after the order reached the exchange would)."""
        with self.lock:
            self.state.inject.append(Injected(status, method, path, after))

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

    def add_order(self, client_order_id: str, symbol: str, side: str, qty: int) -> str:
        """Store an open order directly (as if placed by an earlier run); return its id."""
        with self.lock:
            return self._new_order(client_order_id, symbol, side, qty, fill=False)["id"]  # type: ignore[no-any-return]

    def fill_open(self) -> int:
        """Fill every open order at its symbol's price; return how many filled."""
        with self.lock:
            n = 0
            for o in self.state.orders.values():
                if o["status"] in OPEN_STATUSES:
                    self._fill(o)
                    n += 1
            return n

    # -- server logic (call with the lock held) -------------------------------------------

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
            "status": "accepted",
            "extended_hours": False,
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "subtag": None,
            "source": None,
            "expires_at_ms": None,
        }

    def _new_order(
        self, cid: str, symbol: str, side: str, qty: int, *, fill: bool
    ) -> dict[str, Any]:
        order = self._order_json(cid, symbol, side, qty)
        self.state.orders[order["id"]] = order
        self.state.by_client[cid] = order["id"]
        if fill:
            self._fill(order)
        return order

    def _fill(self, order: dict[str, Any]) -> None:
        symbol, qty = order["symbol"], int(order["qty"])
        price = self.state.prices[symbol]
        signed = qty if order["side"] == "buy" else -qty
        old, avg = self.state.positions.get(symbol, (0, 0.0))
        new = old + signed
        if new == 0:
            self.state.positions.pop(symbol, None)
        else:
            same = old == 0 or (old > 0) == (signed > 0)
            if same:
                avg = (avg * abs(old) + price * qty) / abs(new)
            elif (new > 0) != (old > 0):
                avg = price
            self.state.positions[symbol] = (new, avg)
        order.update(
            status="filled",
            filled_qty=str(qty),
            filled_avg_price=f"{price:.4f}",
            filled_at=_iso(self.now),
            updated_at=_iso(self.now),
        )

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
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_OID, self.key_id)),
            "account_number": ("PA" if self.paper else "") + "3TESTACCT01",
            "status": "ACTIVE",
            "crypto_status": "ACTIVE",
            "currency": "USD",
            "buying_power": f"{self.buying_power:.2f}",
            "cash": f"{self.buying_power:.2f}",
            "portfolio_value": f"{self.buying_power:.2f}",
            "equity": f"{self.buying_power:.2f}",
            "last_equity": f"{self.buying_power:.2f}",
            "pattern_day_trader": False,
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
            "daytrade_count": 0,
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
        if method == "POST" and path == "/v2/orders":
            return self._submit(body)
        if method == "GET" and path == "/v2/orders":
            status = query.get("status", ["open"])[0]
            orders = list(self.state.orders.values())
            if status == "open":
                orders = [o for o in orders if o["status"] in OPEN_STATUSES]
            elif status == "closed":
                orders = [o for o in orders if o["status"] not in OPEN_STATUSES]
            return 200, orders
        if method == "GET" and path == "/v2/orders:by_client_order_id":
            cid = query.get("client_order_id", [""])[0]
            oid = self.state.by_client.get(cid)
            if oid is None:
                return 404, {"code": 40410000, "message": "order not found"}
            return 200, self.state.orders[oid]
        if path.startswith("/v2/orders/"):
            oid = path.rsplit("/", 1)[1]
            order = self.state.orders.get(oid)
            if order is None:
                return 404, {"code": 40410000, "message": "order not found"}
            if method == "GET":
                return 200, order
            if method == "DELETE":
                if order["status"] not in OPEN_STATUSES:
                    return 422, {"code": 42210000, "message": "order is not cancelable"}
                order.update(status="canceled", canceled_at=_iso(self.now))
                return 204, None
        if method == "GET" and path == "/v2/positions":
            return 200, [
                self._position_json(s, q, a) for s, (q, a) in sorted(self.state.positions.items())
            ]
        if method == "GET" and path == "/v2/account":
            return 200, self._account_json()
        if method == "GET" and path == "/v2/clock":
            return 200, self._clock_json()
        return 404, {"code": 40410000, "message": f"no route {method} {path}"}

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
        if side == "buy" and qty * self.state.prices[symbol] > self.buying_power:
            return 403, {"code": 40310000, "message": "insufficient buying power"}
        order = self._new_order(cid, symbol, side, int(qty), fill=self.fill_immediately)
        return 200, order


class _Handler(BaseHTTPRequestHandler):
    server_fake: FakeAlpacaTrading
    protocol_version = "HTTP/1.1"

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
                    self._send(injected.status, {"message": f"injected {injected.status}"})
                    return
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                self._send(400, {"code": 40010000, "message": "request body format is invalid"})
                return
            status, payload = fake.handle(method, parts.path, parse_qs(parts.query), body)
            if injected is not None:
                status, payload = injected.status, {"message": f"injected {injected.status}"}
        self._send(status, payload)

    def _send(self, status: int, payload: Any) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
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
