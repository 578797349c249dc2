"""Alpaca v2 stock-stream wire format: pure parsing, encoding and the error-code policy.

No sockets here. ``parse_frame`` turns one websocket frame (msgpack bytes or JSON text) into
core events plus control messages, counting what it could not parse instead of raising, so
one bad message never costs the rest of its frame. ``to_wire`` does the reverse for the fake
server and the fixtures.

Timestamps keep Alpaca's nanoseconds: in msgpack ``t`` is a Timestamp extension (type -1),
decoded here from its 4/8/12-byte forms; in JSON it is an RFC 3339 string whose second part
is cached (many messages of a frame share a second) and whose fraction is read digit-exact.
msgspec's own datetime decoding would round to microseconds.
"""

from __future__ import annotations

import enum
import struct
from calendar import timegm
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import msgspec
from msgspec import msgpack as _mp

from algostack.core.market import (
    NS_PER_S,
    Bar,
    DailyBar,
    MarketEvent,
    Quote,
    Trade,
    TradingStatus,
    UpdatedBar,
)
from algostack.logs import truncate

Ts = _mp.Ext | str

# --- wire structs (Alpaca's one-letter keys) ------------------------------------------------


class _W(msgspec.Struct, tag_field="T", frozen=True):
    pass


class WTrade(_W, tag="t", frozen=True):
    S: str
    t: Ts
    p: float
    s: float
    i: int = 0
    x: str = ""
    c: list[str] = []
    z: str = ""


class WQuote(_W, tag="q", frozen=True, rename={"as_": "as"}):
    S: str
    t: Ts
    bp: float
    bs: float
    ap: float
    as_: float
    bx: str = ""
    ax: str = ""
    c: list[str] = []
    z: str = ""


class BarKeys(msgspec.Struct, frozen=True):
    """Alpaca's bar keys: the REST bars pages send these, the stream adds ``T`` and ``S``."""

    t: Ts
    o: float
    h: float
    l: float  # noqa: E741  (Alpaca's key for "low")
    c: float
    v: float
    n: int = 0
    vw: float = 0.0


class _WBar(_W, BarKeys, frozen=True, kw_only=True):
    S: str


class WBar(_WBar, tag="b", frozen=True):
    pass


class WUpdatedBar(_WBar, tag="u", frozen=True):
    pass


class WDailyBar(_WBar, tag="d", frozen=True):
    pass


class WStatus(_W, tag="s", frozen=True):
    S: str
    t: Ts
    sc: str
    sm: str = ""
    rc: str = ""
    rm: str = ""
    z: str = ""


class WLuld(_W, tag="l", frozen=True):
    """Limit up/limit down band: known, not used (counted as ignored)."""


class WCorrection(_W, tag="c", frozen=True):
    """Trade correction: known, not used (counted as ignored)."""


class WCancelError(_W, tag="x", frozen=True):
    """Trade cancel/error: known, not used (counted as ignored)."""


class Success(_W, tag="success", frozen=True):
    """``{"T":"success","msg":"connected"|"authenticated"}``."""

    msg: str


class Error(_W, tag="error", frozen=True):
    """``{"T":"error","code":N,"msg":...}``."""

    code: int
    msg: str = ""


class Subscription(_W, tag="subscription", frozen=True):
    """The server's echo of the full subscription after (un)subscribe."""

    trades: list[str] = []
    quotes: list[str] = []
    bars: list[str] = []
    updatedBars: list[str] = []
    dailyBars: list[str] = []
    statuses: list[str] = []
    lulds: list[str] = []
    corrections: list[str] = []
    cancelErrors: list[str] = []


ControlMessage = Success | Error | Subscription
WireMessage = (
    WTrade
    | WQuote
    | WBar
    | WUpdatedBar
    | WDailyBar
    | WStatus
    | WLuld
    | WCorrection
    | WCancelError
    | Success
    | Error
    | Subscription
)

_MP_FRAME = _mp.Decoder(list[WireMessage])
_MP_RAW = _mp.Decoder(list[msgspec.Raw])
_MP_ONE = _mp.Decoder(WireMessage)
_JS_FRAME = msgspec.json.Decoder(list[WireMessage])
_JS_RAW = msgspec.json.Decoder(list[msgspec.Raw])
_JS_ONE = msgspec.json.Decoder(WireMessage)

# --- timestamps ------------------------------------------------------------------------------

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_TS96 = struct.Struct(">Iq")
_second_cache: dict[str, int] = {}


