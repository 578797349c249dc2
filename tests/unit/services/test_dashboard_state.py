"""DashboardState: pure aggregation of market and trader events into the fleet view."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import msgspec
import pytest

from algostack.core.events import Decision, Heartbeat, PnlUpdate, RiskUpdate
from algostack.core.market import NS_PER_S, Bar, Quote, TradingStatus, UpdatedBar
from algostack.services.dashboard.aggregate import (
    MAX_PRICE_POINTS,
    DashboardState,
    HealthPolicy,
    normalize_trade,
    parse_ts,
)

T0 = 1_750_000_000 * NS_PER_S  # an arbitrary wall-clock instant


def bar(symbol: str, minute: int, close: float) -> Bar:
    return Bar(
        symbol=symbol, ts=minute * 60 * NS_PER_S, open=close, high=close, low=close, close=close,
        volume=1.0,
    )  # fmt: skip


def heartbeat(model: str, state: str = "ACTIVE", position: int = 5) -> Heartbeat:
    return Heartbeat(
        model=model, ts=0, symbol="AAPL", state=state, position=position, last_bar_ts=0, bars=1,
        decisions=1, orders=0, latency_p50_us=250.0, latency_p99_us=900.0, warmed_up=True,
    )  # fmt: skip


def test_state_bars_build_sorted_price_series_and_updated_bar_replaces_close() -> None:
    st = DashboardState()
    st.on_market(bar("AAPL", 2, 101.0), T0)
    st.on_market(bar("AAPL", 1, 100.0), T0)
    st.on_market(UpdatedBar(**{**_fields(bar("AAPL", 2, 0)), "close": 102.5}), T0)
    st.on_market(Quote(symbol="AAPL", ts=1, bid_price=1, bid_size=1, ask_price=2, ask_size=1), T0)
    snap = st.snapshot(T0)
    assert snap.prices["AAPL"] == ((60 * NS_PER_S, 100.0), (120 * NS_PER_S, 102.5))
    (row,) = snap.symbols
    assert row.bars == 2  # the updated bar revised a minute, it is not a new one
    assert row.last_close == 102.5


def _fields(b: Bar) -> dict[str, object]:
    return {f: getattr(b, f) for f in b.__struct_fields__}


def test_state_price_series_is_capped_keeping_newest() -> None:
    st = DashboardState()
    for m in range(MAX_PRICE_POINTS + 10):
        st.on_market(bar("SPY", m, float(m)), T0)
    pts = st.snapshot(T0).prices["SPY"]
    assert len(pts) == MAX_PRICE_POINTS
    assert pts[0][1] == 10.0 and pts[-1][1] == float(MAX_PRICE_POINTS + 9)


def test_state_heartbeat_fresh_and_bar_fresh_is_healthy() -> None:
    st = DashboardState(HealthPolicy(stale_after_s=60, silent_after_s=10))
    st.on_market(bar("AAPL", 1, 100.0), T0)
    st.on_trader(heartbeat("m1"), T0)
    (row,) = st.snapshot(T0 + 5 * NS_PER_S).fleet
    assert row.healthy and row.health == "OK"
    assert row.heartbeat_age_s == pytest.approx(5.0)
    assert row.latency_p50_ms == pytest.approx(0.25) and row.latency_p99_ms == pytest.approx(0.9)
    assert row.position == 5 and row.state == "ACTIVE"


def test_state_heartbeat_carries_pnl_for_a_dashboard_opened_mid_session() -> None:
    st = DashboardState()
    st.on_market(bar("AAPL", 1, 100.0), T0)
    hb = msgspec.structs.replace(heartbeat("m1"), realised=12.5, unrealised=-3.0)
    st.on_trader(hb, T0)
    (row,) = st.snapshot(T0).fleet
    assert (row.realised, row.unrealised) == (12.5, -3.0)


def test_state_a_trader_that_restarted_today_is_flagged_with_its_restarts() -> None:
    st = DashboardState(HealthPolicy(silent_after_s=10))
    st.on_market(bar("AAPL", 1, 100.0), T0)
    st.on_trader(heartbeat("m1"), T0)
    assert st.snapshot(T0).fleet[0].health == "OK"
    st.on_trader(msgspec.structs.replace(heartbeat("m1"), restarts=2), T0)
    (row,) = st.snapshot(T0).fleet
    assert not row.healthy and row.health == "RESTARTED x2"


def test_state_heartbeat_older_than_limit_flags_silent() -> None:
    st = DashboardState(HealthPolicy(silent_after_s=10))
    st.on_market(bar("AAPL", 1, 100.0), T0 + 11 * NS_PER_S)
    st.on_trader(heartbeat("m1"), T0)
    (row,) = st.snapshot(T0 + 11 * NS_PER_S).fleet
    assert row.silent and not row.stale_data and row.health == "SILENT"


def test_state_model_known_only_from_bucket_is_silent() -> None:
    st = DashboardState()
    st.register_model("onnx-SPY-model_9", "SPY")
    (row,) = st.snapshot(T0).fleet
    assert row.silent and row.heartbeat_age_s is None and row.symbol == "SPY"


def test_state_last_bar_older_than_limit_flags_stale_only_while_market_open() -> None:
    is_open = {"v": True}
    st = DashboardState(HealthPolicy(stale_after_s=60, market_open=lambda _at: is_open["v"]))
    st.on_market(bar("AAPL", 1, 100.0), T0)
    st.on_trader(heartbeat("m1"), T0 + 61 * NS_PER_S)
    (row,) = st.snapshot(T0 + 61 * NS_PER_S).fleet
    assert row.stale_data and row.health == "STALE DATA"
    assert st.snapshot(T0 + 61 * NS_PER_S).symbols[0].stale
    is_open["v"] = False
    (row,) = st.snapshot(T0 + 61 * NS_PER_S).fleet
    assert not row.stale_data and row.healthy


def test_state_market_open_is_asked_with_the_snapshot_time() -> None:
    seen: list[datetime] = []
    st = DashboardState(HealthPolicy(market_open=lambda at: seen.append(at) or True))
    st.snapshot(T0)
    assert seen == [datetime.fromtimestamp(T0 / NS_PER_S, UTC)]


def test_state_risk_halted_flags_halted_with_reason() -> None:
    st = DashboardState()
    st.on_market(bar("AAPL", 1, 100.0), T0)
    st.on_trader(heartbeat("m1"), T0)
    st.on_trader(
        RiskUpdate(
            model="m1", ts=1, state="HALTED", previous="ACTIVE", reason="loss", daily_pnl=-5
        ),
        T0,
    )
    snap = st.snapshot(T0)
    assert snap.fleet[0].halted and snap.fleet[0].health == "HALTED"
    assert snap.models["m1"].risk_reason == "loss"
    assert snap.alerts == 1


def test_state_pnl_updates_build_curve_and_latest_values() -> None:
    st = DashboardState()
    for i in range(3):
        st.on_trader(
            PnlUpdate(
                model="m1", ts=i, symbol="AAPL", position=i, realised=float(i),
                unrealised=-float(i), equity=1e5, mark=100.0,
            ),
            T0,
        )  # fmt: skip
    d = st.snapshot(T0).models["m1"]
    assert [p.realised for p in d.pnl] == [0.0, 1.0, 2.0]
    assert d.row.realised == 2.0 and d.row.unrealised == -2.0 and d.row.position == 2


def test_state_decision_records_last_latency() -> None:
    st = DashboardState()
    st.on_trader(
        Decision(
            model="m1", ts=1, symbol="AAPL", bar_ts=0, score=0.1, direction=0, target_qty=0,
            order_qty=0, latency_us=321.0,
        ),
        T0,
    )  # fmt: skip
    d = st.snapshot(T0).models["m1"]
    assert d.last_decision_latency_us == 321.0
    assert d.row.latency_p50_ms is None  # no heartbeat yet: unknown, not zero


def test_state_live_fill_and_same_journal_row_are_counted_once() -> None:
    st = DashboardState()
    fill = {"client_order_id": "abc", "side": "buy", "qty": 5, "price": 10.0, "ts": T0}
    assert st.on_fill("m1", fill)
    row = normalize_trade({**fill, "extra": "x"}, source="journal")
    assert row is not None
    st.load_journal("m1", "AAPL", [row], ["log line"])
    d = st.snapshot(T0).models["m1"]
    assert len(d.trades) == 1 and d.trades[0].source == "live"
    assert d.log_tail == ("log line",)


def test_state_fill_without_price_is_counted_ignored_not_stored() -> None:
    st = DashboardState()
    assert not st.on_fill("m1", {"side": "buy", "qty": 5, "ts": T0})
    snap = st.snapshot(T0)
    assert snap.ignored == 1 and "m1" not in snap.models


def test_state_trading_status_halt_marks_symbol_halted() -> None:
    st = DashboardState()
    st.on_market(TradingStatus(symbol="AAPL", ts=1, status_code="H"), T0)
    assert st.snapshot(T0).symbols[0].halted


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (T0, T0),
        (T0 // 1_000, T0),
        (T0 // 1_000_000, T0),
        (T0 // NS_PER_S, T0),
        (str(T0), T0),
        ("2025-06-15T15:06:40Z", 1_750_000_000 * NS_PER_S),
        ("2025-06-15T15:06:40", 1_750_000_000 * NS_PER_S),
        ("2025-06-15 15:06:40.5+00:00", 1_750_000_000 * NS_PER_S + NS_PER_S // 2),
        ("not a time", None),
        ("", None),
        (None, None),
        (-5, None),
        (math.nan, None),
        (True, None),
    ],
)
def test_parse_ts_any_unit_or_iso_gives_ns_or_none(value: object, expected: int | None) -> None:
    assert parse_ts(value) == expected


def test_normalize_trade_alternate_column_names_and_signed_qty() -> None:
    row = normalize_trade(
        {"timestamp": "2025-06-15T15:06:40Z", "quantity": "-3", "fill_price": "9.5", "id": "o1"},
        source="journal",
    )
    assert row is not None
    assert (row.side, row.qty, row.price, row.order_id) == ("sell", 3.0, 9.5, "o1")


@pytest.mark.parametrize(
    "fields",
    [
        {"ts": T0, "qty": 1},
        {"ts": T0, "price": 1.0},
        {"qty": 1, "price": 1.0},
        {"ts": T0, "qty": "abc", "price": 1.0},
        {"ts": T0, "qty": 1, "price": "inf"},
    ],
)
def test_normalize_trade_missing_or_bad_basics_is_none(fields: dict[str, object]) -> None:
    assert normalize_trade(fields, source="live") is None
