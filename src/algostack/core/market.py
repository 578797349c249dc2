"""Core market types: typed, immutable structs with UTC nanosecond timestamps.

Adapters parse the wire into these at the edge; nothing downstream sees a vendor dict.
Each type carries a one-letter tag (Alpaca's ``T``) so one codec decodes any of them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import msgspec

NS_PER_S = 1_000_000_000
NS_PER_MIN = 60 * NS_PER_S
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Alpaca equity symbols: upper-case letters and digits, with an optional class suffix (BRK.B).
_SYMBOL_RE = re.compile(r"^[A-Z][A-Z0-9]{0,9}([./][A-Z0-9]{1,4})?$")


class _Event(msgspec.Struct, frozen=True, tag_field="T", kw_only=True):
    symbol: str
    ts: int
    """Event time in UTC nanoseconds since the epoch (a bar's start, a trade's time)."""


class _OHLCV(_Event, frozen=True, kw_only=True):
    open: float
    high: float
    low: float
    close: float
    volume: float
    trade_count: int = 0
    vwap: float = 0.0


class Bar(_OHLCV, frozen=True, tag="b", kw_only=True):
    """A minute bar, labelled with its start time."""


class UpdatedBar(_OHLCV, frozen=True, tag="u", kw_only=True):
    """A minute bar re-sent after late trades, same timestamp as the original."""


class DailyBar(_OHLCV, frozen=True, tag="d", kw_only=True):
    """The day's bar so far."""


class Trade(_Event, frozen=True, tag="t", kw_only=True):
    """One trade print."""

    price: float
    size: float
    exchange: str = ""
    trade_id: int = 0
    conditions: tuple[str, ...] = ()
    tape: str = ""


class Quote(_Event, frozen=True, tag="q", kw_only=True):
    """Top of book."""

    bid_price: float
    bid_size: float
    ask_price: float
    ask_size: float
    bid_exchange: str = ""
    ask_exchange: str = ""
    conditions: tuple[str, ...] = ()
    tape: str = ""


class TradingStatus(_Event, frozen=True, tag="s", kw_only=True):
    """A trading status change (halt, resume, ...) for one symbol."""

    status_code: str
    status_message: str = ""
    reason_code: str = ""
    reason_message: str = ""
    tape: str = ""

    @property
    def is_halted(self) -> bool:
        """True when the status stops trading (Alpaca/CTA codes H halt, T... resume)."""
        return self.status_code in HALT_STATUS_CODES


# CTA/UTP trading-status codes that mean "not trading": H halted, P paused (LULD),
# Q quotation only, 2/3 (UTP) halt/trading pause.
HALT_STATUS_CODES = frozenset({"H", "P", "Q", "2", "3"})

MarketEvent = Bar | UpdatedBar | DailyBar | Trade | Quote | TradingStatus

# NATS subject kind per type (DESIGN.md 3.3); daily bars ride under market.> as well.
KIND_OF: dict[type[_Event], str] = {
    Bar: "bars",
    UpdatedBar: "updated_bars",
    DailyBar: "daily_bars",
    Trade: "trades",
    Quote: "quotes",
    TradingStatus: "status",
}


def validate_symbol(symbol: str) -> str:
    """Return ``symbol`` if it is a valid equity symbol, else raise ``ValueError`` naming it."""
    if not _SYMBOL_RE.match(symbol):
        raise ValueError(
            f"invalid symbol {symbol!r}: expected upper-case letters/digits, e.g. AAPL or BRK.B"
        )
    return symbol


def ts_to_datetime(ts: int) -> datetime:
    """Convert UTC nanoseconds to an aware UTC datetime (microsecond precision)."""
    return _EPOCH + timedelta(microseconds=ts // 1_000)


def datetime_to_ts(dt: datetime) -> int:
    """Convert an aware datetime to UTC nanoseconds. Naive datetimes are refused."""
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt!r}: attach a time zone")
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1_000
