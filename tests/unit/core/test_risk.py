"""Risk engine: every transition, clipping, sessions, halts, flatten time, rate limit."""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from algostack.core.market import TradingStatus, datetime_to_ts
from algostack.core.orders import Fill, OrderIntent, Side
from algostack.core.risk import RiskAction, RiskEngine, RiskEvent, RiskLimits, RiskState
from algostack.core.sessions import NEW_YORK
from algostack.errors import ConfigError

MODEL = "onnx-AAPL-model_7"


def ny(y: int, mo: int, d: int, h: int, mi: int = 0) -> int:
    return datetime_to_ts(datetime(y, mo, d, h, mi, tzinfo=NEW_YORK))


NOON = ny(2024, 1, 3, 12)  # a regular Wednesday session


def intent(qty: int, side: Side = Side.BUY, symbol: str = "AAPL") -> OrderIntent:
    return OrderIntent(model=MODEL, symbol=symbol, side=side, qty=qty, bar_ts=NOON)


def engine(**kw: object) -> RiskEngine:
    args: dict[str, object] = {
        "max_position_shares": 100,
        "max_notional": 10_000.0,
        "max_orders_per_minute": 3,
        "daily_loss_limit": 500.0,
    }
    args.update(kw)
    limits = RiskLimits(**args)  # type: ignore[arg-type]
    return RiskEngine(limits, MODEL)


def test_risk_within_limits_approves() -> None:
    d = engine().check(intent(10), position=0, price=50.0, now_ns=NOON)
    assert d.action is RiskAction.APPROVE and d.qty == 10 and d.approved


def test_risk_max_position_shares_clips() -> None:
    d = engine().check(intent(80), position=40, price=50.0, now_ns=NOON)
    assert d.action is RiskAction.CLIP and d.qty == 60 and "max position 100" in d.reason


def test_risk_max_notional_clips_before_share_cap() -> None:
    d = engine().check(intent(100), position=0, price=200.0, now_ns=NOON)
    assert d.action is RiskAction.CLIP and d.qty == 50 and "max notional" in d.reason


def test_risk_already_at_cap_rejects() -> None:
    d = engine().check(intent(1), position=100, price=50.0, now_ns=NOON)
    assert d.action is RiskAction.REJECT and not d.approved and "already at the cap" in d.reason


def test_risk_flip_through_zero_clipped_to_opposite_cap() -> None:
    d = engine().check(intent(250, Side.SELL), position=60, price=50.0, now_ns=NOON)
    assert d.qty == 160  # to -100


def test_risk_target_qty_clipped_by_caps_and_direction() -> None:
    r = engine()
    assert r.target_qty(1, 50.0, NOON) == 100
    assert r.target_qty(-1, 200.0, NOON) == -50
    assert r.target_qty(0, 50.0, NOON) == 0
    with pytest.raises(ValueError, match="direction"):
        r.target_qty(2, 50.0, NOON)
    with pytest.raises(ValueError, match="positive"):
        r.target_qty(1, 0.0, NOON)


def test_risk_bad_qty_and_wrong_model_rejected() -> None:
    r = engine()
    assert "positive" in r.check(intent(0), position=0, price=50.0, now_ns=NOON).reason
    other = OrderIntent(model="x", symbol="AAPL", side=Side.BUY, qty=1, bar_ts=NOON)
    assert "sent to risk of" in r.check(other, position=0, price=50.0, now_ns=NOON).reason


def test_risk_loss_moves_active_to_reducing_to_halted_with_reasons() -> None:
    seen: list[RiskEvent] = []
    r = RiskEngine(RiskLimits(daily_loss_limit=500.0, reduce_fraction=0.8), MODEL,
                   on_event=seen.append)  # fmt: skip
    assert r.on_mark(-399.0, NOON) is RiskState.ACTIVE
    assert r.on_mark(-400.0, NOON) is RiskState.REDUCING
    assert r.on_mark(-100.0, NOON) is RiskState.REDUCING  # sticky for the day
    f = Fill(client_order_id="c", broker_order_id="b", model=MODEL, symbol="AAPL",
             side=Side.SELL, qty=1, price=1.0, ts=NOON + 1)  # fmt: skip
    assert r.on_fill(f, -500.0) is RiskState.HALTED
    assert [(e.from_state, e.to_state) for e in seen] == [
        (RiskState.ACTIVE, RiskState.REDUCING),
        (RiskState.REDUCING, RiskState.HALTED),
    ]
    assert "80%" in seen[0].reason and "reached limit 500.00" in seen[1].reason
    assert seen[1].ts == NOON + 1 and r.events == seen


