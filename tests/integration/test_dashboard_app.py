"""The dashboard's Streamlit script under AppTest, fed by a real nats-server and journal files.

Each test starts an embedded nats-server with the MARKET stream, seeds a bucket directory with
artifacts and today's journals, publishes history bars before the app starts (so they can
only arrive through JetStream), then keeps publishing trader events while it re-runs the
script until the panel under test shows what was sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from algostack.adapters.nats.bus import NatsBus
from algostack.adapters.nats.server import EmbeddedNats
from algostack.core import naming
from algostack.core.market import NS_PER_MIN, datetime_to_ts
from algostack.core.market_bus import BusMessage
from algostack.core.sessions import new_york_date
from algostack.services.dashboard.demo import DemoDesk, seed_bucket
from algostack.services.dashboard.launch import APP_PATH

HISTORY_BARS = 30
PASSWORD = "correct horse battery staple"


@dataclass
class Desk:
    server: EmbeddedNats
    bus: NatsBus
    demo: DemoDesk
    bucket: Path


@pytest.fixture
async def desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Desk]:
    now = datetime.now(UTC)
    seed_bucket(tmp_path, new_york_date(now), first_ts=datetime_to_ts(now) - 20 * NS_PER_MIN)
    server = EmbeddedNats().start()
    bus = await NatsBus.connect(
        server.url, user=server.user, password=server.password, connect_timeout_s=10
    )
    await bus.ensure_market_stream()
    demo = DemoDesk(bus, start_ts=datetime_to_ts(now) - HISTORY_BARS * NS_PER_MIN)
    await demo.publish_bars(HISTORY_BARS)
    for name, value in {
        "ALGOSTACK_ENV": "local",
        "ALGOSTACK_NATS_URL": server.url,
        "ALGOSTACK_NATS_USER": server.user,
        "ALGOSTACK_NATS_PASSWORD": server.password,
        "ALGOSTACK_DASHBOARD_BUCKET": str(tmp_path),
        "ALGOSTACK_DASHBOARD_JOURNAL_EVERY_S": "0.5",
        "ALGOSTACK_DASHBOARD_SILENT_AFTER_S": "30",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ALGOSTACK_DASHBOARD_PASSWORD", raising=False)
    try:
        yield Desk(server, bus, demo, tmp_path)
    finally:
        st.cache_resource.clear()  # stops the feed thread (on_release)
        await bus.close(2.0)
        server.stop()


def new_app() -> AppTest:
    return AppTest.from_file(str(APP_PATH), default_timeout=30)


async def run_until(
    at: AppTest, desk: Desk, done: Callable[[AppTest], bool], timeout_s: float = 20.0
) -> None:
    """Re-run the script, publishing trader events between runs, until ``done(at)``."""
    deadline = time.monotonic() + timeout_s
    while True:
        at.run()
        assert not at.exception, at.exception
        if done(at):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"dashboard never showed the expected data; markdown={_texts(at)}")
        await desk.demo.publish_trader_events(time.time_ns(), fill=True)
        await asyncio.sleep(0.2)


def _texts(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown] + [c.value for c in at.caption]


def charts(at: AppTest) -> int:
    return len(at.get("vega_lite_chart"))


def fleet_ready(at: AppTest) -> bool:
    if not at.table:
        return False
    frame = at.table[0].value
    return len(frame) == 4 and (frame["Heartbeat age"] != "never").sum() == 3 and charts(at) >= 3


async def test_dashboard_fleet_table_flags_halted_and_silent_models_red(desk: Desk) -> None:
    at = new_app()
    await run_until(at, desk, fleet_ready)
    frame = at.table[0].value.set_index("Model")
    assert frame.loc["onnx-AAPL-model_1", "Health"] == "OK"
    assert frame.loc["onnx-AAPL-model_1", "State"] == "ACTIVE"
    assert frame.loc["onnx-AAPL-model_1", "Latency p50"] == "0.18 ms"
    assert frame.loc["onnx-MSFT-model_3", "Health"] == "HALTED"
    # artifacts in the bucket but never a heartbeat: the trader is silent
    assert frame.loc["linear-SPY-model_9", "Health"] == "SILENT"
    assert frame.loc["linear-SPY-model_9", "Heartbeat age"] == "never"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Models"] == "4" and metrics["Alerts"] == "2" and metrics["Halted"] == "1"


async def test_dashboard_price_charts_hold_jetstream_history(desk: Desk) -> None:
    at = new_app()
    await run_until(at, desk, lambda a: any(f"{HISTORY_BARS} bars" in t for t in _texts(a)))
    symbols = [t for t in _texts(at) if " bars" in t]
    assert len(symbols) == 3  # AAPL, MSFT, SPY, each with the bars published before start
    assert all(f"· {HISTORY_BARS} bars" in t for t in symbols)
    assert charts(at) >= 3
    # bars published after start arrive live through the same consumer
    await desk.demo.publish_bars(2)
    await run_until(at, desk, lambda a: any(f"{HISTORY_BARS + 2} bars" in t for t in _texts(a)))


async def test_dashboard_model_panel_shows_position_trades_pnl_and_log(desk: Desk) -> None:
    at = new_app()
    await run_until(at, desk, fleet_ready)
    at.selectbox(key="model_select").set_value("onnx-AAPL-model_1")

    def has_live_fill(a: AppTest) -> bool:
        return bool(a.dataframe) and "live" in set(a.dataframe[0].value["Source"])

    await run_until(at, desk, has_live_fill)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Position"] == "10"
    assert metrics["Risk state"] == "ACTIVE"
    assert metrics["Realised PnL"] == "12.50"
    assert metrics["Decision latency p50"] == "0.18 ms"
    assert metrics["Decision latency p99"] == "0.42 ms"
    trades = at.dataframe[0].value
    assert list(trades["Source"]).count("journal") == 2  # both journal rows, not doubled
    assert charts(at) >= 4  # three prices + the PnL curve
    assert "journal line 2 of onnx-AAPL-model_1" in at.code[0].value


async def test_dashboard_halted_model_panel_shows_reason(desk: Desk) -> None:
    at = new_app()
    await run_until(at, desk, fleet_ready)
    at.selectbox(key="model_select").set_value("onnx-MSFT-model_3")
    await run_until(at, desk, lambda a: any("daily loss limit" in e.value for e in a.error))
    assert {m.label: m.value for m in at.metric}["Risk state"] == "HALTED"


async def test_dashboard_account_panel_shows_books_halted_row_and_gateway_health(
    desk: Desk,
) -> None:
    at = new_app()
    await run_until(at, desk, lambda a: any("No account yet" in i.value for i in a.info))
    deadline = time.monotonic() + 20
    while len(at.table) < 2:  # the fleet table, then the account table
        assert time.monotonic() < deadline, _texts(at)
        await desk.demo.publish_desk_status(time.time_ns())
        await asyncio.sleep(0.2)
        at.run()
        assert not at.exception, at.exception
    account = at.table[1].value.set_index("Symbol")
    assert account.loc["AAPL", "Account"] == 10
    assert account.loc["AAPL", "onnx-AAPL-model_1"] == 10
    assert account.loc["AAPL", "Reconciliation"] == "ok"
    assert account.loc["MSFT", "linear-MSFT-model_2"] == 20
    assert account.loc["MSFT", "Reconciliation"].startswith("HALTED: account holds 25")
    assert account.loc["TSLA", "Reconciliation"].startswith("FOREIGN: 3 shares")
    assert any(e.value.startswith("MSFT halted: account holds 25") for e in at.error)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Gateway"] == "OK · simulator"
    assert metrics["Day trades left"] == "not limited"
    assert metrics["Kill / loss"] == "off"
    assert metrics["Refused intents"] == "1"


async def test_dashboard_kill_switch_needs_confirmation_then_publishes(desk: Desk) -> None:
    got: list[bytes] = []

    async def on_kill(msg: BusMessage) -> None:
        got.append(msg.data)

    await desk.bus.subscribe(naming.kill_subject("local"), on_kill)
    at = new_app()
    await run_until(at, desk, fleet_ready)
    button = at.button[0]
    assert button.label == "Send kill switch" and button.disabled
    at.selectbox(key="kill_target").set_value("onnx-AAPL-model_1")
    at.text_input(key="kill_reason").input("runaway orders")
    at.run()
    assert at.button[0].disabled  # a reason alone is not enough
    at.checkbox(key="kill_confirm").check()
    at.run()
    assert not at.button[0].disabled
    at.button[0].click()
    at.run()
    assert [s.value for s in at.success] == [
        "Kill switch sent for onnx-AAPL-model_1: runaway orders"
    ]
    assert at.checkbox(key="kill_confirm").value is False  # re-arm needed for a second kill
    for _ in range(50):
        if got:
            break
        await asyncio.sleep(0.05)
    assert [orjson.loads(g) for g in got] == [
        {"model": "onnx-AAPL-model_1", "reason": "runaway orders", "by": "dashboard",
         "ts": orjson.loads(got[0])["ts"]}
    ]  # fmt: skip


async def test_dashboard_password_gate_blocks_until_correct_and_never_shows_it(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALGOSTACK_DASHBOARD_PASSWORD", PASSWORD)
    at = new_app()
    at.run()
    assert not at.table and not at.metric
    at.text_input(key="algostack_password_input").input("wrong")
    at.button[0].click()
    at.run()
    assert [e.value for e in at.error] == ["Wrong password."]
    assert not at.table
    at.text_input(key="algostack_password_input").input(PASSWORD)
    at.button[0].click()
    at.run()
    await run_until(at, desk, fleet_ready)
    rendered = " ".join(_texts(at) + [str(m.value) for m in at.metric])
    assert PASSWORD not in rendered and desk.server.password not in rendered


async def test_dashboard_nats_unreachable_shows_status_not_traceback(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALGOSTACK_NATS_URL", "nats://127.0.0.1:1")
    at = new_app()
    at.run()
    assert not at.exception
    caption = at.caption[0].value
    assert "NATS feed: connecting" in caption or "NATS feed: starting" in caption
    assert [i.value for i in at.info][-1].startswith("No market data yet")
