"""``core.trading_config``: ``<prefix>/trading.json`` parsed into sizing and limits."""

from __future__ import annotations

import pytest

from algostack.core.orders import OrderIntent, Side
from algostack.core.risk import RiskEngine, RiskLimits, Sizing
from algostack.core.trading_config import (
    DEFAULT_TRADING,
    TradingConfigError,
    parse_trading_config,
    trading_config_key,
)
from algostack.errors import ConfigError, exit_code

KEY = "models/sma/AAPL/model_4/trading.json"
NOW = 1_710_513_000 * 1_000_000_000  # 2024-03-15 10:30 New York: in session


def test_trading_config_key_sits_in_a_folder_under_the_prefix() -> None:
    assert trading_config_key("models/sma/AAPL/model_4") == KEY


def test_parse_full_config_sets_sizing_limits_and_carried_fields() -> None:
    cfg = parse_trading_config(
        KEY,
        b'{"fixed_shares": 7, "max_position_shares": 50, "max_notional": 9000,'
        b' "max_orders_per_minute": 4, "daily_loss_limit": 300.5, "reduce_fraction": 0.5,'
        b' "flatten_before_close_min": 10, "flatten_before_close": true,'
        b' "features": "continuous"}',
    )
    assert cfg.key == KEY
    assert cfg.sizing == Sizing(shares=7, field="fixed_shares", source=KEY)
    assert cfg.limits == RiskLimits(50, 9000.0, 4, 300.5, 0.5, 10)
    assert cfg.flatten_before_close is True and cfg.features == "continuous"
    off = parse_trading_config(KEY, b'{"flatten_before_close": false}')
    assert off.flatten_before_close is False and off.limits == RiskLimits()
    assert cfg.sizing_text == "7 shares"
    assert cfg.to_dict()["fixed_shares"] == 7 and cfg.to_dict()["max_position_shares"] == 50


def test_parse_empty_object_is_exactly_the_defaults() -> None:
    cfg = parse_trading_config(KEY, b"{}")
    assert cfg.limits == RiskLimits() == DEFAULT_TRADING.limits
    assert cfg.sizing.capped and cfg.sizing_text == "up to the caps"
    assert cfg.flatten_before_close is None and cfg.features == "session"


def test_parse_notional_and_allocation_sizings() -> None:
    notional = parse_trading_config(KEY, b'{"fixed_notional": 5000}')
    assert notional.sizing.qty(100.0) == 50 and notional.sizing_text == "$5,000"
    alloc = parse_trading_config(KEY, b'{"allocation": 20000, "allocation_fraction": 0.25}')
    assert alloc.sizing.qty(99.0) == 50 and alloc.sizing_text == "0.25 of $20,000"
    assert alloc.to_dict()["allocation"] == 20000.0