def test_risk_reducing_allows_only_reductions_clipped_to_flat() -> None:
    r = engine()
    r.on_mark(-450.0, NOON)
    assert r.state is RiskState.REDUCING
    grow = r.check(intent(10), position=50, price=50.0, now_ns=NOON)
    assert grow.action is RiskAction.REJECT and "only orders that reduce" in grow.reason
    flip = r.check(intent(80, Side.SELL), position=50, price=50.0, now_ns=NOON)
    assert flip.action is RiskAction.CLIP and flip.qty == 50 and "REDUCING" in flip.reason
    assert r.target_qty(1, 50.0, NOON, position=30) == 30
    assert r.target_qty(-1, 50.0, NOON, position=30) == 0
    assert r.target_qty(1, 50.0, NOON) == 0


def test_risk_halted_allows_only_flattening_and_must_flatten() -> None:
    r = engine()
    r.on_mark(-600.0, NOON)
    assert r.state is RiskState.HALTED and r.must_flatten(NOON)
    assert r.target_qty(1, 50.0, NOON) == 0
    assert not r.check(intent(10), position=0, price=50.0, now_ns=NOON).approved
    d = r.check(intent(10), position=-30, price=50.0, now_ns=NOON)
    assert d.approved and d.qty == 10 and "HALTED" in d.reason


def test_risk_kill_switch_halts_and_survives_new_day() -> None:
    r = engine()
    r.kill("operator", NOON)
    assert r.state is RiskState.HALTED and r.killed
    assert r.events[-1].kind == "kill" and "operator" in r.events[-1].reason
    r.reset_day(ny(2024, 1, 4, 9))
    assert r.state is RiskState.HALTED


def test_risk_loss_halt_lifted_by_new_day() -> None:
    r = engine()
    r.on_mark(-600.0, NOON)
    r.reset_day(ny(2024, 1, 4, 9))
    assert r.state is RiskState.ACTIVE and r.events[-1].reason == "new trading day"


def test_risk_status_halt_blocks_symbol_until_resume() -> None:
    r = engine()
    r.on_status(TradingStatus(symbol="AAPL", ts=NOON, status_code="H", status_message="halt"))
    d = r.check(intent(10), position=0, price=50.0, now_ns=NOON)
    assert not d.approved and "AAPL trading halted" in d.reason
    assert r.check(intent(10, symbol="MSFT"), position=0, price=50.0, now_ns=NOON).approved
    r.on_status(TradingStatus(symbol="AAPL", ts=NOON + 5, status_code="T", status_message="resume"))
    assert r.check(intent(10), position=0, price=50.0, now_ns=NOON).approved
    assert [e.kind for e in r.events] == ["halt", "resume"]
    assert r.state is RiskState.ACTIVE


def test_risk_flatten_time_regular_close_is_1555_new_york() -> None:
    r = engine()
    assert not r.must_flatten(ny(2024, 1, 3, 15, 54))
    assert r.must_flatten(ny(2024, 1, 3, 15, 55))
    assert r.target_qty(1, 50.0, ny(2024, 1, 3, 15, 56)) == 0
    grow = r.check(intent(10), position=0, price=50.0, now_ns=ny(2024, 1, 3, 15, 56))
    assert not grow.approved and "flatten time" in grow.reason
    shrink = r.check(intent(10, Side.SELL), position=5, price=50.0, now_ns=ny(2024, 1, 3, 15, 56))
    assert shrink.qty == 5 and shrink.action is RiskAction.CLIP


def test_risk_flatten_time_early_close_relative_to_1300() -> None:
    r = engine()  # 2024-11-29, day after Thanksgiving: closes 13:00
    assert not r.must_flatten(ny(2024, 11, 29, 12, 54))
    assert r.must_flatten(ny(2024, 11, 29, 12, 55))
    assert not r.in_session(ny(2024, 11, 29, 13, 30))


def test_risk_outside_session_rejected_weekend_holiday_after_close() -> None:
    r = engine()
    for when in (ny(2024, 1, 3, 9, 29), ny(2024, 1, 3, 16, 0), ny(2024, 1, 6, 12),
                 ny(2024, 7, 4, 12)):  # fmt: skip
        d = r.check(intent(10), position=0, price=50.0, now_ns=when)
        assert not d.approved and "outside the regular session" in d.reason
        assert r.target_qty(1, 50.0, when) == 0
    assert r.check(intent(10), position=0, price=50.0, now_ns=ny(2024, 1, 3, 9, 30)).approved


