"""The cause rules of ``local.drift.compare`` (module docstring), one scenario each."""

from __future__ import annotations

import json

from algostack.core.market import Bar
from algostack.core.naming import ModelSpec
from algostack.core.orders import Side
from algostack.core.simfill import FillRules
from algostack.local.drift import (
    FILL_TIME,
    PARTIAL,
    RESTART,
    REVISED,
    RISK,
    UNEXPLAINED,
    ArchivedDay,
    LiveLog,
    Trade,
    compare,
    read_live_log,
)

T0 = 1_710_512_160_000_000_000
MIN = 60_000_000_000
SPEC = ModelSpec("sma", "AAPL", "model_4", 4)
RULES = FillRules(1.0)


def _bar(ts: int, open_: float) -> Bar:
    return Bar(symbol="AAPL", ts=ts, open=open_, high=open_, low=open_, close=open_, volume=100.0)


def _day(*bars: Bar, revised: tuple[int, ...] = ()) -> ArchivedDay:
    day = ArchivedDay()
    for b in bars:
        day.ordered.append(b)
        day.bars[(b.symbol, b.ts)] = b
        day.last_close[b.symbol] = b.close
    day.revised = {("AAPL", ts) for ts in revised}
    return day


def _buy(
    cid: str, qty: int = 10, price: float = 100.01, ts: int = T0, reason: str = "signal"
) -> Trade:
    return Trade(cid, "buy", qty, price, ts, qty, 0.0, reason)


def test_compare_same_fills_match_with_equal_pnl() -> None:
    drift = compare(SPEC, [_buy("a")], [_buy("a")], _day(_bar(T0, 100.0)), LiveLog(), RULES)
    assert (drift.matched, drift.differences, drift.pnl_diff) == (1, [], 0)


def test_compare_qty_differs_partial_or_missed_fill() -> None:
    drift = compare(SPEC, [_buy("a", qty=4)], [_buy("a")], _day(), LiveLog(), RULES)
    assert [(d.kind, d.cause) for d in drift.differences] == [("qty", PARTIAL)]


def test_compare_revised_bar_at_fill_minute_late_or_revised_bar() -> None:
    day = _day(_bar(T0, 100.0), revised=(T0 - MIN,))
    drift = compare(SPEC, [_buy("a", price=100.5)], [_buy("a")], day, LiveLog(), RULES)
    assert [(d.kind, d.cause) for d in drift.differences] == [("price", REVISED)]


def test_compare_time_differs_replay_on_the_bar_fill_time_cause() -> None:
    live = _buy("a", ts=T0 + MIN)
    rep = _buy("a", price=RULES.price(100.0, Side.BUY))
    drift = compare(SPEC, [live], [rep], _day(_bar(T0, 100.0)), LiveLog(), RULES)
    (d,) = drift.differences
    assert (d.kind, d.cause, d.time_diff_s) == ("time", FILL_TIME, 60.0)


def test_compare_replay_not_on_the_bar_unexplained() -> None:
    drift = compare(SPEC, [_buy("a", price=99.0)], [_buy("a", price=98.0)],
                    _day(_bar(T0, 100.0)), LiveLog(), RULES)  # fmt: skip
    assert [d.cause for d in drift.differences] == [UNEXPLAINED]


def test_compare_only_replay_order_sent_live_missed_fill() -> None:
    log = LiveLog(orders=frozenset({"a"}))
    drift = compare(SPEC, [], [_buy("a")], _day(), log, RULES)
    assert [(d.kind, d.cause) for d in drift.differences] == [("only replay", PARTIAL)]


def test_compare_only_live_adopted_restart_and_risk_from_the_log() -> None:
    adopted = compare(SPEC, [_buy("a", reason="adopted")], [], _day(), LiveLog(), RULES)
    assert [(d.kind, d.cause) for d in adopted.differences] == [("only live", RESTART)]
    risky = compare(SPEC, [], [_buy("b")], _day(), LiveLog(risk_events=1), RULES)
    assert [d.cause for d in risky.differences] == [RISK]


def test_read_live_log_finds_resume_risk_events_and_orders() -> None:
    msgs = [
        "model trading: sma-AAPL-model_4 from stream seq 9 (warm-up 3 bars, position 0, resumed)",
        "risk kill: ACTIVE -> HALTED: daily loss",
        "order cid-1 buy 10 AAPL sent (gw-1)",
        "order cid-2 sell 10 AAPL refused: no buying power",
    ]
    data = "\n".join(json.dumps({"msg": m}) for m in msgs) + "\nnot json\n"
    log = read_live_log(data.encode())
    assert log == LiveLog(True, 1, frozenset({"cid-1", "cid-2"}))
