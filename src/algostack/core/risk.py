"""Pre-trade risk for one model: position and notional caps, order rate, daily loss, halts.

States: ``ACTIVE`` trades normally; ``REDUCING`` (the day's loss reached ``reduce_fraction``
of the limit) only lets exposure shrink; ``HALTED`` (loss limit, kill switch) allows nothing
but flattening. Trading-status halts block a symbol until it resumes. From
``flatten_before_close_min`` minutes before the session's close (early closes included)
only flattening is allowed, and outside the regular session nothing is. A model that holds
positions overnight (``flatten_before_close=False``) is never forced flat and may also trade
at the close itself (a decision at 16:00, a daily model's, fills at the next open). Every
state change is recorded as a ``RiskEvent`` with its reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, ClassVar

import msgspec

from algostack.core import sessions
from algostack.core.bounds import NON_NEGATIVE, POSITIVE, Bound, Bounded
from algostack.core.market import TradingStatus, datetime_to_ts, ts_to_datetime
from algostack.core.orders import Fill, OrderIntent
from algostack.core.ratelimit import TokenBucket
from algostack.errors import ConfigError

NS_PER_S = 1_000_000_000
_INF = math.inf


@dataclass(frozen=True)
class RiskLimits(Bounded):
    """Limits of one model. Loss amounts are in account currency and positive."""

    WHAT: ClassVar[str] = "risk limits"

    max_position_shares: Annotated[int, NON_NEGATIVE] = 100
    max_notional: Annotated[float, NON_NEGATIVE] = 25_000.0
    max_orders_per_minute: Annotated[int, Bound(1)] = 10
    daily_loss_limit: Annotated[float, POSITIVE] = 1_000.0
    reduce_fraction: Annotated[float, Bound(0, 1, low_open=True)] = 0.8
    """Share of ``daily_loss_limit`` lost at which the model moves to REDUCING."""
    flatten_before_close_min: Annotated[int, Bound(0, 389)] = 5
    """Flatten this many minutes before the close (15:55 New York on a regular day)."""


@dataclass(frozen=True)
class Sizing:
    """The shares a signal asks for at a price, before the caps (``core.trading_config``).

    ``shares`` (fixed) or ``notional`` dollars (``fixed_notional``, or ``allocation`` times
    ``fraction``); neither: as many as the caps allow (``RiskLimits`` alone, the default).
    ``field`` and ``source`` (the config's key) name where it came from in errors.
    """

    shares: int = 0
    notional: float = 0.0
    allocation: float = 0.0
    fraction: float = 0.0
    field: str = ""
    source: str = ""

    @property
    def capped(self) -> bool:
        """True when the caps alone size positions (no fixed shares or dollars)."""
        return self.shares <= 0 and self.notional <= 0

    def qty(self, price: float) -> int:
        """Shares asked for at ``price`` (``price`` positive and finite); 0 when ``capped``."""
        if self.shares > 0:
            return self.shares
        return int(self.notional // price) if self.notional > 0 else 0

    def describe(self) -> str:
        """A few words: ``7 shares``, ``$5,000``, ``0.25 of $20,000``, ``up to the caps``."""
        if self.shares > 0:
            return f"{self.shares} shares"
        if self.fraction > 0:
            return f"{self.fraction:g} of ${self.allocation:,.0f}"
        if self.notional > 0:
            return f"${self.notional:,.0f}"
        return "up to the caps"


class RiskState(StrEnum):
    """The model's trading state."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class RiskAction(StrEnum):
    """What risk did with an order."""

    APPROVE = "approve"
    CLIP = "clip"
    REJECT = "reject"


# Enum members as module constants: ``RiskState.HALTED`` is a metaclass lookup (~0.1 us on
# Python 3.11) and the trader asks several of these on every bar.
_ACTIVE, _REDUCING, _HALTED = RiskState.ACTIVE, RiskState.REDUCING, RiskState.HALTED
_APPROVE, _CLIP, _REJECT = RiskAction.APPROVE, RiskAction.CLIP, RiskAction.REJECT


class RiskDecision(msgspec.Struct, frozen=True):
    """The verdict on one intent: the quantity allowed (0 on reject) and why."""

    action: RiskAction
    qty: int
    reason: str

    @property
    def approved(self) -> bool:
        """True when an order of ``qty`` shares may go to the broker."""
        return self.action is not _REJECT and self.qty > 0


class RiskEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A risk-state event: a state transition, a symbol halt or resume, a kill."""

    ts: int
    model: str
    kind: str
    """``state``, ``halt``, ``resume`` or ``kill``."""
    from_state: RiskState
    to_state: RiskState
    reason: str
    symbol: str = ""


# Where a moment falls for one model (``RiskEngine._phase``): outside the regular session,
# trading, or inside it but bound to be flat.
_OUT, _TRADE, _FLAT = 0, 1, 2


class RiskEngine:
    """Pre-trade checks and state transitions for one model (pure; time is passed in)."""

    def __init__(
        self,
        limits: RiskLimits,
        model: str,
        *,
        sizing: Sizing | None = None,
        flatten_before_close: bool = True,
        on_event: Callable[[RiskEvent], None] | None = None,
    ) -> None:
        """``sizing``: the model's sizing (``None``: as many shares as the caps allow).
        ``flatten_before_close``: flat from ``limits.flatten_before_close_min`` before the
        close; ``False`` holds positions overnight and lets the model trade at the close."""
        self.limits = limits
        self.flatten_before_close = flatten_before_close
        self.sizing_rule = sizing if sizing is not None and not sizing.capped else None
        self.model = model
        self.state = _ACTIVE
        self.killed = False
        self.halted_symbols: dict[str, str] = {}
        """Symbol -> reason, for symbols under a trading-status halt."""
        self.events: list[RiskEvent] = []
        self.daily_pnl = 0.0
        self._on_event = on_event
        self._reducing_at = -limits.daily_loss_limit * limits.reduce_fraction
        """The day's PnL at or below which ACTIVE moves to REDUCING."""
        self._orders = TokenBucket(
            limits.max_orders_per_minute, limits.max_orders_per_minute, clock=lambda: 0.0
        )
        # The New York day [lo, hi) of the last time asked and its session [open, close)
        # and flatten time, UTC ns; a day without a session has open == close == flatten.
        self._day_lo = self._day_hi = 0
        self._open_ns = self._close_ns = self._flatten_ns = 0

    # -- sessions --------------------------------------------------------------------------

    def _phase(self, now_ns: int) -> int:
        """``_OUT`` outside the regular session; inside it ``_FLAT`` when the model must be
        flat (HALTED, or the flatten time reached), else ``_TRADE``: the one statement of the
        session and flatten rules, which every other method asks."""
        if not self._day_lo <= now_ns < self._day_hi:
            self._load_day(now_ns)
        if not self._open_ns <= now_ns < self._close_ns:
            return _OUT
        if self.state is _HALTED or now_ns >= self._flatten_ns:
            return _FLAT
        return _TRADE

    def _load_day(self, now_ns: int) -> None:
        """Load the New York day of ``now_ns`` and its session times."""
        d = sessions.new_york_date(ts_to_datetime(now_ns))
        lo = datetime_to_ts(datetime.combine(d, time(0), sessions.NEW_YORK))
        s = sessions.session(d)
        if s is None:
            self._open_ns = self._close_ns = self._flatten_ns = lo
        elif self.flatten_before_close:
            flat = s.close - timedelta(minutes=self.limits.flatten_before_close_min)
            self._open_ns = datetime_to_ts(s.open)
            self._close_ns = datetime_to_ts(s.close)
            self._flatten_ns = datetime_to_ts(flat)
        else:  # the close itself is in: a decision at the close fills at the next open
            self._open_ns = datetime_to_ts(s.open)
            self._close_ns = self._flatten_ns = datetime_to_ts(s.close) + 1
        self._day_lo = lo
        self._day_hi = datetime_to_ts(
            datetime.combine(d + timedelta(days=1), time(0), sessions.NEW_YORK)
        )

    def in_session(self, now_ns: int) -> bool:
        """True inside the regular session (holidays and early closes included; the close
        itself too when the model holds positions overnight)."""
        return self._phase(now_ns) != _OUT

    def must_flatten(self, now_ns: int) -> bool:
        """True when the model must be flat now: in session and past the flatten time, or
        HALTED (loss limit or kill switch)."""
        return self._phase(now_ns) == _FLAT

    # -- sizing ----------------------------------------------------------------------------

    def max_abs_qty(self, price: float) -> int:
        """The largest position (shares) both caps allow at ``price``."""
        if not 0.0 < price < _INF:  # also False for NaN
            raise ValueError(f"price must be a positive number, got {price}")
        limits = self.limits
        cap = int(limits.max_notional // price)
        if cap > limits.max_position_shares:
            cap = limits.max_position_shares
        return cap if cap > 0 else 0

    def sizing(
        self, direction: int, price: float, now_ns: int, *, position: int
    ) -> tuple[int, bool]:
        """``(target, must_flatten(now_ns))``: the signed position allowed for a signal of
        ``direction`` (-1, 0, +1) at ``price``, and whether the model must be flat now. What
        the trader asks on every bar.

        The target is clipped to both caps (``max_abs_qty``, which refuses a price that is not
        positive and finite); 0 outside the session, when the model must be flat and for
        ``direction`` 0 (whatever the price). In REDUCING it never exceeds the current
        ``position`` in size or flips its sign.
        """
        if direction != 0 and direction != 1 and direction != -1:
            raise ValueError(f"direction must be -1, 0 or 1, got {direction}")
        phase = self._phase(now_ns)
        if phase != _TRADE or direction == 0:
            return 0, phase == _FLAT
        cap = self.max_abs_qty(price)
        rule = self.sizing_rule
        if rule is not None:
            cap = self._sized(rule, cap, price, position)
        if self.state is _REDUCING:
            if position * direction <= 0:
                return 0, False
            if position < 0:
                position = -position
            return direction * (cap if cap < position else position), False
        return direction * cap, False

    def _sized(self, rule: Sizing, cap: int, price: float, position: int) -> int:
        """``cap`` lowered to the model's sizing at ``price``; a sizing that buys no share
        while the model is flat is a ``ConfigError`` (nothing traded on it)."""
        want = rule.qty(price)
        if want == 0 and position == 0:
            raise ConfigError(
                f"{rule.source}: field {rule.field!r}: {rule.describe()} buys 0 shares of "
                f"{self.model} at {price:g}"
            )
        return want if want < cap else cap

    def target_qty(
        self, direction: int, price: float, now_ns: int, *, position: int | None = None
    ) -> int:
        """The target of ``sizing`` (``position=None`` is flat: 0 in REDUCING)."""
        return self.sizing(direction, price, now_ns, position=position or 0)[0]

    # -- checks ----------------------------------------------------------------------------

    def check(
        self, intent: OrderIntent, *, position: int, price: float, now_ns: int
    ) -> RiskDecision:
        """Approve, clip or reject ``intent`` given the current ``position`` and ``price``."""
        if intent.model != self.model:
            return _reject(f"intent of model {intent.model!r} sent to risk of {self.model!r}")
        if intent.qty <= 0:
            return _reject(f"order quantity must be positive, got {intent.qty}")
        if not price > 0 or not math.isfinite(price):
            return _reject(f"no valid price for {intent.symbol} (got {price})")
        try:
            phase = self._phase(now_ns)
        except ValueError as exc:
            return _reject(f"no session calendar for this time: {exc}")
        if phase == _OUT:
            when = ts_to_datetime(now_ns).astimezone(sessions.NEW_YORK).strftime("%Y-%m-%d %H:%M")
            return _reject(f"outside the regular session ({when} New York)")
        if intent.symbol in self.halted_symbols:
            return _reject(f"{intent.symbol} trading halted: {self.halted_symbols[intent.symbol]}")

        signed = intent.signed_qty
        reduces = position != 0 and (position > 0) != (signed > 0)
        reduce_qty = min(intent.qty, abs(position)) if reduces else 0

        only_reduce_why = ""
        if self.state is _HALTED:
            only_reduce_why = f"HALTED ({self._last_reason()})"
        elif phase == _FLAT:
            only_reduce_why = "flatten time before the close"
        elif self.state is _REDUCING:
            only_reduce_why = f"REDUCING ({self._last_reason()})"
        if only_reduce_why:
            if not reduces:
                return _reject(f"{only_reduce_why}: only orders that reduce exposure allowed")
            if reduce_qty < intent.qty:
                return RiskDecision(_CLIP, reduce_qty, f"{only_reduce_why}: clipped to flat")
            return RiskDecision(_APPROVE, intent.qty, f"{only_reduce_why}: reduces")

        if reduces and intent.qty <= abs(position):
            # Pure reductions are never blocked by caps or the order rate.
            return RiskDecision(_APPROVE, intent.qty, "reduces exposure")

        cap = self.max_abs_qty(price)
        new_pos = position + signed
        qty = intent.qty
        why = "within limits"
        if abs(new_pos) > cap:
            allowed_abs = cap if (new_pos > 0) == (signed > 0) else abs(new_pos)
            qty = intent.qty - (abs(new_pos) - allowed_abs)
            which = (
                f"max position {self.limits.max_position_shares} shares"
                if cap == self.limits.max_position_shares
                else f"max notional {self.limits.max_notional:g} at {price:g}"
            )
            if qty <= 0:
                return _reject(f"{which}: position {position} already at the cap")
            why = f"clipped by {which}"
        if not self._orders.try_acquire(now=now_ns / NS_PER_S):
            return _reject(
                f"order rate limit: more than {self.limits.max_orders_per_minute} orders/minute"
            )
        action = _APPROVE if qty == intent.qty else _CLIP
        return RiskDecision(action, qty, why)

    # -- transitions -----------------------------------------------------------------------

    def on_mark(self, pnl: float, now_ns: int = 0) -> RiskState:
        """Feed the day's PnL (realised net + unrealised); move to REDUCING / HALTED."""
        self.daily_pnl = pnl
        if pnl <= self._reducing_at:  # the HALTED level is at or below it
            limits = self.limits
            limit = limits.daily_loss_limit
            if self.state is not _HALTED and pnl <= -limit:
                self._transition(
                    _HALTED, f"daily loss {-pnl:.2f} reached limit {limit:.2f}", now_ns
                )
            elif self.state is _ACTIVE:
                self._transition(
                    _REDUCING,
                    f"daily loss {-pnl:.2f} reached {limits.reduce_fraction:.0%} of limit "
                    f"{limit:.2f}",
                    now_ns,
                )
        return self.state

    def on_fill(self, fill: Fill, pnl: float) -> RiskState:
        """Feed the day's PnL (``pnl``, after booking ``fill``)."""
        return self.on_mark(pnl, fill.ts)

    def kill(self, reason: str, now_ns: int = 0) -> None:
        """The kill switch: HALTED until the next day is started by hand (``reset_day``
        does not lift a kill)."""
        self.killed = True
        self._transition(_HALTED, f"kill switch: {reason}", now_ns, kind="kill")

    def on_status(self, status: TradingStatus) -> None:
        """Block or unblock a symbol on a trading-status halt or resume."""
        what = f"status {status.status_code} {status.status_message}".strip()
        if status.is_halted and status.symbol not in self.halted_symbols:
            self.halted_symbols[status.symbol] = what
            self._record("halt", self.state, f"{status.symbol} {what}", status.ts, status.symbol)
        elif not status.is_halted and status.symbol in self.halted_symbols:
            del self.halted_symbols[status.symbol]
            self._record("resume", self.state, f"{status.symbol} {what}", status.ts, status.symbol)

    def reset_day(self, now_ns: int) -> None:
        """Start a new trading day: back to ACTIVE unless the kill switch was thrown."""
        self.daily_pnl = 0.0
        if not self.killed and self.state is not _ACTIVE:
            self._transition(_ACTIVE, "new trading day", now_ns)

    def _last_reason(self) -> str:
        for ev in reversed(self.events):
            if ev.kind in ("state", "kill"):
                return ev.reason
        return ""

    def _transition(self, to: RiskState, reason: str, now_ns: int, kind: str = "state") -> None:
        frm, self.state = self.state, to
        self._record(kind, frm, reason, now_ns)

    def _record(self, kind: str, frm: RiskState, reason: str, ts: int, symbol: str = "") -> None:
        ev = RiskEvent(
            ts=ts,
            model=self.model,
            kind=kind,
            from_state=frm,
            to_state=self.state,
            reason=reason,
            symbol=symbol,
        )
        self.events.append(ev)
        if self._on_event is not None:
            self._on_event(ev)


def _reject(reason: str) -> RiskDecision:
    return RiskDecision(_REJECT, 0, reason)
