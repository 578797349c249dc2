"""The account panel: the gateway's DeskStatus in the dashboard state and its formatting."""

from __future__ import annotations

from typing import Any

import msgspec

from algostack.core.events import DeskStatus, decode_desk_status, encode_event
from algostack.core.market import NS_PER_S
from algostack.services.dashboard.aggregate import DashboardState, HealthPolicy
from algostack.services.dashboard.views import (
    ALERT_STYLE,
    FOREIGN_STYLE,
    OK_STYLE,
    account_frame,
    account_row_style,
    day_trades_text,
    kill_loss_text,
    style_account,
)

T0 = 1_750_000_000 * NS_PER_S
WHY = "account holds 7, the model books sum to 5 ({'m1': 5})"


def desk_status(**kw: Any) -> DeskStatus:
    fields: dict[str, Any] = {
        "ts": 1,
        "venue": "alpaca",
        "venue_ready": True,
        "account": {"AAPL": 15, "MSFT": 5},
        "books": {"m1": {"AAPL": 10, "MSFT": 5}, "m2": {"AAPL": 5}, "m3": {}},
        "reconciliation": {"AAPL": "ok", "MSFT": f"halted: {WHY}", "TSLA": "foreign: 3 shares"},
        "halted": {"MSFT": f"reconciliation: {WHY}"},
        "killed": False,
        "loss_breached": False,
        "desk_pnl": -12.5,
        "day_trades_left": 2,
        "working": 1,
        "counters": {"intents": 9, "refused": 2, "venue_orders": 4, "crossed_shares": 30},
    }
    return DeskStatus(**{**fields, **kw})


def test_state_without_gateway_status_has_no_account() -> None:
    assert DashboardState().snapshot(T0).account is None


def test_state_desk_status_gives_rows_per_symbol_with_each_model_book() -> None:
    st = DashboardState()
    st.on_desk_status(decode_desk_status(encode_event(desk_status())), T0)
    view = st.snapshot(T0 + NS_PER_S).account
    assert view is not None
    assert view.models == ("m1", "m2", "m3")
    assert [r.symbol for r in view.rows] == ["AAPL", "MSFT", "TSLA"]
    aapl, msft, tsla = view.rows
    assert (aapl.account, dict(aapl.books), aapl.state) == (15, {"m1": 10, "m2": 5}, "ok")
    assert msft.halted and msft.halt_reason == WHY and msft.state == f"HALTED: {WHY}"
    assert tsla.foreign and not tsla.halted and tsla.account == 0
    assert tsla.state == "FOREIGN: 3 shares"
    assert (view.crossed_shares, view.venue_orders, view.refused) == (30, 4, 2)
    assert view.age_s == 1.0 and view.stream == "OK"
    assert view.flags == ("HALTED MSFT",)


def test_state_latest_desk_status_replaces_the_previous() -> None:
    st = DashboardState()
    st.on_desk_status(desk_status(desk_pnl=1.0), T0)
    st.on_desk_status(desk_status(desk_pnl=2.0, reconciliation={}, halted={}), T0 + NS_PER_S)
    view = st.snapshot(T0 + NS_PER_S).account
    assert view is not None and view.desk_pnl == 2.0 and view.age_s == 0.0
    assert {r.state for r in view.rows} == {"not checked"}  # books, not reconciled yet
    assert view.healthy


def test_state_gateway_status_older_than_limit_is_silent() -> None:
    st = DashboardState(HealthPolicy(gateway_silent_after_s=5))
    st.on_desk_status(desk_status(reconciliation={}, halted={}), T0)
    fresh = st.snapshot(T0 + 5 * NS_PER_S).account
    stale = st.snapshot(T0 + 6 * NS_PER_S).account
    assert fresh is not None and not fresh.silent and fresh.stream == "OK"
    assert stale is not None and stale.silent and stale.stream == "SILENT"
    assert stale.flags == ("SILENT",) and not stale.healthy


def test_state_venue_stream_down_kill_and_loss_are_flagged() -> None:
    st = DashboardState()
    st.on_desk_status(
        desk_status(venue_ready=False, killed=True, loss_breached=True, halted={}), T0
    )
    view = st.snapshot(T0).account
    assert view is not None
    assert view.flags == ("VENUE DOWN", "KILLED", "LOSS LIMIT", "HALTED MSFT")
    assert kill_loss_text(view) == "KILLED, LOSS LIMIT"


def test_state_desk_halt_without_reconciliation_still_halts_the_row() -> None:
    st = DashboardState()
    st.on_desk_status(desk_status(reconciliation={}, halted={"AAPL": "manual"}), T0)
    view = st.snapshot(T0).account
    assert view is not None
    assert [(r.symbol, r.state) for r in view.rows if r.halted] == [("AAPL", "HALTED: manual")]


def test_day_trades_text_none_is_not_limited() -> None:
    assert day_trades_text(None) == "not limited"
    assert day_trades_text(0) == "0"
    assert day_trades_text(3) == "3"


def test_kill_loss_text_nothing_raised_is_off() -> None:
    st = DashboardState()
    st.on_desk_status(desk_status(), T0)
    view = st.snapshot(T0).account
    assert view is not None and kill_loss_text(view) == "off"


def test_account_frame_has_a_column_per_model_and_halted_row_styled_red() -> None:
    st = DashboardState()
    st.on_desk_status(desk_status(), T0)
    view = st.snapshot(T0).account
    assert view is not None
    frame = account_frame(view)
    assert list(frame.columns) == ["Symbol", "Account", "m1", "m2", "m3", "Reconciliation"]
    assert frame.set_index("Symbol").loc["AAPL", ["Account", "m1", "m2", "m3"]].tolist() == [
        15, 10, 5, 0,
    ]  # fmt: skip
    aapl, msft, tsla = (account_row_style(row) for _, row in frame.iterrows())
    assert msft == [ALERT_STYLE] * 6
    assert tsla == [FOREIGN_STYLE] * 6
    assert aapl == ["", "", "", "", "", OK_STYLE]  # an ok row: only its reconciliation cell
    assert style_account(frame).to_html().count("#b71c1c") >= 1


def test_desk_status_round_trips_through_the_wire_codec() -> None:
    status = desk_status(day_trades_left=None)
    assert decode_desk_status(encode_event(status)) == status
    assert msgspec.structs.asdict(status)["day_trades_left"] is None
