"""The dashboard in a local session: the run's live journal root, session-time charts."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

from algostack.core.events import PnlUpdate
from algostack.core.market import NS_PER_MIN, Bar
from algostack.services.dashboard.aggregate import DashboardState, ModelDetail, PnlPoint, pnl_curve
from algostack.services.dashboard.journals import (
    LOG_TAIL_LINES,
    apply_scan,
    scan_journal_dir,
)
from algostack.services.dashboard.launch import DashboardLaunch, child_env
from algostack.services.dashboard.views import pnl_frame, price_frame, trades_frame

DAY = date(2024, 3, 15)
OPEN_TS = 1_710_509_400 * 1_000_000_000  # 2024-03-15 09:30 New York (EDT), UTC ns
HEADER = (
    "time,ts_ns,model,symbol,side,qty,price,client_order_id,broker_order_id,score,"
    "decision_latency_us,commission,position_after,realised_pnl,reason\n"
)


def journal_row(minute: int, side: str, qty: int, price: float, cid: str) -> str:
    ts = OPEN_TS + minute * NS_PER_MIN
    when = f"2024-03-15T13:{30 + minute:02d}:00.000000Z"
    return f"{when},{ts},m,AAPL,{side},{qty},{price},{cid},b,0,1,0,0,0,signal\n"


def write_model(root: Path, key: str, rows: list[str], log_lines: int = 3) -> Path:
    mdir = root / key
    mdir.mkdir(parents=True)
    (mdir / f"trades_{DAY.isoformat()}.csv").write_text(HEADER + "".join(rows))
    (mdir / "live_trader.log").write_text(
        "".join(f'{{"msg": "line {i}"}}\n' for i in range(log_lines))
    )
    return mdir


def test_scan_journal_dir_reads_each_models_trades_symbol_and_log_tail(tmp_path: Path) -> None:
    rows = [journal_row(1, "buy", 93, 268.2, "c1"), journal_row(5, "sell", 93, 266.6, "c2")]
    write_model(tmp_path, "sma-AAPL-model_4", rows)
    (tmp_path / "gbt-MSFT-model_2").mkdir()  # started, nothing traded or logged yet
    scan = scan_journal_dir(tmp_path)
    assert set(scan.journals) == {"sma-AAPL-model_4", "gbt-MSFT-model_2"}
    j = scan.journals["sma-AAPL-model_4"]
    assert j.symbol == "AAPL"
    assert [(t.side, t.qty, t.order_id) for t in j.trades] == [
        ("buy", 93, "c1"),
        ("sell", 93, "c2"),
    ]
    assert j.trades[0].ts == OPEN_TS + NS_PER_MIN and j.trades[0].source == "journal"
    assert j.log_tail[-1] == '{"msg": "line 2"}'
    assert scan.journals["gbt-MSFT-model_2"].trades == [] and scan.errors == []


def test_scan_journal_dir_missing_root_is_an_empty_scan(tmp_path: Path) -> None:
    scan = scan_journal_dir(tmp_path / "not-yet")
    assert scan.journals == {} and scan.models == {} and scan.errors == []


def test_scan_journal_dir_bad_rows_and_foreign_dirs_are_reported_not_fatal(tmp_path: Path) -> None:
    write_model(tmp_path, "m1", [journal_row(1, "buy", 5, 10.0, "c1"), "garbage,row\n"])
    (tmp_path / "not a key").mkdir()
    (tmp_path / "stray.txt").write_text("x")
    scan = scan_journal_dir(tmp_path)
    assert set(scan.journals) == {"m1"}
    assert len(scan.journals["m1"].trades) == 1 and scan.journals["m1"].skipped_rows == 1
    assert scan.errors == ["ignored journal directory 'not a key': not a model key"]


def test_scan_journal_dir_long_log_keeps_only_whole_last_lines(tmp_path: Path) -> None:
    write_model(tmp_path, "m1", [], log_lines=20_000)  # ~380 kB, more than the tail read
    tail = scan_journal_dir(tmp_path).journals["m1"].log_tail
    assert len(tail) == LOG_TAIL_LINES
    assert tail[-1] == '{"msg": "line 19999"}' and all(t.startswith('{"msg"') for t in tail)


def test_apply_live_journal_then_live_fill_same_order_is_shown_once(tmp_path: Path) -> None:
    write_model(tmp_path, "m1", [journal_row(1, "buy", 5, 10.0, "c1")])
    state = DashboardState()
    apply_scan(state, scan_journal_dir(tmp_path))
    fill = {"client_order_id": "c1", "symbol": "AAPL", "side": "buy", "qty": 5,
            "price": 10.0, "ts": OPEN_TS + NS_PER_MIN}  # fmt: skip
    assert state.on_fill("m1", fill)
    apply_scan(state, scan_journal_dir(tmp_path))  # re-read: still once
    detail = state.snapshot(OPEN_TS).models["m1"]
    assert len(detail.trades) == 1 and detail.row.symbol == "AAPL"


def test_pnl_update_sits_at_the_symbols_latest_bar_not_the_wall_clock() -> None:
    state = DashboardState()
    pnl = PnlUpdate(model="m1", ts=OPEN_TS + 10**12, symbol="AAPL", position=5,
                    realised=1.0, unrealised=2.0, equity=3.0, mark=10.0)  # fmt: skip
    state.on_trader(pnl, OPEN_TS)
    bar_ts = OPEN_TS + 7 * NS_PER_MIN
    state.on_market(Bar(symbol="AAPL", ts=bar_ts, open=1, high=1, low=1, close=1, volume=1), 0)
    state.on_trader(pnl, OPEN_TS)
    points = state.snapshot(OPEN_TS).models["m1"].pnl
    assert [p.session_ts for p in points] == [pnl.ts, bar_ts]  # no bar yet: its own time


def test_charts_and_trades_are_in_new_york_time() -> None:
    frame = price_frame(((OPEN_TS, 10.0), (OPEN_TS + NS_PER_MIN, 11.0)))
    assert [t.strftime("%H:%M") for t in frame.index] == ["09:30", "09:31"]
    assert frame.index.tz is None  # naive exchange time: Vega shows it as is
    state = DashboardState()
    fill = {"client_order_id": "c", "side": "buy", "qty": 1, "price": 1, "ts": OPEN_TS}
    state.on_fill("m1", fill)
    detail = state.snapshot(OPEN_TS).models["m1"]
    assert list(trades_frame(detail)["Time"]) == ["09:30:00"]


def test_pnl_curve_re_marks_unrealised_at_every_later_close() -> None:
    t1, t2, t3 = (OPEN_TS + k * NS_PER_MIN for k in (1, 2, 3))
    points = [
        PnlPoint(ts=9, realised=0.0, unrealised=-2.0, equity=0, bar_ts=t1, position=10, mark=5.0),
        PnlPoint(ts=9, realised=7.0, unrealised=0.0, equity=0, bar_ts=t3, position=0, mark=6.0),
    ]
    closes = [(OPEN_TS, 4.0), (t1, 5.5), (t2, 6.0), (t3, 6.5)]
    curve = pnl_curve(points, closes)
    assert curve == [
        (t1, 0.0, -2.0),  # the update itself
        (t1, 0.0, 3.0),  # re-marked at the close of its bar: -2 + 10 * (5.5 - 5.0)
        (t2, 0.0, 8.0),
        (t3, 7.0, 0.0),  # flat: nothing moves any more
        (t3, 7.0, 0.0),
    ]
    assert pnl_curve([], closes) == []  # no update yet: no invented curve
    detail = dataclasses.replace(_detail(), pnl=tuple(points))
    frame = pnl_frame(detail, tuple(closes))
    assert [t.strftime("%H:%M") for t in frame.index][-1] == "09:33"
    assert list(frame["unrealised"])[:3] == [-2.0, 3.0, 8.0]


def _detail() -> ModelDetail:
    state = DashboardState()
    state.register_model("m1", "AAPL")
    return state.snapshot(OPEN_TS).models["m1"]


def test_child_env_passes_the_live_journal_root() -> None:
    env = child_env(DashboardLaunch(journals="/h/journals/run1"), {"PATH": "/bin"})
    assert env["ALGOSTACK_DASHBOARD_JOURNALS"] == "/h/journals/run1"
    assert "ALGOSTACK_DASHBOARD_JOURNALS" not in child_env(DashboardLaunch(), {})


def test_fleet_unrealised_is_re_marked_at_the_latest_close() -> None:
    state = DashboardState()
    pnl = PnlUpdate(model="m1", ts=1, symbol="AAPL", position=10, realised=1.0,
                    unrealised=-2.0, equity=0.0, mark=5.0)  # fmt: skip
    state.on_trader(pnl, OPEN_TS)
    assert state.snapshot(OPEN_TS).fleet[0].unrealised == -2.0  # no close yet: as sent
    state.on_market(Bar(symbol="AAPL", ts=OPEN_TS, open=1, high=1, low=1, close=5.5, volume=1), 1)
    row = state.snapshot(OPEN_TS).fleet[0]
    assert row.unrealised == 3.0 and row.realised == 1.0  # -2 + 10 * (5.5 - 5.0)