def test_risk_order_rate_limit_rejects_then_refills() -> None:
    r = engine(max_orders_per_minute=3)
    results = [r.check(intent(1), position=0, price=50.0, now_ns=NOON).approved for _ in range(4)]
    assert results == [True, True, True, False]
    d = r.check(intent(1), position=0, price=50.0, now_ns=NOON)
    assert "order rate limit" in d.reason
    assert r.check(intent(1), position=0, price=50.0, now_ns=NOON + 20 * 10**9).approved
    # A pure reduction is never blocked by the rate limit.
    assert r.check(intent(1, Side.SELL), position=5, price=50.0, now_ns=NOON + 20 * 10**9).approved


def test_risk_invalid_limits_named_in_config_error() -> None:
    with pytest.raises(ConfigError, match="daily_loss_limit=0") as exc:
        RiskLimits(daily_loss_limit=0, reduce_fraction=1.5)
    assert "reduce_fraction=1.5" in str(exc.value)
    # NaN lies in no range (a `--max-notional nan` or a NaN in a file is refused, not a cap
    # that every comparison passes); an infinite notional cap is allowed: no cap.
    with pytest.raises(ConfigError, match=r"max_notional=nan \(must be >= 0\)"):
        RiskLimits(max_notional=math.nan)
    with pytest.raises(ConfigError, match=r"flatten_before_close_min=390 \(must be 0\.\.389\)"):
        RiskLimits(flatten_before_close_min=390)
    assert RiskLimits(max_notional=math.inf).max_notional == math.inf


# (time, phase): outside the session, trading, or bound to be flat (flatten time reached)
TIMES = [
    (NOON, "trade"),
    (ny(2024, 1, 3, 9, 29), "out"),  # before the open
    (ny(2024, 1, 3, 9, 30), "trade"),  # the open
    (ny(2024, 1, 3, 15, 54), "trade"),  # just before the flatten time
    (ny(2024, 1, 3, 15, 55), "flat"),  # flatten time
    (ny(2024, 1, 3, 15, 59), "flat"),
    (ny(2024, 1, 3, 16, 0), "out"),  # the close
    (ny(2024, 1, 1, 12), "out"),  # New Year's Day
    (ny(2024, 1, 6, 12), "out"),  # a Saturday
    (ny(2024, 11, 29, 12, 54), "trade"),  # early close (13:00)
    (ny(2024, 11, 29, 12, 57), "flat"),  # flatten from 12:55
]


@pytest.mark.parametrize("state", ["active", "reducing", "halted", "killed"])
@pytest.mark.parametrize(("now", "phase"), TIMES)
def test_risk_sizing_follows_session_state_and_caps(state: str, now: int, phase: str) -> None:
    eng = engine(max_notional=10_000.0)  # at 187.5 the notional cap (53) binds, not the 100
    if state == "reducing":
        eng.on_mark(-450.0, NOON)
    elif state == "halted":
        eng.on_mark(-600.0, NOON)
    elif state == "killed":
        eng.kill("test", NOON)
    bound_flat = phase == "flat" or (phase == "trade" and state in ("halted", "killed"))
    assert eng.in_session(now) is (phase != "out")
    assert eng.must_flatten(now) is bound_flat
    for direction in (-1, 0, 1):
        for position in (-30, 0, 30, 250):
            if phase == "out" or bound_flat or direction == 0:
                want = 0
            elif state == "reducing":  # only shrinks: never grows, never flips
                want = 0 if position * direction <= 0 else direction * min(53, abs(position))
            else:
                want = direction * 53
            got = eng.sizing(direction, 187.5, now, position=position)
            assert got == (want, bound_flat), (state, now, direction, position)
            assert eng.target_qty(direction, 187.5, now, position=position) == want


def test_risk_sizing_bad_direction_or_price_refused() -> None:
    eng = engine()
    with pytest.raises(ValueError, match="direction"):
        eng.sizing(2, 100.0, NOON, position=0)
    for price in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="price"):
            eng.sizing(1, price, NOON, position=0)
        # a flat signal, or a time with nothing to size, needs no price
        assert eng.sizing(0, price, NOON, position=0) == (0, False)
        assert eng.sizing(1, price, ny(2024, 1, 3, 15, 55), position=0) == (0, True)