def ext_to_ns(ext: _mp.Ext) -> int:
    """Decode a msgpack Timestamp extension (type -1; 4, 8 or 12 bytes) to UTC nanoseconds."""
    if ext.code != -1:
        raise ValueError(f"msgpack extension type {ext.code} is not a timestamp")
    data = bytes(ext.data)
    n = len(data)
    if n == 8:
        v: int = _U64.unpack(data)[0]
        return (v & 0x3_FFFF_FFFF) * NS_PER_S + (v >> 34)
    if n == 12:
        nsec, sec = _TS96.unpack(data)
        return int(sec) * NS_PER_S + int(nsec)
    if n == 4:
        return int(_U32.unpack(data)[0] * NS_PER_S)
    raise ValueError(f"msgpack timestamp of {n} bytes (expected 4, 8 or 12)")


def rfc3339_to_ns(text: str) -> int:
    """Parse ``YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`` to UTC nanoseconds, digit-exact."""
    head = text[:19]
    sec = _second_cache.get(head)
    if sec is None:
        if len(text) < 20 or text[4] != "-" or text[10] not in "Tt " or text[13] != ":":
            raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
        sec = timegm(
            (
                int(text[0:4]),
                int(text[5:7]),
                int(text[8:10]),
                int(text[11:13]),
                int(text[14:16]),
                int(text[17:19]),
            )
        )
        if len(_second_cache) > 8192:
            _second_cache.clear()
        _second_cache[head] = sec
    rest = text[19:]
    frac_ns = 0
    if rest[:1] == ".":
        end = 1
        while end < len(rest) and rest[end].isdigit():
            end += 1
        digits = rest[1:end]
        if not digits or len(digits) > 9:
            raise ValueError(f"bad fraction in timestamp {text!r}")
        frac_ns = int(digits.ljust(9, "0"))
        rest = rest[end:]
    if rest in ("Z", "z"):
        offset = 0
    elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":":
        offset = (int(rest[1:3]) * 3600 + int(rest[4:6]) * 60) * (1 if rest[0] == "+" else -1)
    else:
        raise ValueError(f"bad zone in timestamp {text!r}")
    return (sec - offset) * NS_PER_S + frac_ns


def _ts(t: Ts) -> int:
    return rfc3339_to_ns(t) if isinstance(t, str) else ext_to_ns(t)


def ns_to_ext(ns: int) -> _mp.Ext:
    """Encode UTC nanoseconds as a msgpack Timestamp extension (the 12-byte form: exact)."""
    sec, nsec = divmod(ns, NS_PER_S)
    return _mp.Ext(-1, _TS96.pack(nsec, sec))


def ns_to_rfc3339(ns: int) -> str:
    """Render UTC nanoseconds as RFC 3339 with ``Z`` (fraction only when non-zero)."""
    import time as _time

    sec, nsec = divmod(ns, NS_PER_S)
    base = _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(sec))
    if nsec:
        return f"{base}.{nsec:09d}".rstrip("0") + "Z"
    return base + "Z"


_AnyBar = TypeVar("_AnyBar", Bar, UpdatedBar, DailyBar)

# --- wire -> core ------------------------------------------------------------------------------


def bar_from(cls: type[_AnyBar], symbol: str, m: BarKeys) -> _AnyBar:
    """A ``cls`` (``Bar``, ``UpdatedBar``, ``DailyBar``) from Alpaca's bar keys
    (``t o h l c v n vw``): the websocket's frames and the REST pages use the same."""
    return cls(
        symbol=symbol,
        ts=_ts(m.t),
        open=m.o,
        high=m.h,
        low=m.l,
        close=m.c,
        volume=m.v,
        trade_count=m.n,
        vwap=m.vw,
    )


def _bar(cls: type[_AnyBar]) -> Any:
    def convert(m: _WBar) -> MarketEvent:
        return bar_from(cls, m.S, m)

    return convert


def _trade(m: WTrade) -> MarketEvent:
    return Trade(
        symbol=m.S,
        ts=_ts(m.t),
        price=m.p,
        size=m.s,
        exchange=m.x,
        trade_id=m.i,
        conditions=tuple(m.c),
        tape=m.z,
    )


def _quote(m: WQuote) -> MarketEvent:
    return Quote(
        symbol=m.S,
        ts=_ts(m.t),
        bid_price=m.bp,
        bid_size=m.bs,
        ask_price=m.ap,
        ask_size=m.as_,
        bid_exchange=m.bx,
        ask_exchange=m.ax,
        conditions=tuple(m.c),
        tape=m.z,
    )


def _status(m: WStatus) -> MarketEvent:
    return TradingStatus(
        symbol=m.S,
        ts=_ts(m.t),
        status_code=m.sc,
        status_message=m.sm,
        reason_code=m.rc,
        reason_message=m.rm,
        tape=m.z,
    )


# Dispatch on the exact wire type: a dict lookup costs less than a chain of isinstance.
_CONVERT: Final[dict[type, Any]] = {
    WTrade: _trade,
    WQuote: _quote,
    WBar: _bar(Bar),
    WUpdatedBar: _bar(UpdatedBar),
    WDailyBar: _bar(DailyBar),
    WStatus: _status,
}
_CONTROL: Final = (Success, Error, Subscription)


