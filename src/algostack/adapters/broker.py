"""The broker seam: one Protocol and the deterministic simulated broker.

A trader's broker is the execution gateway (``adapters/nats/orders.GatewayBroker``), or a
``SimBroker`` in process for a replay; the gateway itself talks to the real broker
(``adapters/alpaca/trading``) or to a ``SimBroker``. Each broker owns its restart state:
``checkpoint()`` is committed with the runner's state, ``restore(...)`` resumes from it, and
``committed(...)`` says the commit is durable, so a restart takes one path whatever the
broker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

from algostack.core import simfill
from algostack.core.market import Bar
from algostack.core.orders import Fill, OpenOrder, OrderAck, OrderIntent, OrderStatus, bad_qty


class Broker(Protocol):
    """Where a model's orders go. ``submit`` is idempotent per client order id."""

    async def submit(self, intent: OrderIntent) -> OrderAck:
        """Place a market order for ``intent``; a re-submit of the same id places nothing."""
        ...

    async def on_bar(self, bar: Bar | None) -> list[Fill]:
        """Give the broker a bar (None: no bar, between two); return the fills that
        happened since the last call."""
        ...

    def on_reports(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` when fills or closures arrive between bars (a broker whose fills
        need no bar), so they are booked at once rather than at the next bar."""
        ...

    def drain_closed(self) -> list[OrderAck]:
        """Orders that ended without (all of) their shares since the last call, with why."""
        ...

    def checkpoint(self) -> int:
        """A number to commit with the runner's state (``RunnerState.broker_seq``)."""
        ...

    async def restore(
        self, pending: Iterable[tuple[str, OrderIntent]], positions: Mapping[str, int], seq: int
    ) -> None:
        """Start, or resume after a restart: the open ``(broker order id, intent)`` orders, the
        positions the runner holds and the committed ``checkpoint()`` (0 on a first start)."""
        ...

    async def committed(self, seq: int) -> None:
        """The runner state holding checkpoint ``seq`` is durable."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class SimBroker:
    """The simulated broker of DESIGN.md 3.4: deterministic for a given input.

    A market order decided on bar t fills at the open of the next bar of its symbol, moved by
    ``slippage_bps`` against the trader, plus ``commission_per_share``. An order whose symbol
    never sees another bar stays open.
    """

    def __init__(
        self,
        slippage_bps: float = 1.0,
        commission_per_share: float = 0.0,
        *,
        min_commission: float = 0.0,
        model: str = "",
    ) -> None:
        self.rules = simfill.FillRules(slippage_bps, commission_per_share, min_commission)
        self.model = model
        self._pending: dict[str, tuple[str, OrderIntent]] = {}  # client id -> (broker id, intent)
        self._known: dict[str, str] = {}  # every client id ever accepted -> broker id
        self._positions: dict[str, int] = {}
        self._seq = 0
        self.fills: list[Fill] = []
        self.submits = 0
        self.closed = False

    async def submit(self, intent: OrderIntent) -> OrderAck:
        """Queue a market order; a known client order id returns the existing order."""
        self.submits += 1
        cid = intent.client_order_id
        if cid in self._known:
            status = OrderStatus.ACCEPTED if cid in self._pending else OrderStatus.FILLED
            return OrderAck(
                client_order_id=cid,
                broker_order_id=self._known[cid],
                status=status,
                duplicate=True,
                message="client_order_id already used: no new order placed",
            )
        if (refused := bad_qty(intent, cid)) is not None:
            return refused
        if self.closed:
            return OrderAck.rejected(cid, "broker is closed")
        self._seq += 1
        oid = f"sim-{self._seq:08d}"
        self._known[cid] = oid
        self._pending[cid] = (oid, intent)
        return OrderAck(client_order_id=cid, broker_order_id=oid, status=OrderStatus.ACCEPTED)

    async def on_bar(self, bar: Bar | None) -> list[Fill]:
        """Fill the pending orders this bar can fill, in submission order."""
        if not self._pending or bar is None:
            return []
        fills = simfill.match_by_id(self._pending, bar, self.rules)
        for f in fills:
            del self._pending[f.client_order_id]
            self._positions[f.symbol] = self._positions.get(f.symbol, 0) + f.signed_qty
        self.fills.extend(fills)
        return fills

    @property
    def seq(self) -> int:
        """The last order number given out (``sim-<seq>``); commit it to survive a restart."""
        return self._seq

    def checkpoint(self) -> int:
        """The last order number given out: restored, new orders are numbered after it."""
        return self._seq

    async def committed(self, seq: int) -> None:
        """Nothing to release: the sim keeps no outside state."""

    def drain_closed(self) -> list[OrderAck]:
        """The sim never ends an order without filling it."""
        return []

    def on_reports(self, wake: Callable[[], None]) -> None:
        """The sim fills only on bars: nothing ever arrives between them."""

    async def restore(
        self, pending: Iterable[tuple[str, OrderIntent]], positions: Mapping[str, int], seq: int
    ) -> None:
        """``restore_state``, as the ``Broker`` protocol spells it."""
        self.restore_state(pending, positions, seq)

    def restore_state(
        self,
        pending: Iterable[tuple[str, OrderIntent]],
        positions: Mapping[str, int],
        seq: int,
    ) -> None:
        """Resume after a restart: re-open ``pending`` ``(broker order id, intent)`` orders,
        hold ``positions`` (signed shares per symbol) and number new orders after ``seq``.

        Call it before the first bar. A re-opened order fills at the next bar of its symbol
        like any other, and a re-submit of its client order id is answered as a duplicate.
        ``ValueError`` (nothing changed) for a negative ``seq``, a quantity that is not
        positive, or a broker order id given to two client order ids.
        """
        if seq < 0:
            raise ValueError(f"order sequence must be >= 0, got {seq}")
        orders: dict[str, tuple[str, OrderIntent]] = {}
        owners: dict[str, str] = {}
        for oid, intent in pending:
            cid = intent.client_order_id
            if intent.qty <= 0:
                raise ValueError(f"pending order {cid}: qty must be positive, got {intent.qty}")
            if owners.setdefault(oid, cid) != cid:
                raise ValueError(f"broker order id {oid} given to {owners[oid]} and {cid}")
            orders[cid] = (oid, intent)
        for cid, order in orders.items():
            self._known[cid] = order[0]
            self._pending[cid] = order
        self._positions = {s: int(q) for s, q in positions.items() if q}
        self._seq = max(self._seq, seq)

    async def positions(self) -> dict[str, int]:
        """Signed shares per symbol (flat symbols omitted)."""
        return {s: q for s, q in sorted(self._positions.items()) if q != 0}

    async def open_orders(self) -> list[OpenOrder]:
        """Orders waiting for their next bar."""
        return [
            OpenOrder(
                client_order_id=cid,
                broker_order_id=oid,
                symbol=it.symbol,
                side=it.side,
                qty=it.qty,
            )
            for cid, (oid, it) in self._pending.items()
        ]

    async def cancel(self, client_order_id: str) -> bool:
        """Drop a pending order."""
        return self._pending.pop(client_order_id, None) is not None

    async def close(self) -> None:
        """Refuse further orders."""
        self.closed = True


if TYPE_CHECKING:  # mypy proves SimBroker satisfies the protocol
    _sim_is_broker: Broker = SimBroker()