@pytest.mark.parametrize(
    ("body", "field", "why"),
    [
        (b'{"fixed_shars": 7}', "fixed_shars", "does not exist"),
        (b'{"fixed_shares": "7"}', "fixed_shares", "got str"),
        (b'{"fixed_shares": 7.5}', "fixed_shares", "got float"),
        (b'{"max_notional": true}', "max_notional", "got bool"),
        (b'{"features": "daily"}', "features", "daily"),
        (b'{"flatten_before_close": "yes"}', "flatten_before_close", "got str"),
        (b'{"max_notional": -5}', "max_notional", "must be >= 0"),
        (b'{"daily_loss_limit": 0}', "daily_loss_limit", "must be > 0"),
        (b'{"reduce_fraction": 1.5}', "reduce_fraction", "(0, 1]"),
        (b'{"fixed_shares": 0}', "fixed_shares", "must be >= 1"),
        (b'{"max_position_shares": 0}', "max_position_shares", "0 lets the model hold nothing"),
        (b'{"max_notional": 0}', "max_notional", "0 lets the model hold nothing"),
        (b'{"max_orders_per_minute": 0}', "max_orders_per_minute", "must be >= 1"),
        (
            b'{"flatten_before_close": false, "flatten_before_close_min": 30}',
            "flatten_before_close_min",
            "set while flatten_before_close is false",
        ),
        (b'{"fixed_shares": -3}', "fixed_shares", "must be >= 1"),
        (b'{"fixed_shares": 200}', "fixed_shares", "above max_position_shares 100"),
        (b'{"fixed_notional": 30000}', "fixed_notional", "above max_notional 25000"),
        (b'{"fixed_notional": -1}', "fixed_notional", "must be > 0"),
        (b'{"fixed_shares": 5, "fixed_notional": 500}', "fixed_notional", "give one sizing"),
        (b'{"allocation": 1000}', "allocation", "needs allocation_fraction"),
        (b'{"allocation_fraction": 0.5}', "allocation_fraction", "needs allocation"),
        (b'{"allocation": 1000, "allocation_fraction": 0}', "allocation_fraction", "(0, 1]"),
        (b'{"allocation": -1000, "allocation_fraction": 0.5}', "allocation", "must be > 0"),
        (
            b'{"allocation": 100000, "allocation_fraction": 0.5}',
            "allocation_fraction",
            "above max_notional",
        ),
    ],
)
def test_parse_bad_config_is_one_line_naming_key_and_field(
    body: bytes, field: str, why: str
) -> None:
    with pytest.raises(TradingConfigError) as info:
        parse_trading_config(KEY, body)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{KEY}: ")
    assert field in msg and why in msg, msg
    assert isinstance(info.value, ConfigError) and exit_code(info.value) == 2


@pytest.mark.parametrize("body", [b"{", b"[1, 2]", b""])
def test_parse_not_an_object_is_one_line_naming_key(body: bytes) -> None:
    with pytest.raises(TradingConfigError, match=f"^{KEY}: ") as info:
        parse_trading_config(KEY, body)
    assert "\n" not in str(info.value)


def _engine(body: bytes) -> RiskEngine:
    cfg = parse_trading_config(KEY, body)
    return RiskEngine(cfg.limits, "sma-AAPL-model_4", sizing=cfg.sizing)


def test_sizing_fixed_shares_targets_that_many_within_the_caps() -> None:
    risk = _engine(b'{"fixed_shares": 7}')
    assert risk.sizing(1, 100.0, NOW, position=0) == (7, False)
    assert risk.sizing(-1, 100.0, NOW, position=0) == (-7, False)
    assert risk.sizing(1, 5000.0, NOW, position=0) == (5, False)  # max_notional 25,000 clips
    assert risk.sizing(0, 100.0, NOW, position=7) == (0, False)


def test_sizing_fixed_notional_rounds_down_and_zero_shares_is_one_line() -> None:
    risk = _engine(b'{"fixed_notional": 50}')
    assert risk.sizing(1, 24.0, NOW, position=0) == (2, False)
    with pytest.raises(ConfigError) as info:
        risk.sizing(1, 120.0, NOW, position=0)
    msg = str(info.value)
    assert msg.startswith(f"{KEY}: field 'fixed_notional'") and "0 shares" in msg
    assert "120" in msg and "\n" not in msg
    # holding a position when the price outgrows the sizing: the target is flat, no error
    assert risk.sizing(1, 120.0, NOW, position=2) == (0, False)


def test_no_sizing_is_todays_caps_exactly() -> None:
    plain = RiskEngine(RiskLimits(), "m")
    configured = _engine(b"{}")
    for price in (1.0, 99.5, 250.0, 3000.0):
        assert configured.sizing(1, price, NOW, position=0) == plain.sizing(
            1, price, NOW, position=0
        )
    assert configured.sizing_rule is None


def test_check_still_clips_to_the_configured_caps() -> None:
    risk = _engine(b'{"fixed_shares": 7, "max_position_shares": 10}')
    intent = OrderIntent(
        model="sma-AAPL-model_4", symbol="AAPL", side=Side.BUY, qty=12, bar_ts=NOW, decided_ns=NOW
    )
    decision = risk.check(intent, position=0, price=100.0, now_ns=NOW)
    assert decision.qty == 10 and "max position 10" in decision.reason