@dataclass
class ParsedFrame:
    """What one frame held: core events, control messages, and what was skipped."""

    events: list[MarketEvent] = field(default_factory=list)
    controls: list[ControlMessage] = field(default_factory=list)
    malformed: int = 0
    """Messages (or whole frames) that could not be parsed, including unknown types."""
    ignored: int = 0
    """Known message types this system does not use (LULD, corrections, cancel errors)."""
    problems: list[str] = field(default_factory=list)
    """One short, truncated description per malformed item, for the log."""


def _collect(out: ParsedFrame, m: WireMessage, raw: bytes | None) -> None:
    convert = _CONVERT.get(type(m))
    if convert is None:
        if isinstance(m, _CONTROL):
            out.controls.append(m)
        else:
            out.ignored += 1
        return
    try:
        out.events.append(convert(m))
    except (ValueError, OverflowError, struct.error) as exc:
        out.malformed += 1
        shown = truncate(raw) if raw is not None else repr(m)
        out.problems.append(f"{exc}: {truncate(shown)}")


def parse_frame(data: bytes | str, *, msgpack: bool | None = None) -> ParsedFrame:
    """Parse one server frame (always an array) into events and control messages.

    ``msgpack=None`` picks the format from the frame type: bytes are msgpack (binary
    websocket frames), str is JSON. Never raises on bad input: malformed or unknown messages
    are counted in ``malformed`` and described in ``problems``.
    """
    use_mp = isinstance(data, bytes | bytearray | memoryview) if msgpack is None else msgpack
    buf: bytes = data.encode() if isinstance(data, str) else data
    out = ParsedFrame()
    try:
        msgs = _MP_FRAME.decode(buf) if use_mp else _JS_FRAME.decode(buf)
    except msgspec.MsgspecError:
        _parse_slow(out, buf, use_mp)
        return out
    for m in msgs:
        _collect(out, m, None)
    return out


def _parse_slow(out: ParsedFrame, data: bytes, use_mp: bool) -> None:
    """Per-message fallback after the whole-frame fast path failed."""
    try:
        raws = _MP_RAW.decode(data) if use_mp else _JS_RAW.decode(data)
    except msgspec.MsgspecError as exc:
        out.malformed += 1
        out.problems.append(f"frame is not an array ({exc}): {truncate(data)}")
        return
    for raw in raws:
        try:
            m = _MP_ONE.decode(raw) if use_mp else _JS_ONE.decode(raw)
        except msgspec.MsgspecError as exc:
            out.malformed += 1
            shown = bytes(raw) if use_mp else bytes(raw).decode("utf-8", "replace")
            out.problems.append(f"{exc}: {truncate(shown)}")
            continue
        _collect(out, m, bytes(raw))


# --- core -> wire (fake server, fixtures) ------------------------------------------------------


def to_wire(event: MarketEvent, *, msgpack: bool) -> dict[str, Any]:
    """Render a core event as Alpaca would send it (``t`` as Timestamp ext or RFC 3339)."""
    t: Any = ns_to_ext(event.ts) if msgpack else ns_to_rfc3339(event.ts)
    if isinstance(event, Bar | UpdatedBar | DailyBar):
        tag = "b" if type(event) is Bar else "u" if type(event) is UpdatedBar else "d"
        return {
            "T": tag,
            "S": event.symbol,
            "o": event.open,
            "h": event.high,
            "l": event.low,
            "c": event.close,
            "v": event.volume,
            "t": t,
            "n": event.trade_count,
            "vw": event.vwap,
        }
    if isinstance(event, Trade):
        return {
            "T": "t",
            "S": event.symbol,
            "i": event.trade_id,
            "x": event.exchange,
            "p": event.price,
            "s": event.size,
            "t": t,
            "c": list(event.conditions),
            "z": event.tape,
        }
    if isinstance(event, Quote):
        return {
            "T": "q",
            "S": event.symbol,
            "bx": event.bid_exchange,
            "bp": event.bid_price,
            "bs": event.bid_size,
            "ax": event.ask_exchange,
            "ap": event.ask_price,
            "as": event.ask_size,
            "t": t,
            "c": list(event.conditions),
            "z": event.tape,
        }
    return {
        "T": "s",
        "S": event.symbol,
        "sc": event.status_code,
        "sm": event.status_message,
        "rc": event.reason_code,
        "rm": event.reason_message,
        "t": t,
        "z": event.tape,
    }


_MP_ENC = _mp.Encoder()


