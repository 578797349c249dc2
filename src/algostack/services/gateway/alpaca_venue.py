"""The Alpaca account as the gateway's venue: REST for orders, ``trade_updates`` for fills.

Orders go through ``AlpacaBroker.submit`` (rate limit, error mapping, a resend resolved by
the client order id). Every ``trade_updates`` event is turned into the order's cumulative
figures (``filled_qty``, ``filled_avg_price``), whatever its type, so an unknown event, a
duplicate or a reordering cannot book a share twice, and the gateway books only growth.
The venue is ready only while the stream listens; after each (re)connect, and on every
reconciliation, ``sync`` looks up each working order by its client order id (a lost event
costs nothing) and reads the account's fill activities since the last look, so a fill of
an order the desk never placed is reported, never booked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from algostack.adapters.alpaca.trade_updates import LIVE_URL, PAPER_URL, TradeUpdatesStream
from algostack.adapters.alpaca.trading import AlpacaBroker, check_keys
from algostack.core.backoff import Backoff
from algostack.core.desk_risk import AccountView
from algostack.core.execution import VENUE_CID_PREFIX
from algostack.core.market import Bar
from algostack.core.orders import OrderIntent, OrderStatus
from algostack.core.simfill import FillRules
from algostack.errors import ConfigError
from algostack.services.gateway.venue import OnUpdate, VenueOrder, VenueUpdate

if TYPE_CHECKING:
    from algostack.adapters.alpaca.trade_updates import TradeUpdate
    from algostack.adapters.alpaca.trading import BrokerOrder
    from algostack.config import AlpacaSettings

log = logging.getLogger("algostack.gateway.alpaca")

DONE = frozenset(
    {
        "filled",
        "canceled",
        "expired",
        "rejected",
        "done_for_day",
        "replaced",
        "suspended",
        "stopped",
    }
)


class AlpacaVenue:
    """``Venue`` over one Alpaca account (paper unless live is opted into)."""

    name = "alpaca"

    def __init__(
        self,
        broker: AlpacaBroker,
        *,
        key_id: str,
        secret_key: str,
        stream_url: str,
        commission_per_share: float = 0.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.rules = FillRules(0.0, commission_per_share)
        self.broker = broker
        self._key_id = key_id
        self._secret = secret_key
        self.stream_url = stream_url
        self._backoff = backoff or Backoff(base=0.5, cap=30.0)
        self._stream: TradeUpdatesStream | None = None
        self._task: asyncio.Task[None] | None = None
        self._on_update: OnUpdate | None = None
        self._on_ready: Callable[[], Awaitable[None]] | None = None
        self._order_ids: dict[str, str] = {}
        """Alpaca order id -> our client order id, for the orders this venue placed."""
        self._activities_after: datetime | None = None
        self._activities_seen: set[str] = set()
        self._foreign_orders: set[str] = set()
        self.failure: BaseException | None = None
        self.foreign_fills = 0

    @classmethod
    def from_settings(cls, alpaca: AlpacaSettings) -> AlpacaVenue:
        """Keys, the live interlock and URLs from the settings; ``ConfigError`` when unusable."""
        if not alpaca.has_keys or alpaca.key_id is None or alpaca.secret_key is None:
            raise ConfigError(
                "--broker alpaca needs keys: set APCA_API_KEY_ID and APCA_API_SECRET_KEY"
            )
        key_id = alpaca.key_id.get_secret_value()
        secret = alpaca.secret_key.get_secret_value()
        check_keys(key_id, paper=not alpaca.live, live=alpaca.live)
        broker = AlpacaBroker(
            key_id,
            secret,
            paper=not alpaca.live,
            live=alpaca.live,
            url=alpaca.trading_url,
        )
        url = alpaca.trading_stream_url or (LIVE_URL if alpaca.live else PAPER_URL)
        return cls(broker, key_id=key_id, secret_key=secret, stream_url=url)

    @property
    def ready(self) -> bool:
        """True while ``trade_updates`` is listening: no order is placed blind."""
        return self._stream is not None and self._stream.connected

    async def start(self, on_update: OnUpdate, on_ready: Callable[[], Awaitable[None]]) -> None:
        """Check the account, then follow ``trade_updates`` in a task (reconnecting)."""
        self._on_update, self._on_ready = on_update, on_ready
        await self.broker.account_view()  # refused keys or a blocked account fail here
        # fills from a minute before start on, in the broker's own time
        self._activities_after = await self.broker.clock() - timedelta(minutes=1)
        self._stream = TradeUpdatesStream(
            self._key_id,
            self._secret,
            url=self.stream_url,
            on_update=self._on_trade_update,
            on_connected=self._on_connected,
            backoff=self._backoff,
        )
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._stream is not None
        try:
            await self._stream.run()
        except Exception as exc:  # AuthError and the like: the gateway cannot go on
            self.failure = exc
            log.error("trade_updates stream failed: %s", exc)

    async def _on_connected(self) -> None:
        log.info("trade_updates listening", extra={"fields": {"url": self.stream_url}})
        if self._on_ready is not None:
            await self._on_ready()

    async def _on_trade_update(self, tu: TradeUpdate) -> None:
        if self._on_update is not None:
            await self._on_update(_venue_update(tu.order, tu.ts or time.time_ns(), tu.event))

    async def place(self, order: VenueOrder) -> str:
        """Submit a day market order; "" when Alpaca holds it, else Alpaca's refusal."""
        intent = OrderIntent(
            model="gateway",
            symbol=order.symbol,
            side=order.side,
            qty=order.qty,
            bar_ts=order.bar_ts,
        )
        ack = await self.broker.submit(intent, client_order_id=order.client_order_id)
        if ack.status is OrderStatus.REJECTED:
            return ack.message
        self._order_ids[ack.broker_order_id] = order.client_order_id
        return ""

    async def sync(self, orders: list[VenueOrder]) -> None:
        """Report each order as Alpaca holds it (placing again one it never got), then read
        the fill activities since the last sync for fills of orders the desk never placed."""
        for order in orders:
            cid = order.client_order_id
            found = await self.broker.order_by_client_id(cid)
            if found is None:
                log.warning("order %s is not at Alpaca: placing it again", cid)
                await self.place(order)
                continue
            self._order_ids[found.id] = cid
            if self._on_update is not None:
                await self._on_update(_venue_update(found, found.ts))
        for act in await self.broker.fill_activities(self._activities_after):
            if act.activity_id in self._activities_seen:
                continue
            self._activities_seen.add(act.activity_id)
            at = datetime.fromtimestamp(act.ts / 1e9, UTC)
            if self._activities_after is None or at > self._activities_after:
                self._activities_after = at - timedelta(seconds=1)  # ids drop the overlap
            if act.order_id not in self._order_ids and not await self._desk_order(act.order_id):
                self.foreign_fills += 1
                log.error(
                    "fill of an order the desk never placed: %s %s %d @ %.4f (order %s)",
                    act.side,
                    act.symbol,
                    act.qty,
                    act.price,
                    act.order_id,
                    extra={"fields": {"symbol": act.symbol}},
                )

    async def _desk_order(self, order_id: str) -> bool:
        """Whether an order this venue has not seen is one the desk placed: a fill of an order
        that finished before this process started (a restarted gateway knows only the
        working ones). Looked up once per order; the desk's client order ids start ``gw-``."""
        if order_id in self._foreign_orders:  # one look per order, not per fill
            return False
        found = await self.broker.order_by_id(order_id)
        if found is None or not found.client_order_id.startswith(VENUE_CID_PREFIX):
            self._foreign_orders.add(order_id)
            return False
        self._order_ids[order_id] = found.client_order_id
        log.debug("fill of desk order %s from before this start", found.client_order_id)
        return True

    async def on_bar(self, bar: Bar) -> None:
        """Alpaca fills do not depend on our bars."""

    async def account(self) -> AccountView | None:
        """The account's equity, buying power and day-trade count."""
        return await self.broker.account_view()

    async def positions(self) -> dict[str, int]:
        """Signed shares per symbol held by the account."""
        return await self.broker.positions()

    async def close(self) -> None:
        """Stop the stream, close the HTTP session."""
        if self._stream is not None:
            self._stream.stop()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 5.0)
        await self.broker.close()


def _venue_update(order: BrokerOrder, ts: int, event: str = "") -> VenueUpdate:
    """What the gateway books of an Alpaca order as it stands (from an event or a lookup)."""
    status = order.status
    reason = f"alpaca: order {status}" + (f" ({event})" if event else "")
    return VenueUpdate(
        client_order_id=order.client_order_id,
        cum_qty=order.filled_qty,
        cum_value=order.filled_qty * order.filled_avg_price,
        ts=ts,
        done=status in DONE,
        reason="" if status == "filled" else reason,
    )
