"""Alpaca wire parsing: documented message shapes, timestamps, malformed input, error policy."""

from __future__ import annotations

import struct
from pathlib import Path

import msgpack
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from algostack.adapters.alpaca import wire
from algostack.core.market import Bar, DailyBar, Quote, Trade, TradingStatus, UpdatedBar

FIXTURES = Path(__file__).parents[2] / "fixtures" / "alpaca"
FORMATS = ["json", "msgpack"]


def _load(name: str, fmt: str) -> bytes | str:
    path = FIXTURES / f"{name}.{fmt}"
    return path.read_bytes() if fmt == "msgpack" else path.read_text()


@pytest.mark.parametrize("fmt", FORMATS)
def test_parse_frame_documented_trade_parses_every_field(fmt: str) -> None:
    parsed = wire.parse_frame(_load("trades", fmt))
    assert parsed.events == [
        Trade(
            symbol="AAPL",
            ts=1614009104_208000000,
            price=126.55,
            size=1.0,
            exchange="D",
            trade_id=96921,
            conditions=("@", "I"),
            tape="C",
        )
    ]
    assert (parsed.malformed, parsed.ignored, parsed.controls) == (0, 0, [])


@pytest.mark.parametrize("fmt", FORMATS)
def test_parse_frame_documented_quote_keeps_nanoseconds(fmt: str) -> None:
    (q,) = wire.parse_frame(_load("quotes", fmt)).events
    assert q == Quote(
        symbol="AMD",
        ts=1614009105_335689322,
        bid_price=87.66,
        bid_size=1.0,
        ask_price=87.68,
        ask_size=4.0,
        bid_exchange="U",
        ask_exchange="Q",
        conditions=("R",),
        tape="C",
    )


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("name", "cls", "close", "volume", "count", "vwap", "ts"),
    [
        ("bars", Bar, 389.12, 49378.0, 461, 389.062639, 1614021300_000000000),
        ("updated_bars", UpdatedBar, 389.14, 49420.0, 463, 389.062912, 1614021300_000000000),
        ("daily_bars", DailyBar, 389.12, 21563902.0, 163524, 388.291231, 1613970000_000000000),
    ],
)
def test_parse_frame_bar_kinds_are_told_apart(
    fmt: str,
    name: str,
    cls: type,
    close: float,
    volume: float,
    count: int,
    vwap: float,
    ts: int,
) -> None:
    (bar,) = wire.parse_frame(_load(name, fmt)).events
    assert type(bar) is cls
    assert (bar.symbol, bar.ts, bar.close, bar.volume, bar.trade_count, bar.vwap) == (
        "SPY",
        ts,
        close,
        volume,
        count,
        vwap,
    )
    if name == "bars":
        assert (bar.open, bar.high, bar.low) == (388.985, 389.13, 388.975)


@pytest.mark.parametrize("fmt", FORMATS)
def test_parse_frame_status_parses_halt(fmt: str) -> None:
    (s,) = wire.parse_frame(_load("statuses", fmt)).events
    assert isinstance(s, TradingStatus)
    assert s.ts == 1614021300_123456789
    assert (s.status_code, s.status_message, s.reason_code, s.tape) == (
        "H",
        "Trading Halt",
        "T12",
        "C",
    )
    assert s.reason_message.startswith("Trading Halted")
    assert s.is_halted


@pytest.mark.parametrize("fmt", FORMATS)
def test_parse_frame_luld_correction_cancel_are_ignored_not_malformed(fmt: str) -> None:
    parsed = wire.parse_frame(_load("ignored_known", fmt))
    assert (parsed.events, parsed.ignored, parsed.malformed) == ([], 3, 0)


@pytest.mark.parametrize("fmt", FORMATS)
def test_parse_frame_batch_keeps_order_and_zone_offsets(fmt: str) -> None:
    events = wire.parse_frame(_load("batch", fmt)).events
    assert [type(e) for e in events] == [Bar, Trade, Quote]
    assert events[1].ts == 1614009120_000000001
    # 15:52:00.5 at -05:00 is 20:52:00.5 UTC.
    assert events[2].ts == 1614027120_500000000


