"""Netting and attribution of one symbol's intents for one decision bar (pure, deterministic).

The gateway nets the intents of one symbol and one decision bar into at most one venue
order and attributes every share back to the models, so the model books always sum to
the account:

- the venue order is the net: ``buy_qty - sell_qty`` shares on the side of the net;
- every intent on the minority side is crossed in full, and as many shares of the
  net-side intents are crossed against them, apportioned in proportion to their sizes
  (largest remainder, ties to the earlier intent); internal crosses sum to zero shares;
- the rest of each net-side intent is its venue share; each venue execution is split
  among the net-side intents in proportion to the venue shares they still wait for;
- crosses are booked at the price of the first venue execution (or at a reference price
  the caller passes to ``cross``), each side priced as the model would have traded it; an
  intent's crossed and venue shares of one execution are one fill.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import msgspec

from algostack.core.orders import MAX_CLIENT_ORDER_ID, Fill, OrderIntent, Side
from algostack.core.simfill import FillRules
from algostack.errors import DataError

VENUE_CID_PREFIX = "gw-"
"""Every venue order the desk places has client order id ``gw-<batch_id>``: how the desk
tells its own orders at the broker from anyone else's (one gateway per account)."""
_ID_RE = re.compile(r"[A-Za-z0-9_.-]+")
_CROSS = "x"