def encode_frame(messages: Sequence[dict[str, Any]], *, msgpack: bool) -> bytes | str:
    """Encode an array of wire messages: msgpack bytes, or JSON text."""
    if msgpack:
        return _MP_ENC.encode(messages)
    return msgspec.json.encode(messages).decode()


# --- client messages -----------------------------------------------------------------------

CHANNELS: Final = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")
"""Subscription channels of the v2 stock stream, by their wire names."""

DEFAULT_CHANNELS: Final = ("bars", "updatedBars", "dailyBars", "trades", "quotes", "statuses")

CHANNEL_OF: Final[dict[type[MarketEvent], str]] = {
    Bar: "bars",
    UpdatedBar: "updatedBars",
    DailyBar: "dailyBars",
    Trade: "trades",
    Quote: "quotes",
    TradingStatus: "statuses",
}
"""The subscription channel that carries each core event type."""


def auth_message(key_id: str, secret_key: str) -> dict[str, str]:
    """``{"action":"auth","key":..,"secret":..}``."""
    return {"action": "auth", "key": key_id, "secret": secret_key}


def check_channels(channels: Iterable[str]) -> None:
    """``ValueError`` naming the first of ``channels`` that is not in ``CHANNELS``."""
    for ch in channels:
        if ch not in CHANNELS:
            raise ValueError(f"unknown channel {ch!r}; expected one of {', '.join(CHANNELS)}")


def subscribe_message(
    symbols: Iterable[str], channels: Iterable[str] = DEFAULT_CHANNELS, *, action: str = "subscribe"
) -> dict[str, Any]:
    """``{"action":"subscribe","bars":[...],...}`` for every channel in ``channels``."""
    channels = tuple(channels)
    check_channels(channels)
    syms = list(symbols)
    return {"action": action} | {ch: syms for ch in channels}


def encode_client(message: dict[str, Any], *, msgpack: bool) -> bytes | str:
    """Encode a client message the way the server expects it for this connection."""
    return _MP_ENC.encode(message) if msgpack else msgspec.json.encode(message).decode()


# --- error codes ---------------------------------------------------------------------------


class Policy(enum.Enum):
    """What the client does on an error code."""

    FATAL_AUTH = "fatal: credentials, plan or scope"
    FATAL_CONFIG = "fatal: request or configuration"
    WAIT_CONNECTION_LIMIT = "wait >= 90 s, then reconnect"
    RECONNECT = "reconnect with backoff"
    IGNORE = "log and continue"


@dataclass(frozen=True)
class ErrorCode:
    """One documented error code, its meaning and this client's behaviour."""

    code: int
    meaning: str
    policy: Policy
    hint: str = ""


ERROR_CODES: Final[dict[int, ErrorCode]] = {
    e.code: e
    for e in (
        ErrorCode(400, "invalid syntax", Policy.FATAL_CONFIG, "the client sent a bad message"),
        ErrorCode(
            401, "not authenticated", Policy.FATAL_AUTH, "subscribe was sent before auth succeeded"
        ),
        ErrorCode(
            402, "auth failed", Policy.FATAL_AUTH, "check APCA_API_KEY_ID / APCA_API_SECRET_KEY"
        ),
        ErrorCode(403, "already authenticated", Policy.IGNORE),
        ErrorCode(404, "auth timeout", Policy.RECONNECT, "auth was not sent in time"),
        ErrorCode(405, "symbol limit exceeded", Policy.FATAL_CONFIG, "subscribe to fewer symbols"),
        ErrorCode(
            406,
            "connection limit exceeded",
            Policy.WAIT_CONNECTION_LIMIT,
            "another socket uses these keys (or a dead one is still counted)",
        ),
        ErrorCode(407, "slow client", Policy.RECONNECT, "the client fell behind the stream"),
        ErrorCode(
            408,
            "v2 not enabled",
            Policy.FATAL_AUTH,
            "enable the v2 market data API for the account",
        ),
        ErrorCode(
            409,
            "insufficient subscription",
            Policy.FATAL_AUTH,
            "the plan does not include this feed (use feed=iex on the free plan)",
        ),
        ErrorCode(
            410,
            "invalid subscribe action for this feed",
            Policy.FATAL_CONFIG,
            "this feed does not offer one of the requested channels",
        ),
        ErrorCode(
            411, "insufficient scope", Policy.FATAL_AUTH, "the keys lack the market-data scope"
        ),
        ErrorCode(500, "internal error", Policy.RECONNECT),
    )
}

CONNECTION_LIMIT_WAIT_S: Final = 90.0
"""After 406 the server may still count a dead socket for up to ~90 s: wait that long."""


def error_policy(code: int) -> ErrorCode:
    """The behaviour for ``code``; an undocumented code reconnects with backoff."""
    return ERROR_CODES.get(code) or ErrorCode(code, "undocumented error", Policy.RECONNECT)
