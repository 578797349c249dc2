from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from algostack.core import codec
from algostack.core.market import (
    Bar,
    DailyBar,
    Quote,
    Trade,
    TradingStatus,
    UpdatedBar,
    datetime_to_ts,
    ts_to_datetime,
    validate_symbol,
)

TS = 1_764_000_000_123_456_789

EVENTS = [
    Bar(symbol="AAPL", ts=TS, open=1.0, high=2.0, low=0.5, close=1.5, volume=100, trade_count=3),
    UpdatedBar(symbol="AAPL", ts=TS, open=1.0, high=2.0, low=0.5, close=1.6, volume=120),
    DailyBar(symbol="AAPL", ts=TS, open=1.0, high=2.0, low=0.5, close=1.5, volume=1e6),
    Trade(symbol="BRK.B", ts=TS, price=401.5, size=10, exchange="V", trade_id=7, conditions=("@",)),
    Quote(symbol="MSFT", ts=TS, bid_price=1.0, bid_size=2, ask_price=1.1, ask_size=3),
    TradingStatus(symbol="TSLA", ts=TS, status_code="H", status_message="Trading Halt"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_codec_round_trip_keeps_type_and_values(event: codec.MarketEvent) -> None:
    decoded = codec.decode(codec.encode(event))
    assert type(decoded) is type(event)
    assert decoded == event


def test_codec_bar_and_updated_bar_are_distinct_types() -> None:
    bar, updated = EVENTS[0], EVENTS[1]
    assert not isinstance(codec.decode(codec.encode(updated)), Bar)
    assert codec.subject(bar) == "market.bars.AAPL"
    assert codec.subject(updated) == "market.updated_bars.AAPL"


def test_codec_subjects_are_subject_safe() -> None:
    assert codec.subject(EVENTS[3]) == "market.trades.BRK_B"
    assert codec.subject(EVENTS[5]) == "market.status.TSLA"
    assert codec.subject_for("bars", "*") == "market.bars.*"


def test_codec_msg_id_is_kind_symbol_timestamp_for_bars() -> None:
    assert codec.msg_id(EVENTS[0]) == f"bars:AAPL:{TS}"
    # Two revisions of one updated bar are different messages; the same revision is not.
    a = codec.msg_id(EVENTS[1])
    b = codec.msg_id(msgspec.structs.replace(EVENTS[1], volume=130))
    assert a != b and a == codec.msg_id(EVENTS[1])


def test_codec_decode_malformed_payload_raises_decode_error() -> None:
    with pytest.raises(msgspec.DecodeError):
        codec.decode(b"\x93garbage")
    with pytest.raises(msgspec.ValidationError):
        codec.decode(msgspec.msgpack.encode({"T": "zz", "symbol": "A", "ts": 1}))


@given(
    ts=st.integers(min_value=0, max_value=2**62),
    price=st.floats(allow_nan=False, allow_infinity=False, width=64),
)
def test_codec_round_trip_property(ts: int, price: float) -> None:
    t = Trade(symbol="X", ts=ts, price=price, size=1)
    assert codec.decode(codec.encode(t)) == t


def test_timestamps_convert_both_ways_at_microsecond_precision() -> None:
    dt = ts_to_datetime(TS)
    assert datetime_to_ts(dt) == TS - TS % 1000
    with pytest.raises(ValueError, match="naive"):
        datetime_to_ts(dt.replace(tzinfo=None))


@pytest.mark.parametrize("bad", ["", "aapl", "AAPL!", "TOO_LONG_SYMBOL", "A B"])
def test_validate_symbol_rejects_bad_symbols(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid symbol"):
        validate_symbol(bad)


def test_validate_symbol_accepts_class_shares() -> None:
    assert validate_symbol("BRK.B") == "BRK.B"
