"""The one codec for NATS payloads: msgpack of the tagged core structs, plus subject and
de-duplication id rules (DESIGN.md 3.3)."""

from __future__ import annotations

import msgspec

from algostack.core.market import KIND_OF, MarketEvent, Quote, Trade, UpdatedBar

_ENCODER = msgspec.msgpack.Encoder()
_DECODER: msgspec.msgpack.Decoder[MarketEvent] = msgspec.msgpack.Decoder(MarketEvent)

SUBJECT_ROOT = "market"
STREAM_NAME = "MARKET"


def encode(event: MarketEvent) -> bytes:
    """Encode one market event as a NATS payload."""
    return _ENCODER.encode(event)


def decode(payload: bytes) -> MarketEvent:
    """Decode a NATS payload; raises ``msgspec.DecodeError`` with the reason when malformed."""
    return _DECODER.decode(payload)


def subject_token(symbol: str) -> str:
    """Make a symbol safe as one NATS subject token ('.' separates tokens: BRK.B -> BRK_B)."""
    return symbol.replace(".", "_").replace("/", "_")


def kind(event: MarketEvent) -> str:
    """The subject kind of an event: bars, updated_bars, daily_bars, trades, quotes, status."""
    return KIND_OF[type(event)]


def subject(event: MarketEvent) -> str:
    """``market.<kind>.<SYMBOL>``."""
    return f"{SUBJECT_ROOT}.{KIND_OF[type(event)]}.{subject_token(event.symbol)}"


def subject_for(kind_name: str, symbol: str) -> str:
    """Subject for a kind and symbol; ``symbol='*'`` gives the wildcard for every symbol."""
    token = symbol if symbol in ("*", ">") else subject_token(symbol)
    return f"{SUBJECT_ROOT}.{kind_name}.{token}"


def msg_id(event: MarketEvent) -> str:
    """``<kind>:<symbol>:<timestamp>``, the ``Nats-Msg-Id`` that makes re-sends idempotent.

    Bars use exactly that. Events that can legitimately share a timestamp add what tells
    them apart: trades their trade id, quotes their prices and sizes, updated bars their
    volume and close (each revision of a minute is kept, a re-sent revision is dropped).
    """
    base = f"{KIND_OF[type(event)]}:{event.symbol}:{event.ts}"
    if isinstance(event, Trade):
        return f"{base}:{event.trade_id}"
    if isinstance(event, Quote):
        return f"{base}:{event.bid_price}:{event.bid_size}:{event.ask_price}:{event.ask_size}"
    if isinstance(event, UpdatedBar):
        return f"{base}:{event.volume}:{event.close}"
    return base
