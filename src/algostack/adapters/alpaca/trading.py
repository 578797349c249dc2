"""The Alpaca trading REST client of the execution gateway (aiohttp on the event loop).

Paper by default; live needs ``live=True`` (and ``paper=False``) and live keys, and paper
refuses live keys (DESIGN.md 3.5): paper key ids start with ``PK``, live ones with ``AK``,
and the account number is checked again at the first call (paper accounts start ``PA``).
Every order carries a deterministic ``client_order_id`` (the gateway's batch id). A 429 or
504 is sent again (``Retry-After`` honoured, through ``retry_async``), as alpaca-py does; a
resend of an order that did reach Alpaca answers 422 ``client_order_id must be unique``
(code 40010001), resolved by looking the order up by its client id, so no batch ever
becomes two orders. REST calls share a token bucket under Alpaca's 200 requests/minute.

Why not alpaca-py's ``TradingClient``: it is synchronous, so every call took a worker-thread
hop and built pydantic models, ~0.5 ms of the order path's latency (docs/performance.md);
these six routes are small, and ``tests/integration/test_fake_alpaca_trading_rules.py``
holds the fake to what alpaca-py itself sends and parses. Fills come from the
``trade_updates`` stream (``trade_updates.py``), not from polling.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import msgspec

from algostack.adapters.alpaca.rest import Reply, RestSession
from algostack.adapters.alpaca.wire import rfc3339_to_ns
from algostack.core.backoff import Backoff, retry_async
from algostack.core.desk_risk import AccountView
from algostack.core.market import ts_to_datetime
from algostack.core.orders import OrderAck, OrderIntent, OrderStatus, bad_qty
from algostack.core.ratelimit import TokenBucket
from algostack.errors import AuthError, ConfigError, DataError, FatalError, RetryableError
from algostack.logs import truncate

PAPER_REST_URL = "https://paper-api.alpaca.markets"
LIVE_REST_URL = "https://api.alpaca.markets"
RESEND_STATUSES = frozenset({429, 504})
"""Answers after which a request is sent again (alpaca-py's ``retry_exception_codes``)."""
RESENDS = 3
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


class BrokerOrder(msgspec.Struct, frozen=True):
    """An order as Alpaca holds it (the fields the gateway reads)."""

    id: str
    client_order_id: str
    symbol: str
    side: str
    status: str
    """Alpaca's order status as sent (``new``, ``filled``, ``canceled``, ...)."""
    qty: int
    filled_qty: int
    filled_avg_price: float
    ts: int
    """UTC ns of ``filled_at``, else ``updated_at``."""


Number = str | int | float | None
"""Alpaca sends quantities and prices as strings; numbers and null are read too."""


def shares_of(v: Number) -> int:
    """A quantity as whole shares; 0 when absent (null or empty)."""
    return int(float(v or 0))


def float_of(v: Number) -> float:
    """A price or amount; 0.0 when absent (null or empty)."""
    return float(v or 0.0)


class WireOrder(msgspec.Struct):
    """An Alpaca order as the REST API and the ``trade_updates`` stream send it."""

    id: str
    client_order_id: str
    symbol: str
    side: str
    status: str = ""
    updated_at: str | None = None
    qty: Number = None
    filled_qty: Number = None
    filled_avg_price: Number = None
    filled_at: str | None = None


class _WAccount(msgspec.Struct):
    account_number: str
    equity: str | None = None
    buying_power: str | None = None
    pattern_day_trader: bool = False
    daytrade_count: int = 0
    trading_blocked: bool = False
    account_blocked: bool = False


class _WPosition(msgspec.Struct):
    symbol: str
    qty: str
    side: str = "long"


class _WClock(msgspec.Struct):
    timestamp: str


class _WError(msgspec.Struct):
    code: int | None = None
    message: str = ""


def broker_order(w: WireOrder) -> BrokerOrder:
    """The figures of an Alpaca order (``ValueError`` on a malformed number or time)."""
    at = w.filled_at or w.updated_at
    return BrokerOrder(
        id=w.id,
        client_order_id=w.client_order_id,
        symbol=w.symbol,
        side=w.side,
        status=w.status,
        qty=shares_of(w.qty),
        filled_qty=shares_of(w.filled_qty),
        filled_avg_price=float_of(w.filled_avg_price),
        ts=rfc3339_to_ns(at) if at else 0,
    )


def _decode(what: str, reply: Reply, typ: Any) -> Any:
    try:
        return msgspec.json.decode(reply.body, type=typ)
    except (msgspec.MsgspecError, ValueError) as exc:
        raise DataError(
            f"alpaca {what}: unexpected reply ({exc}): {truncate(reply.body)}"
        ) from None


def _error(reply: Reply) -> tuple[int | None, str]:
    """Alpaca's error ``code`` and ``message`` (the raw body when it is not JSON)."""
    try:
        err = msgspec.json.decode(reply.body, type=_WError)
    except (msgspec.MsgspecError, ValueError):
        return None, truncate(reply.body, 200)
    return err.code, err.message[:200]


def _status(raw: str) -> OrderStatus:
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
        timeout_s: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_keys(key_id, paper=paper, live=live)
        self.live = live
        base = url or (LIVE_REST_URL if live else PAPER_REST_URL)
        self._rest = RestSession(base.rstrip("/") + "/v2", key_id, secret_key, timeout_s=timeout_s)
        self._retry_wait_s = retry_wait_s
        self.bucket = TokenBucket(rate_per_min, burst, clock=clock)
        self._sleep = sleep
        self._clock = clock
        self._account_checked = False
        self.requests = 0

    # -- plumbing --------------------------------------------------------------------------

    async def _call(
        self,
        what: str,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Reply:
        """One REST call within the shared request budget, sent again after a 429/504;
        ``RetryableError`` for no answer, a 429/504 past the resends, or a 5xx;
        ``AuthError`` for 401. Other statuses are the caller's to read."""

        async def once() -> Reply:
            await self.bucket.acquire(sleep=self._sleep)
            self.requests += 1
            reply = await self._rest.call(method, path, params=params, body=body, what=what)
            if reply.status in RESEND_STATUSES:
                raise RetryableError(
                    f"alpaca {what}: HTTP {reply.status} {_error(reply)[1]}",
                    retry_after=reply.retry_after,
                )
            return reply

        wait = self._retry_wait_s
        reply = await retry_async(
            once,
            backoff=Backoff(base=wait, factor=1.0, cap=wait, floor=wait),
            deadline_s=RESENDS * wait + 60.0,
            max_attempts=RESENDS + 1,
            sleep=self._sleep,
            clock=self._clock,
        )
        if reply.status == 401:
            raise AuthError(f"alpaca {what}: credentials refused ({_error(reply)[1]})")
        if reply.status >= 500:
            raise RetryableError(f"alpaca {what}: HTTP {reply.status} {_error(reply)[1]}")
        return reply

    async def _get(
        self, what: str, path: str, typ: Any, params: dict[str, str] | None = None
    ) -> Any:
        reply = await self._call(what, "GET", path, params=params)
        if reply.status != 200:
            code, message = _error(reply)
            raise FatalError(f"alpaca {what}: HTTP {reply.status} {code}: {message}")
        return _decode(what, reply, typ)

    async def _ensure_account(self) -> None:
        if self._account_checked:
            return
        acct: _WAccount = await self._get("get account", "/account", _WAccount)
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
        if (refused := bad_qty(intent, cid)) is not None:
            return refused
        await self._ensure_account()
        body = _ORDER_ENC.encode(
            {
                "symbol": intent.symbol,
                "qty": str(intent.qty),
                "side": intent.side.value,
                "type": "market",
                "time_in_force": "day",
                "client_order_id": cid,
            }
        )
        try:
            reply = await self._call("submit order", "POST", "/orders", body=body)
        except RetryableError:
            # The order may have reached Alpaca before the failure: ask before giving up.
            found = await self.order_by_client_id(cid)
            if found is None:
                raise
            return _ack(found, duplicate=False, message="resolved by client id lookup")
        if reply.status == 200:
            return _ack(broker_order(_decode("submit order", reply, WireOrder)), duplicate=False)
        code, message = _error(reply)
        if reply.status == 422 and code == DUPLICATE_CODE and DUPLICATE_MESSAGE in message:
            found = await self.order_by_client_id(cid)
            if found is None:
                raise RetryableError(f"alpaca says {cid} exists but cannot find it; retry later")
            return _ack(found, duplicate=True, message=message)
        return OrderAck.rejected(
            cid, f"alpaca rejected the order: HTTP {reply.status} {code}: {message}"
        )

    async def order_by_client_id(self, cid: str) -> BrokerOrder | None:
        """The order Alpaca holds under client order id ``cid``; None when it has none."""
        return await self._order(
            "get order by client id", "/orders:by_client_order_id", {"client_order_id": cid}
        )

    async def order_by_id(self, order_id: str) -> BrokerOrder | None:
        """The order Alpaca holds under its own id ``order_id``; None when it has none."""
        return await self._order("get order", f"/orders/{order_id}")

    async def _order(
        self, what: str, path: str, params: dict[str, str] | None = None
    ) -> BrokerOrder | None:
        reply = await self._call(what, "GET", path, params=params)
        if reply.status == 404:
            return None
        if reply.status != 200:
            code, message = _error(reply)
            raise FatalError(f"alpaca {what}: HTTP {reply.status} {code}: {message}")
        return broker_order(_decode(what, reply, WireOrder))

    # -- account ---------------------------------------------------------------------------

    async def clock(self) -> datetime:
        """The broker's current time (``GET /v2/clock``)."""
        clock: _WClock = await self._get("get clock", "/clock", _WClock)
        try:
            return ts_to_datetime(rfc3339_to_ns(clock.timestamp))
        except ValueError as exc:
            raise DataError(f"alpaca get clock: {exc}") from None

    async def positions(self) -> dict[str, int]:
        """Signed shares per symbol held by the account."""
        raw: list[_WPosition] = await self._get("get positions", "/positions", list[_WPosition])
        out = {}
        for p in raw:
            qty = abs(int(float(p.qty)))
            out[p.symbol] = -qty if p.side == "short" else qty
        return dict(sorted(out.items()))

    async def account_view(self) -> AccountView:
        """Equity, buying power and the pattern-day-trader state of the account."""
        acct: _WAccount = await self._get("get account", "/account", _WAccount)
        return AccountView(
            equity=float_of(acct.equity),
            buying_power=float_of(acct.buying_power),
            pattern_day_trader=acct.pattern_day_trader,
            daytrade_count=acct.daytrade_count,
            account_number=acct.account_number,
        )

    async def fill_activities(
        self, after: datetime | None = None, *, page_size: int = 100
    ) -> list[FillActivity]:
        """Every execution after ``after`` (all pages), oldest first: the backfill of fills
        the ``trade_updates`` stream missed."""
        if after is not None and after.tzinfo is None:
            raise ValueError(f"naive datetime {after!r}: attach a time zone")
        params: dict[str, str] = {"direction": "asc", "page_size": str(page_size)}
        if after is not None:
            params["after"] = after.isoformat()
        out: list[FillActivity] = []
        what = "get fill activities"
        while True:
            acts = await self._get(what, "/account/activities/FILL", list[_WActivity], dict(params))
            try:
                out.extend(_fill_activity(a) for a in acts)
            except ValueError as exc:
                raise DataError(f"alpaca {what}: unexpected reply: {exc}") from None
            if len(acts) < page_size:
                return out
            params["page_token"] = acts[-1].id

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._rest.close()


_ORDER_ENC = msgspec.json.Encoder()


def _ack(order: BrokerOrder, *, duplicate: bool, message: str = "") -> OrderAck:
    return OrderAck(
        client_order_id=order.client_order_id,
        broker_order_id=order.id,
        status=_status(order.status),
        duplicate=duplicate,
        message=message,
    )