@pytest.mark.parametrize("fmt", FORMATS)
def test_parse_frame_control_messages_are_typed(fmt: str) -> None:
    assert wire.parse_frame(_load("success_connected", fmt)).controls == [
        wire.Success(msg="connected")
    ]
    assert wire.parse_frame(_load("success_authenticated", fmt)).controls == [
        wire.Success(msg="authenticated")
    ]
    assert wire.parse_frame(_load("error_402", fmt)).controls == [
        wire.Error(code=402, msg="auth failed")
    ]
    (sub,) = wire.parse_frame(_load("subscription", fmt)).controls
    assert isinstance(sub, wire.Subscription)
    assert (sub.trades, sub.quotes, sub.bars, sub.dailyBars, sub.lulds) == (
        ["AAPL"],
        ["AMD", "CLDR"],
        ["*"],
        ["VOO"],
        [],
    )


def test_parse_frame_unknown_type_counted_rest_of_frame_kept() -> None:
    frame = (
        '[{"T":"zz","S":"AAPL"},'
        '{"T":"b","S":"AAPL","o":1,"h":2,"l":0.5,"c":1.5,"v":10,"t":"2024-01-02T15:00:00Z"}]'
    )
    parsed = wire.parse_frame(frame)
    assert parsed.malformed == 1
    assert len(parsed.events) == 1 and parsed.events[0].close == 1.5
    assert "zz" in parsed.problems[0]


def test_parse_frame_missing_field_counted_rest_of_frame_kept() -> None:
    good = {"T": "t", "S": "MSFT", "i": 1, "p": 10.0, "s": 5, "t": msgpack.Timestamp(1, 0)}
    bad = {"T": "t", "S": "AAPL", "t": msgpack.Timestamp(1, 0)}  # no price, no size
    parsed = wire.parse_frame(msgpack.packb([bad, good]))
    assert parsed.malformed == 1
    assert [e.symbol for e in parsed.events] == ["MSFT"]


@pytest.mark.parametrize(
    "frame",
    [b"\xc1\xc1garbage", "not json at all", '{"T":"b"}', "[1, 2", b""],
    ids=["bad-msgpack", "bad-json", "not-an-array", "truncated", "empty"],
)
def test_parse_frame_garbage_counts_one_malformed_never_raises(frame: bytes | str) -> None:
    parsed = wire.parse_frame(frame)
    assert (parsed.events, parsed.malformed) == ([], 1)
    assert len(parsed.problems) == 1


def test_parse_frame_bad_timestamp_counted_and_problem_truncated() -> None:
    long_sym = "A" * 5000
    frame = (
        f'[{{"T":"t","S":"{long_sym}","p":1,"s":1,"t":"yesterday-ish"}},'
        '{"T":"t","S":"IBM","p":1,"s":1,"t":"2024-01-02T15:00:00Z"}]'
    )
    parsed = wire.parse_frame(frame)
    assert parsed.malformed == 1
    assert [e.symbol for e in parsed.events] == ["IBM"]
    assert len(parsed.problems[0]) < 400


def test_parse_frame_timestamp_ext_of_wrong_length_is_malformed() -> None:
    ext = msgspec.msgpack.Ext(-1, b"abc")
    bad = msgspec.msgpack.encode([{"T": "t", "S": "AAPL", "p": 1.0, "s": 1, "t": ext}])
    parsed = wire.parse_frame(bad)
    assert (parsed.events, parsed.malformed) == ([], 1)


def test_parse_frame_format_follows_frame_type_unless_told() -> None:
    text = (FIXTURES / "trades.json").read_text()
    assert len(wire.parse_frame(text).events) == 1
    # Told msgpack, a JSON text is garbage: counted, not raised.
    assert wire.parse_frame(text, msgpack=True).malformed == 1


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (struct.pack(">I", 1614009104), 1614009104_000000000),
        (struct.pack(">Q", (208_000_000 << 34) | 1614009104), 1614009104_208000000),
        (struct.pack(">Iq", 335689322, 1614009105), 1614009105_335689322),
        (struct.pack(">Iq", 5, -1), -999_999_995),
    ],
    ids=["32-bit", "64-bit", "96-bit", "96-bit-before-epoch"],
)
def test_ext_to_ns_every_timestamp_form_decodes(data: bytes, expected: int) -> None:
    assert wire.ext_to_ns(msgspec.msgpack.Ext(-1, data)) == expected


