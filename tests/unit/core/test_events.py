from __future__ import annotations

import msgspec
import pytest

from algostack.core.events import (
    Decision,
    Heartbeat,
    PnlUpdate,
    RiskUpdate,
    decode_event,
    encode_event,
    event_kind,
)

EVENTS = [
    Heartbeat(
        model="m",
        ts=1,
        symbol="AAPL",
        state="ACTIVE",
        position=10,
        last_bar_ts=0,
        bars=3,
        decisions=3,
        orders=1,
        latency_p50_us=50.0,
        latency_p99_us=90.0,
        warmed_up=True,
    ),
    Decision(
        model="m",
        ts=2,
        symbol="AAPL",
        bar_ts=0,
        score=0.7,
        direction=1,
        target_qty=10,
        order_qty=10,
        latency_us=120.0,
    ),
    RiskUpdate(model="m", ts=3, state="HALTED", previous="ACTIVE", reason="kill", daily_pnl=-5),
    PnlUpdate(
        model="m",
        ts=4,
        symbol="AAPL",
        position=0,
        realised=1.5,
        unrealised=0.0,
        equity=1.5,
        mark=100.0,
    ),
]


@pytest.mark.parametrize("event", EVENTS, ids=event_kind)
def test_trader_event_round_trip_keeps_type(event: msgspec.Struct) -> None:
    decoded = decode_event(encode_event(event))
    assert type(decoded) is type(event) and decoded == event


def test_trader_event_kinds_are_subject_tokens() -> None:
    assert [event_kind(e) for e in EVENTS] == ["heartbeat", "decision", "risk", "pnl"]


def test_trader_event_decode_rejects_market_payload() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_event(msgspec.msgpack.encode({"T": "b", "model": "m", "ts": 1}))
