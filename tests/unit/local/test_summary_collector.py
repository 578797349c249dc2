"""The supervisor's NATS collector: bars, trader events, catch-up and latency fallback."""

from __future__ import annotations

import msgspec

from algostack.core import codec
from algostack.core.events import Decision, Heartbeat, PnlUpdate, encode_event
from algostack.core.market import NS_PER_MIN, Bar, Trade
from algostack.core.orders import Fill, Side
from algostack.local.collector import Collector

T0 = 1_710_509_400 * 1_000_000_000


def _bar(i: int, sym: str = "AAPL") -> Bar:
    return Bar(symbol=sym, ts=T0 + i * NS_PER_MIN, open=10.0, high=11.0, low=9.0, close=10.5,
               volume=100.0)  # fmt: skip


def test_collector_bars_dedup_and_catch_up() -> None:
    wall = iter(range(1_000, 10_000_000, 1_000))
    col = Collector("local", wall_ns=lambda: next(wall))
    for i in (0, 1, 1, 2):  # bar 1 re-sent by a restarted ingest
        col.on_market(codec.encode(_bar(i)))
    col.on_market(codec.encode(Trade(symbol="AAPL", ts=T0, price=1.0, size=1.0)))
    col.on_market(b"\xc1garbage")
    assert col.bars == 3 and len(col.bar_log) == 3 and col.undecodable == 1
    assert col.last_bar_ts == {"AAPL": T0 + 2 * NS_PER_MIN}
    assert not col.caught_up("m", "AAPL")
    hb = Heartbeat(model="m", ts=1, symbol="AAPL", state="ACTIVE", position=5,
                   last_bar_ts=T0 + 2 * NS_PER_MIN, bars=3, decisions=3, orders=1,
                   latency_p50_us=0, latency_p99_us=0, warmed_up=True)  # fmt: skip
    col.on_trader("algostack.local.trader.m.heartbeat", encode_event(hb))
    assert col.caught_up("m", "AAPL") and col.caught_up("m", "MSFT")  # no MSFT bars at all
    assert col.view("m").heartbeat_at > 0 and col.view("m").position == 5


def test_collector_decision_latency_reported_or_measured() -> None:
    col = Collector("local", wall_ns=lambda: 5_000_000)
    col.on_market(codec.encode(_bar(0)))
    d = dict(model="m", symbol="AAPL", bar_ts=T0, score=0.1, direction=1, target_qty=1,
             order_qty=1)  # fmt: skip
    col.on_trader("algostack.local.trader.m.decision",
                  encode_event(Decision(ts=9, latency_us=42.0, **d)))  # fmt: skip
    # no receive time on the bar: bar heard at 5 ms -> decided at 7.5 ms = 2500 µs
    col.on_trader("algostack.local.trader.m.decision",
                  encode_event(Decision(ts=7_500_000, latency_us=0.0, **d)))  # fmt: skip
    v = col.view("m")
    # the same bar decided twice (a trader restarted before its commit) is one decision
    assert v.latencies_us == [42.0, 2500.0] and v.decided == {T0}


def test_collector_fills_pnl_and_other_env_ignored() -> None:
    col = Collector("local")
    fill = Fill(client_order_id="c", broker_order_id="b", model="m", symbol="AAPL",
                side=Side.BUY, qty=3, price=10.0, ts=T0)  # fmt: skip
    col.on_trader("algostack.local.trader.m.fill", encode_event(fill))
    pnl = PnlUpdate(model="m", ts=1, symbol="AAPL", position=3, realised=2.0, unrealised=1.5,
                    equity=3.5, mark=10.5)  # fmt: skip
    col.on_trader("algostack.local.trader.m.pnl", encode_event(pnl))
    col.on_trader("algostack.prod.trader.m.pnl", encode_event(pnl))
    col.on_trader("algostack.local.trader.m.decision", b"not msgpack \xc1")
    assert col.view("m").fills == [fill]
    assert col.totals() == (0, 3.5)
    assert col.undecodable == 1 and list(col.models) == ["m"]


def test_collector_settles_on_each_reported_fill_once_whatever_a_gateway_sends_again() -> None:
    from algostack.adapters.nats.order_channel import encode
    from algostack.core.orders import OrderReport

    col = Collector("local")
    fills = [
        Fill(
            client_order_id=f"c{i}",
            broker_order_id="b",
            model="m",
            symbol="AAPL",
            side=Side.BUY,
            qty=3,
            price=10.0,
            ts=T0 + i,
        )
        for i in range(2)
    ]

    def report(i: int) -> bytes:
        rid = f"batch{i}:exec:0"
        return encode(OrderReport(kind="fill", report_id=rid, client_order_id=f"c{i}",
                                  model="m", fill=fills[i]))  # fmt: skip

    col.on_report(report(0))
    assert not col.settled("m")  # reported, not booked yet
    col.on_trader("algostack.local.trader.m.fill", encode_event(fills[0]))
    assert col.settled("m")
    # The gateway is restarted and its last save predates that fill: it reports it again
    # (same report id; JetStream drops the copy, a plain subscription hears it).
    col.on_report(report(0))
    assert col.settled("m")
    col.on_report(report(1))
    assert not col.settled("m")
    col.on_trader("algostack.local.trader.m.fill", encode_event(fills[1]))
    assert col.settled("m")


def test_collector_keeps_the_gateways_last_status_for_the_summary() -> None:
    from algostack.core.events import DeskStatus, encode_event
    from algostack.local.collector import Collector

    col = Collector("local")
    assert col.desk_line() == ""
    col.on_desk(b"\x00garbage")
    status = DeskStatus(
        ts=1, venue="sim", venue_ready=True, account={"AAPL": 5}, books={},
        reconciliation={"AAPL": "halted: account holds 5, the model books sum to 0 ({})",
                        "MSFT": "ok"},
        halted={}, killed=False, loss_breached=False, desk_pnl=0.0, day_trades_left=None,
        working=0, counters={"intents": 7, "batches": 6, "venue_orders": 5,
                             "crossed_shares": 40, "refused": 1},
    )  # fmt: skip
    col.on_desk(encode_event(status))
    line = col.desk_line()
    assert col.undecodable == 1
    assert line.startswith("gateway: 7 intents in 6 batches, 5 orders to the sim account")
    assert "40 shares crossed" in line and "1 refused" in line
    assert "AAPL halted: account holds 5" in line and "MSFT" not in line
    assert "still working" not in line and "never placed" not in line
    col.on_desk(encode_event(msgspec.structs.replace(status, working=2, unplaced=98)))
    assert "at its last report 2 order(s) still working and 98 intent(s) never placed; " in (
        col.desk_line()
    )