def split(total: int, weights: Sequence[int]) -> list[int]:
    """Apportion ``total`` shares in proportion to ``weights`` by largest remainder.

    The parts sum to ``total`` and none exceeds its weight; equal remainders go to the
    lower index. ValueError when ``total`` is negative or above ``sum(weights)``, or a
    weight is negative.
    """
    if total < 0:
        raise ValueError(f"cannot split a negative total ({total})")
    if any(w < 0 for w in weights):
        raise ValueError(f"weights must be >= 0, got {list(weights)}")
    whole = sum(weights)
    if total > whole:
        raise ValueError(f"cannot split {total} shares over weights summing to {whole}")
    if total == 0:
        return [0] * len(weights)
    parts = [total * w // whole for w in weights]
    left = total - sum(parts)
    if left:
        # Remainders total*w % whole, largest first; sorted() is stable, so ties keep the
        # lower index first. Only indices with a non-zero remainder can be reached (left
        # is below their count), and those parts sit strictly below their weight.
        order = sorted(range(len(weights)), key=lambda i: -(total * weights[i] % whole))
        for i in order[:left]:
            parts[i] += 1
    return parts


class OverfillError(DataError, ValueError):
    """A venue execution larger than what remains of the venue order."""


class Execution(msgspec.Struct, frozen=True):
    """One execution of the venue order, as the venue reports it."""

    execution_id: str
    qty: int
    price: float
    ts: int
    """Execution time, UTC ns."""


class Attributed(msgspec.Struct, frozen=True):
    """A fill of one model's intent with a deterministic id for de-duplication downstream.

    ``fill_id`` is ``<batch_id>:<execution_id>:<intent index>`` for a venue execution and
    ``<batch_id>:x:<intent index>`` for a crossed part.
    """

    fill: Fill
    fill_id: str


class BatchBook:
    """The intents of one symbol and one decision bar, netted into at most one venue order.

    Feed it ``cross`` (optional: the first ``execute`` crosses at its price), ``execute``
    for each venue execution and ``close`` when the venue order ends unfilled. Every method
    returns the ``Attributed`` fills it produced, in intent order, crosses first.
    """

    def __init__(self, batch_id: str, intents: Sequence[OrderIntent], rules: FillRules) -> None:
        if not intents:
            raise ValueError(f"batch {batch_id!r}: no intents")
        venue_cid = f"{VENUE_CID_PREFIX}{batch_id}"
        if len(venue_cid) > MAX_CLIENT_ORDER_ID or not _ID_RE.fullmatch(batch_id):
            raise ValueError(
                f"batch id {batch_id!r}: the venue client order id {venue_cid!r} must be at "
                f"most {MAX_CLIENT_ORDER_ID} characters of [A-Za-z0-9_.-]"
            )
        first = intents[0]
        cids: list[str] = []
        for it in intents:
            if it.symbol != first.symbol:
                raise ValueError(f"batch {batch_id}: mixed symbols {first.symbol} and {it.symbol}")
            if it.bar_ts != first.bar_ts:
                raise ValueError(f"batch {batch_id}: mixed bar_ts {first.bar_ts} and {it.bar_ts}")
            if it.qty <= 0:
                raise ValueError(
                    f"batch {batch_id}: {it.model} {it.side} qty must be positive, got {it.qty}"
                )
            cid = it.client_order_id
            if cid in cids:
                raise ValueError(f"batch {batch_id}: client order id {cid} appears twice")
            cids.append(cid)

        self._batch_id = batch_id
        self._venue_cid = venue_cid
        self._cross_oid = f"x-{batch_id}"
        self._intents = tuple(intents)
        self._cids = tuple(cids)
        self._index = {cid: i for i, cid in enumerate(cids)}
        self._sides = tuple(Side(it.side) for it in intents)
        self._rules = rules
        self._buy = sum(it.qty for it, s in zip(intents, self._sides, strict=True) if s is Side.BUY)
        self._sell = sum(it.qty for it in intents) - self._buy
        net = self._buy - self._sell
        self._venue_side = Side.for_delta(net) if net else None

        # Crossed part and venue share of every intent (see the module docstring).
        n = len(intents)
        self._crossed_part = [0] * n
        self._venue_share = [0] * n
        net_side = [i for i in range(n) if self._sides[i] is self._venue_side]
        for i in range(n):
            if self._sides[i] is not self._venue_side:
                self._crossed_part[i] = intents[i].qty
        parts = split(self.crossed, [intents[i].qty for i in net_side]) if net_side else []
        for i, part in zip(net_side, parts, strict=True):
            self._crossed_part[i] = part
            self._venue_share[i] = intents[i].qty - part
        self._net_side = tuple(net_side)

        self._filled = [0] * n
        self._venue_filled = [0] * n
        self._crossed_done = False
        self._executed = 0
        self._executions: set[str] = set()
        self.duplicates = 0
        """Venue executions ignored because their ``execution_id`` was already booked."""
        self.close_reason: str | None = None
        """Why the venue order ended, once ``close`` was called."""

    # -- figures ---------------------------------------------------------------------------

    @property
    def batch_id(self) -> str:
        """The batch's id (the venue order's client order id is ``gw-<batch_id>``)."""
        return self._batch_id

    @property
    def symbol(self) -> str:
        """The symbol of every intent."""
        return self._intents[0].symbol

    @property
    def bar_ts(self) -> int:
        """The decision bar of every intent (UTC ns)."""
        return self._intents[0].bar_ts

    @property
    def intents(self) -> tuple[OrderIntent, ...]:
        """The intents, in the order given."""
        return self._intents

    @property
    def buy_qty(self) -> int:
        """Shares bought over all intents."""
        return self._buy

    @property
    def sell_qty(self) -> int:
        """Shares sold over all intents."""
        return self._sell

    @property
    def net(self) -> int:
        """Signed net shares, buys minus sells: what the venue order trades."""
        return self._buy - self._sell

    @property
    def crossed(self) -> int:
        """Shares crossed internally on each side: ``min(buy_qty, sell_qty)``."""
        return min(self._buy, self._sell)

    @property
    def venue_side(self) -> Side | None:
        """The venue order's side; None when the intents net to zero (no venue order)."""
        return self._venue_side

    @property
    def venue_qty(self) -> int:
        """The venue order's size: ``abs(net)``."""
        return abs(self.net)

    @property
    def venue_client_order_id(self) -> str:
        """The venue order's client order id, ``gw-<batch_id>``."""
        return self._venue_cid

    @property
    def executed(self) -> int:
        """Shares the venue executed so far."""
        return self._executed

    @property
    def venue_remaining(self) -> int:
        """Shares of the venue order not executed yet."""
        return self.venue_qty - self._executed

    @property
    def is_crossed(self) -> bool:
        """True once the crossed shares were booked (or given up by ``close``)."""
        return self._crossed_done

    @property
    def done(self) -> bool:
        """True when every intent is filled in full or the venue order was closed."""
        if self.close_reason is not None:
            return True
        return self._crossed_done and self._executed == self.venue_qty

    def filled(self, cid: str) -> int:
        """Shares booked so far for the intent with client order id ``cid``."""
        return self._filled[self._at(cid)]

    def remaining(self, cid: str) -> int:
        """Shares of intent ``cid`` not booked (after ``close``, never to come)."""
        i = self._at(cid)
        return self._intents[i].qty - self._filled[i]

    def _at(self, cid: str) -> int:
        try:
            return self._index[cid]
        except KeyError:
            raise KeyError(f"batch {self._batch_id}: no intent {cid}") from None

    # -- events ----------------------------------------------------------------------------

    def cross(self, price: float, ts: int) -> list[Attributed]:
        """Book the crossed shares at reference ``price``; [] when already crossed.

        Every minority-side intent is filled in full, every net-side intent its crossed
        part. When the intents net to zero this completes the batch.
        """
        if self._crossed_done:
            return []
        _check_price(self._batch_id, price)
        self._crossed_done = True
        out = []
        for i, part in enumerate(self._crossed_part):
            if part:
                out.append(self._book(i, part, price, ts, self._cross_oid, _CROSS))
        return out

    def execute(self, ex: Execution) -> list[Attributed]:
        """Book one venue execution; [] for an ``execution_id`` already booked.

        Crosses at ``ex.price`` when not crossed yet, and splits ``ex.qty`` among the
        net-side intents by the venue shares they still wait for; an intent given crossed
        and venue shares by the same execution gets them as one fill (so a batch filled in
        one execution gives each model exactly one fill, as it would have alone).
        OverfillError (book unchanged) when ``ex.qty`` exceeds the venue remaining. An
        execution reported after ``close`` is booked all the same: its shares are in
        the account, so they must be in the model books.
        """
        if ex.execution_id in self._executions:
            self.duplicates += 1
            return []
        if not ex.execution_id or ex.execution_id == _CROSS:
            raise ValueError(f"batch {self._batch_id}: invalid execution id {ex.execution_id!r}")
        if ex.qty <= 0:
            raise ValueError(
                f"batch {self._batch_id}: execution {ex.execution_id} qty must be positive, "
                f"got {ex.qty}"
            )
        if ex.qty > self.venue_remaining:
            raise OverfillError(
                f"batch {self._batch_id}: execution {ex.execution_id} of {ex.qty} shares "
                f"exceeds the venue order's remaining {self.venue_remaining} of {self.venue_qty}"
            )
        _check_price(self._batch_id, ex.price)
        crossing = not self._crossed_done
        self._crossed_done = True
        self._executions.add(ex.execution_id)
        self._executed += ex.qty
        venue = [0] * len(self._intents)
        waiting = [self._venue_share[i] - self._venue_filled[i] for i in self._net_side]
        for i, part in zip(self._net_side, split(ex.qty, waiting), strict=True):
            venue[i] = part
            self._venue_filled[i] += part
        out = []
        for i, v in enumerate(venue):
            c = self._crossed_part[i] if crossing else 0
            if c and v:  # one fill: the crossed and the venue shares, at one price
                out.append(self._book(i, c + v, ex.price, ex.ts, self._venue_cid, ex.execution_id))
            elif c:
                out.append(self._book(i, c, ex.price, ex.ts, self._cross_oid, _CROSS))
            elif v:
                out.append(self._book(i, v, ex.price, ex.ts, self._venue_cid, ex.execution_id))
        return out

    def close(self, reason: str) -> list[tuple[OrderIntent, int]]:
        """The venue order ended (canceled, expired, rejected): the intents left short.

        Returns ``(intent, shares it will not get)`` for every intent not filled in full;
        [] on a second call. Crossed parts already booked stay booked. When nothing was
        crossed yet (no venue execution, no ``cross`` call), the crosses are given up and
        reported unfilled too: no model gets a fill at a price no venue printed. A caller
        that wants the crosses to stand calls ``cross(reference_price, ts)`` before
        ``close``. Either way the model books still sum to the account.
        """
        if self.close_reason is not None:
            return []
        self.close_reason = reason
        self._crossed_done = True
        return [
            (it, it.qty - got)
            for it, got in zip(self._intents, self._filled, strict=True)
            if got < it.qty
        ]

    def _book(
        self, i: int, qty: int, ref_price: float, ts: int, oid: str, exec_id: str
    ) -> Attributed:
        it = self._intents[i]
        side = self._sides[i]
        self._filled[i] += qty
        fill = Fill(
            client_order_id=self._cids[i],
            broker_order_id=oid,
            model=it.model,
            symbol=it.symbol,
            side=side,
            qty=qty,
            price=self._rules.price(ref_price, side),
            ts=ts,
            commission=self._rules.commission(qty),
        )
        return Attributed(fill, f"{self._batch_id}:{exec_id}:{i}")


def _check_price(batch_id: str, price: float) -> None:
    if not 0.0 < price < float("inf"):  # also False for NaN
        raise ValueError(f"batch {batch_id}: price must be a positive number, got {price}")
