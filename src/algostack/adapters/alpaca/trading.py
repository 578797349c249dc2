"""The Alpaca trading REST client of the execution gateway (alpaca-py's ``TradingClient``).

Paper by default; live needs ``live=True`` (and ``paper=False``) and live keys, and paper
refuses live keys (DESIGN.md 3.5): paper key ids start with ``PK``, live ones with ``AK``,
and the account number is checked again at the first call (paper accounts start ``PA``).
Every order carries a deterministic ``client_order_id`` (the gateway's batch id); alpaca-py
re-sends POST /orders on 429/504, and a resend of an order that did reach Alpaca answers 422
``client_order_id must be unique`` (code 40010001), which is resolved by looking the order
up by its client id, so no batch ever becomes two orders. REST calls share a token bucket
under Alpaca's 200 requests/minute. alpaca-py is synchronous: calls run in a thread. Fills
come from the ``trade_updates`` stream (``trade_updates.py``), not from polling.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.models import Order, TradeAccount
from alpaca.trading.models import Position as AlpacaPosition
from alpaca.trading.requests import MarketOrderRequest

from algostack.adapters.alpaca.wire import rfc3339_to_ns
from algostack.core.desk_risk import AccountView
from algostack.core.orders import OrderAck, OrderIntent, OrderStatus
from algostack.core.ratelimit import TokenBucket
from algostack.errors import AuthError, ConfigError, DataError, FatalError, RetryableError

DUPLICATE_CODE = 40010001
DUPLICATE_MESSAGE = "client_order_id must be unique"


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
    """Alpaca's trading REST API for the gateway (paper by default)."""

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
        retry_wait_s: float = 3.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_keys(key_id, paper=paper, live=live)
        self.live = live
        self._client = TradingClient(key_id, secret_key, paper=not live, url_override=url)
        # alpaca-py sleeps this long (in our worker thread) before each of its 429/504 retries.
        self._client._retry_wait = retry_wait_s  # type: ignore[assignment]
        self.bucket = TokenBucket(rate_per_min, burst, clock=clock)
        self._sleep = sleep
        self._account_checked = False
        self.requests = 0

    # -- plumbing --------------------------------------------------------------------------

    async def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """One REST call in a worker thread, within the shared request budget (calls run
        concurrently: requests' connection pool is thread-safe)."""
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

    # -- orders ----------------------------------------------------------------------------

    async def submit(self, intent: OrderIntent, *, client_order_id: str = "") -> OrderAck:
        """Place a day market order for ``intent`` under ``client_order_id`` (default: the
        intent's own); a client order id Alpaca already holds never places a second one."""
        cid = client_order_id or intent.client_order_id
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
                found = await self.order_by_client_id(cid)
                if found is None:
                    raise RetryableError(
                        f"alpaca says {cid} exists but cannot find it; retry later"
                    ) from exc
                return _ack(found, duplicate=True, message=message)
            return OrderAck(
                client_order_id=cid,
                broker_order_id="",
                status=OrderStatus.REJECTED,
                message=f"alpaca rejected the order: HTTP {status} {code}: {message}",
            )
        except RetryableError:
            # The order may have reached Alpaca before the failure: ask before giving up.
            found = await self.order_by_client_id(cid)
            if found is None:
                raise
            return _ack(found, duplicate=False, message="resolved by client id lookup")
        return _ack(order, duplicate=False)

    async def order_by_client_id(self, cid: str) -> Order | None:
        """The order Alpaca holds under client order id ``cid``; None when it has none."""
        try:
            order: Order = await self._call(
                "get order by client id", self._client.get_order_by_client_id, cid
            )
        except APIError as exc:
            if exc.status_code == 404:
                return None
            raise
        return order

    # -- account ---------------------------------------------------------------------------

    async def clock(self) -> datetime:
        """The broker's current time (``GET /v2/clock``)."""
        clock = await self._call("get clock", self._client.get_clock)
        ts: datetime = clock.timestamp
        return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)

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


def _ack(order: Order, *, duplicate: bool, message: str = "") -> OrderAck:
    return OrderAck(
        client_order_id=order.client_order_id,
        broker_order_id=str(order.id),
        status=_status(order),
        duplicate=duplicate,
        message=message,
    )
