"""The Alpaca broker: alpaca-py's ``TradingClient`` behind the ``Broker`` seam.

Paper by default; live needs ``live=True`` (and ``paper=False``) and live keys, and paper
refuses live keys (DESIGN.md 3.5): paper key ids start with ``PK``, live ones with ``AK``,
and the account number is checked again at the first call (paper accounts start ``PA``).
Every order carries the deterministic ``client_order_id`` of its decision; alpaca-py
re-sends POST /orders on 429/504, and a resend of an order that did reach Alpaca answers 422
``client_order_id must be unique`` (code 40010001), which is resolved by looking the order
up by its client id, so no decision ever becomes two orders. REST calls share a token
bucket under Alpaca's 200 requests/minute. alpaca-py is synchronous: calls run in a thread.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.models import Order, TradeAccount
from alpaca.trading.models import Position as AlpacaPosition
from alpaca.trading.requests import GetOrdersRequest, MarketOrderRequest

from algostack.adapters.alpaca.wire import rfc3339_to_ns
from algostack.adapters.broker import ReconcileReport, compare_positions
from algostack.core.market import Bar, datetime_to_ts
from algostack.core.orders import (
    Fill,
    OpenOrder,
    OrderAck,
    OrderIntent,
    OrderStatus,
    Side,
    order_prefix,
)
from algostack.core.ratelimit import TokenBucket
from algostack.errors import AuthError, ConfigError, DataError, FatalError, RetryableError

DUPLICATE_CODE = 40010001
DUPLICATE_MESSAGE = "client_order_id must be unique"
_DONE = {"filled", "canceled", "expired", "rejected", "replaced", "done_for_day", "suspended"}


def check_keys(key_id: str, *, paper: bool, live: bool) -> None:
    """Enforce the live interlock; raise ``ConfigError`` saying what to change."""
    if live and paper:
        raise ConfigError("live=True needs paper=False: choose paper or live trading")
    if not live and not paper:
        raise ConfigError(
            "paper=False without live=True: live trading needs the explicit live flag "
            "(ALGOSTACK_ALPACA_LIVE=true)"
        )
    if live and not key_id.startswith("AK"):
        raise ConfigError("live trading refuses a key id that is not a live key (AK...)")
    if paper and not key_id.startswith("PK"):
        raise ConfigError("paper trading needs a paper key id (PK...); live keys are refused")


@dataclass
class _Tracked:
    client_order_id: str
    broker_order_id: str
    model: str
    symbol: str
    side: Side
    qty: int
    filled_qty: int = 0
    filled_value: float = 0.0
    done: bool = False


class AccountView(msgspec.Struct, frozen=True):
    """What the desk needs of the account: money and pattern-day-trader state."""

    equity: float
    buying_power: float
    pattern_day_trader: bool
    daytrade_count: int
    account_number: str


class FillActivity(msgspec.Struct, frozen=True):
    """One execution as ``GET /v2/account/activities/FILL`` reports it."""

    activity_id: str
    order_id: str
    symbol: str
    side: str
    qty: int
    price: float
    cum_qty: int
    leaves_qty: int
    ts: int
    """UTC ns of ``transaction_time``."""
    type: str
    """``fill`` or ``partial_fill``."""


class _WActivity(msgspec.Struct):
    id: str
    order_id: str
    symbol: str
    side: str
    qty: str
    price: str
    cum_qty: str
    leaves_qty: str
    transaction_time: str
    type: str


def _fill_activity(a: _WActivity) -> FillActivity:
    return FillActivity(
        activity_id=a.id,
        order_id=a.order_id,
        symbol=a.symbol,
        side=a.side,
        qty=int(float(a.qty)),
        price=float(a.price),
        cum_qty=int(float(a.cum_qty)),
        leaves_qty=int(float(a.leaves_qty)),
        ts=rfc3339_to_ns(a.transaction_time),
        type=a.type,
    )


def _error_parts(exc: APIError) -> tuple[int, int | None, str]:
    status = exc.status_code or 0
    try:
        body = json.loads(str(exc))
    except ValueError:
        return status, None, str(exc)[:200]
    if not isinstance(body, dict):
        return status, None, str(body)[:200]
    code = body.get("code")
    return status, code if isinstance(code, int) else None, str(body.get("message", ""))[:200]


def _status(order: Order) -> OrderStatus:
    raw = str(getattr(order.status, "value", order.status))
    if raw == "filled":
        return OrderStatus.FILLED
    if raw == "partially_filled":
        return OrderStatus.PARTIALLY_FILLED
    if raw in ("canceled", "expired", "done_for_day", "replaced"):
        return OrderStatus.CANCELED
    if raw in ("rejected", "suspended"):
        return OrderStatus.REJECTED
    return OrderStatus.ACCEPTED


class AlpacaBroker:
    """``Broker`` over Alpaca's trading REST API (paper by default)."""

    def __init__(
        self,
        key_id: str,
        secret_key: str,
        *,
        paper: bool = True,
        live: bool = False,
        url: str | None = None,
        rate_per_min: float = 180,
        burst: float = 20,
        model: str = "",
        commission_per_share: float = 0.0,
        retry_wait_s: float = 3.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        check_keys(key_id, paper=paper, live=live)
        self.live = live
        self.model = model
        self.commission_per_share = commission_per_share
        self._client = TradingClient(key_id, secret_key, paper=not live, url_override=url)
        # alpaca-py sleeps this long (in our worker thread) before each of its 429/504 retries.
        self._client._retry_wait = retry_wait_s  # type: ignore[assignment]
        self.bucket = TokenBucket(rate_per_min, burst, clock=clock)
        self._sleep = sleep
        self._now_ns = now_ns
        self._lock = asyncio.Lock()
        self._tracked: dict[str, _Tracked] = {}
        self._by_broker_id: dict[str, str] = {}
        self._fills: list[Fill] = []
        self._account_checked = False
        self.requests = 0

    # -- plumbing --------------------------------------------------------------------------

    async def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        async with self._lock:
            await self.bucket.acquire(sleep=self._sleep)
            self.requests += 1
            try:
                return await asyncio.to_thread(fn, *args)
            except requests.RequestException as exc:
                raise RetryableError(f"alpaca {what}: {type(exc).__name__}: {exc}") from exc
            except APIError as exc:
                status, _code, message = _error_parts(exc)
                if status == 401:
                    raise AuthError(f"alpaca {what}: credentials refused ({message})") from exc
                if status == 429 or status >= 500:
                    raise RetryableError(f"alpaca {what}: HTTP {status} {message}") from exc
                raise

    async def _ensure_account(self) -> None:
        if self._account_checked:
            return
        acct: TradeAccount = await self._call("get account", self._client.get_account)
        is_paper = acct.account_number.startswith("PA")
        if self.live and is_paper:
            raise ConfigError("live mode, but the keys belong to a paper account (PA...)")
        if not self.live and not is_paper:
            raise ConfigError("paper mode, but the keys belong to a live account")
        if acct.trading_blocked or acct.account_blocked:
            raise FatalError(f"alpaca account {acct.account_number} is blocked from trading")
        self._account_checked = True

    async def clock(self) -> datetime:
        """The broker's current time (``GET /v2/clock``)."""
        clock = await self._call("get clock", self._client.get_clock)
        ts: datetime = clock.timestamp
        return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)

    async def order_by_client_id(self, cid: str) -> Order | None:
        """The order Alpaca holds under client order id ``cid``; None when it has none."""
        return await self._lookup(cid)

    async def _lookup(self, cid: str) -> Order | None:
        try:
            order: Order = await self._call(
                "get order by client id", self._client.get_order_by_client_id, cid
            )
        except APIError as exc:
            if exc.status_code == 404:
                return None
            raise
        return order

    def _track(self, order: Order, model: str, side: Side) -> _Tracked:
        cid = order.client_order_id
        tr = self._tracked.get(cid)
        if tr is None:
            tr = _Tracked(
                client_order_id=cid,
                broker_order_id=str(order.id),
                model=model,
                symbol=str(order.symbol),
                side=side,
                qty=int(float(order.qty or 0)),
            )
            self._tracked[cid] = tr
            self._by_broker_id[tr.broker_order_id] = cid
        self._update(tr, order)
        return tr

    def _update(self, tr: _Tracked, order: Order) -> None:
        filled = int(float(order.filled_qty or 0))
        if filled > tr.filled_qty:
            value = float(order.filled_avg_price or 0.0) * filled
            delta = filled - tr.filled_qty
            price = (value - tr.filled_value) / delta
            at = order.filled_at or order.updated_at
            ts = datetime_to_ts(at) if isinstance(at, datetime) else self._now_ns()
            self._fills.append(
                Fill(
                    client_order_id=tr.client_order_id,
                    broker_order_id=tr.broker_order_id,
                    model=tr.model,
                    symbol=tr.symbol,
                    side=tr.side,
                    qty=delta,
                    price=price,
                    ts=ts,
                    commission=delta * self.commission_per_share,
                )
            )
            tr.filled_qty, tr.filled_value = filled, value
        tr.done = str(getattr(order.status, "value", order.status)) in _DONE

    def _ack(
        self, tr: _Tracked, order: Order | None, *, duplicate: bool, msg: str = ""
    ) -> OrderAck:
        status = _status(order) if order is not None else OrderStatus.ACCEPTED
        return OrderAck(
            client_order_id=tr.client_order_id,
            broker_order_id=tr.broker_order_id,
            status=status,
            duplicate=duplicate,
            message=msg,
        )

    # -- Broker ----------------------------------------------------------------------------

    async def submit(self, intent: OrderIntent, *, client_order_id: str = "") -> OrderAck:
        """Place a day market order under ``client_order_id`` (default: the intent's own);
        a known client order id never places a second one."""
        cid = client_order_id or intent.client_order_id
        known = self._tracked.get(cid)
        if known is not None:
            return self._ack(known, None, duplicate=True, msg="already submitted by this trader")
        if intent.qty <= 0:
            return OrderAck(
                client_order_id=cid,
                broker_order_id="",
                status=OrderStatus.REJECTED,
                message=f"qty must be a positive whole number of shares, got {intent.qty}",
            )
        await self._ensure_account()
        request = MarketOrderRequest(
            symbol=intent.symbol,
            qty=intent.qty,
            side=OrderSide(intent.side.value),
            time_in_force=TimeInForce.DAY,
            client_order_id=cid,
        )
        try:
            order: Order = await self._call("submit order", self._client.submit_order, request)
        except APIError as exc:
            status, code, message = _error_parts(exc)
            if status == 422 and code == DUPLICATE_CODE and DUPLICATE_MESSAGE in message:
                found = await self._lookup(cid)
                if found is None:
                    raise RetryableError(
                        f"alpaca says {cid} exists but cannot find it; retry later"
                    ) from exc
                tr = self._track(found, intent.model, intent.side)
                return self._ack(tr, found, duplicate=True, msg=message)
            return OrderAck(
                client_order_id=cid,
                broker_order_id="",
                status=OrderStatus.REJECTED,
                message=f"alpaca rejected the order: HTTP {status} {code}: {message}",
            )
        except RetryableError:
            # The order may have reached Alpaca before the failure: ask before giving up.
            found = await self._lookup(cid)
            if found is None:
                raise
            tr = self._track(found, intent.model, intent.side)
            return self._ack(tr, found, duplicate=False, msg="resolved by client id lookup")
        tr = self._track(order, intent.model, intent.side)
        return self._ack(tr, order, duplicate=False)

    async def poll_fills(self) -> list[Fill]:
        """Poll every tracked open order; return fills not yet reported."""
        for tr in list(self._tracked.values()):
            if not tr.done:
                order: Order = await self._call(
                    "get order", self._client.get_order_by_id, tr.broker_order_id
                )
                self._update(tr, order)
        fills, self._fills = self._fills, []
        return fills

    async def on_bar(self, bar: Bar) -> list[Fill]:
        """Report fills (polled once per bar; Alpaca fills do not depend on our bars)."""
        return await self.poll_fills()

    async def positions(self) -> dict[str, int]:
        """Signed shares per symbol held by the account."""
        raw: list[AlpacaPosition] = await self._call(
            "get positions", self._client.get_all_positions
        )
        out = {}
        for p in raw:
            qty = abs(int(float(p.qty)))
            side = str(getattr(p.side, "value", p.side))
            out[p.symbol] = -qty if side == "short" else qty
        return dict(sorted(out.items()))

    async def _open_orders_raw(self) -> list[Order]:
        req = GetOrdersRequest(status=QueryOrderStatus.OPEN)
        orders: list[Order] = await self._call("get orders", self._client.get_orders, req)
        return orders

    async def open_orders(self) -> list[OpenOrder]:
        """Open orders of the account (every model's)."""
        return [_open_order(o) for o in await self._open_orders_raw()]

    async def cancel(self, client_order_id: str) -> bool:
        """Cancel one of our open orders; False when it is not open."""
        tr = self._tracked.get(client_order_id)
        if tr is None:
            found = await self._lookup(client_order_id)
            if found is None:
                return False
            tr = self._track(found, self.model, Side(str(getattr(found.side, "value", found.side))))
        if tr.done:
            return False
        try:
            await self._call("cancel order", self._client.cancel_order_by_id, tr.broker_order_id)
        except APIError as exc:
            if exc.status_code in (404, 422):
                return False
            raise
        return True

    async def reconcile(self, expected: Mapping[str, int] | None = None) -> ReconcileReport:
        """Check the account, read positions and open orders, adopt this model's orders."""
        await self._ensure_account()
        positions = await self.positions()
        raw = await self._open_orders_raw()
        orders = [_open_order(o) for o in raw]
        prefix = order_prefix(self.model) if self.model else None
        adopted, foreign = [], []
        for o, order in zip(orders, raw, strict=True):
            if prefix is None or not o.client_order_id.startswith(prefix):
                foreign.append(o.client_order_id)
                continue
            if o.client_order_id not in self._tracked:
                # Shares filled before this start are already in the positions read above;
                # only fills from here on are reported.
                tr = _Tracked(
                    client_order_id=o.client_order_id,
                    broker_order_id=o.broker_order_id,
                    model=self.model,
                    symbol=o.symbol,
                    side=o.side,
                    qty=o.qty,
                    filled_qty=o.filled_qty,
                    filled_value=float(order.filled_avg_price or 0.0) * o.filled_qty,
                )
                self._tracked[o.client_order_id] = tr
                self._by_broker_id[o.broker_order_id] = o.client_order_id
            adopted.append(o.client_order_id)
        return ReconcileReport(
            positions=positions,
            open_orders=orders,
            adopted=adopted,
            foreign=foreign,
            mismatches=compare_positions(expected, positions),
        )

    async def account_view(self) -> AccountView:
        """Equity, buying power and the pattern-day-trader state of the account."""
        acct: TradeAccount = await self._call("get account", self._client.get_account)
        return AccountView(
            equity=float(acct.equity or 0.0),
            buying_power=float(acct.buying_power or 0.0),
            pattern_day_trader=bool(acct.pattern_day_trader),
            daytrade_count=int(acct.daytrade_count or 0),
            account_number=acct.account_number,
        )

    async def fill_activities(
        self, after: datetime | None = None, *, page_size: int = 100
    ) -> list[FillActivity]:
        """Every execution after ``after`` (all pages), oldest first: the backfill of fills
        the ``trade_updates`` stream missed."""
        if after is not None and after.tzinfo is None:
            raise ValueError(f"naive datetime {after!r}: attach a time zone")
        params: dict[str, Any] = {"direction": "asc", "page_size": page_size}
        if after is not None:
            params["after"] = after.isoformat()
        out: list[FillActivity] = []
        while True:
            page = await self._call(
                "get fill activities", self._client.get, "/account/activities/FILL", dict(params)
            )
            try:
                acts = msgspec.convert(page, list[_WActivity])
                out.extend(_fill_activity(a) for a in acts)
            except (msgspec.ValidationError, ValueError) as exc:
                raise DataError(f"alpaca fill activities: unexpected reply: {exc}") from None
            if len(acts) < page_size:
                return out
            params["page_token"] = acts[-1].id

    async def close(self) -> None:
        """Close the HTTP session."""
        await asyncio.to_thread(self._client._session.close)


def _open_order(o: Order) -> OpenOrder:
    return OpenOrder(
        client_order_id=o.client_order_id,
        broker_order_id=str(o.id),
        symbol=str(o.symbol),
        side=Side(str(getattr(o.side, "value", o.side))),
        qty=int(float(o.qty or 0)),
        filled_qty=int(float(o.filled_qty or 0)),
        status=str(getattr(o.status, "value", o.status)),
    )