def test_ext_to_ns_other_extension_type_refused() -> None:
    with pytest.raises(ValueError, match="not a timestamp"):
        wire.ext_to_ns(msgspec.msgpack.Ext(5, b"\x00" * 8))


@pytest.mark.parametrize("text", ["2024-01-02", "2024-01-02T15:00:00", "2024-01-02T15:00:00.Z"])
def test_rfc3339_to_ns_incomplete_text_refused(text: str) -> None:
    with pytest.raises(ValueError):
        wire.rfc3339_to_ns(text)


@given(st.integers(min_value=0, max_value=4_102_444_800 * 10**9))
def test_rfc3339_and_ext_roundtrip_any_nanosecond(ns: int) -> None:
    assert wire.rfc3339_to_ns(wire.ns_to_rfc3339(ns)) == ns
    assert wire.ext_to_ns(wire.ns_to_ext(ns)) == ns


_price = st.floats(min_value=0.01, max_value=1e6, allow_nan=False)
_ts = st.integers(min_value=10**18, max_value=2 * 10**18)
_sym = st.sampled_from(["AAPL", "BRK.B", "SPY", "FAKEPACA"])
_events = st.one_of(
    st.builds(
        Trade,
        symbol=_sym,
        ts=_ts,
        price=_price,
        size=_price,
        exchange=st.sampled_from(["V", "D"]),
        trade_id=st.integers(0, 2**62),
        conditions=st.tuples(st.sampled_from(["@", "I"])),
        tape=st.just("C"),
    ),
    st.builds(
        Quote,
        symbol=_sym,
        ts=_ts,
        bid_price=_price,
        bid_size=_price,
        ask_price=_price,
        ask_size=_price,
    ),
    *[
        st.builds(
            cls,
            symbol=_sym,
            ts=_ts,
            open=_price,
            high=_price,
            low=_price,
            close=_price,
            volume=_price,
            trade_count=st.integers(0, 10**6),
            vwap=_price,
        )
        for cls in (Bar, UpdatedBar, DailyBar)
    ],
    st.builds(TradingStatus, symbol=_sym, ts=_ts, status_code=st.sampled_from(["H", "T"])),
)


@given(st.lists(_events, max_size=20), st.booleans())
def test_to_wire_then_parse_frame_roundtrips(events: list, use_msgpack: bool) -> None:
    frame = wire.encode_frame(
        [wire.to_wire(e, msgpack=use_msgpack) for e in events], msgpack=use_msgpack
    )
    parsed = wire.parse_frame(frame)
    assert parsed.events == events
    assert parsed.malformed == 0


@pytest.mark.parametrize("code", [401, 402, 408, 409, 411])
def test_error_policy_auth_codes_are_fatal_auth(code: int) -> None:
    assert wire.error_policy(code).policy is wire.Policy.FATAL_AUTH


@pytest.mark.parametrize("code", [400, 405, 410])
def test_error_policy_request_codes_are_fatal_config(code: int) -> None:
    assert wire.error_policy(code).policy is wire.Policy.FATAL_CONFIG


def test_error_policy_runtime_codes_reconnect_or_wait() -> None:
    assert wire.error_policy(406).policy is wire.Policy.WAIT_CONNECTION_LIMIT
    assert wire.CONNECTION_LIMIT_WAIT_S >= 90
    for code in (404, 407, 500, 599):
        assert wire.error_policy(code).policy is wire.Policy.RECONNECT
    assert wire.error_policy(403).policy is wire.Policy.IGNORE
    assert "APCA_API_KEY_ID" in wire.error_policy(402).hint


def test_subscribe_message_lists_symbols_per_channel() -> None:
    msg = wire.subscribe_message(["AAPL", "MSFT"], ["bars", "trades"])
    assert msg == {"action": "subscribe", "bars": ["AAPL", "MSFT"], "trades": ["AAPL", "MSFT"]}
    decoded = msgspec.msgpack.decode(wire.encode_client(msg, msgpack=True))
    assert decoded == msg


def test_subscribe_message_unknown_channel_refused() -> None:
    with pytest.raises(ValueError, match="unknown channel 'news'"):
        wire.subscribe_message(["AAPL"], ["news"])


def test_auth_message_has_alpaca_keys() -> None:
    text = wire.encode_client(wire.auth_message("k", "s"), msgpack=False)
    assert msgspec.json.decode(text) == {"action": "auth", "key": "k", "secret": "s"}
