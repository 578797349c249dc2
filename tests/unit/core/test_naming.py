from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from algostack.core import naming


def test_parse_artifact_key_named_cases() -> None:
    art = naming.parse_artifact_key("models/xgb/AAPL/model_7-outer_1_inner_2.onnx")
    assert art is not None
    assert (art.model_type, art.symbol, art.model_id, art.outer, art.inner, art.rest) == (
        "xgb",
        "AAPL",
        "model_7",
        1,
        2,
        ".onnx",
    )
    assert art.prefix == "models/xgb/AAPL/model_7"


@pytest.mark.parametrize(
    "key",
    [
        "models/xgb/AAPL/model_7.onnx",  # no fold suffix
        "models/xgb/model_7-outer_1_inner_2.onnx",  # missing symbol level
        "models/xgb/AAPL/model_7/live/2026-11-24/trades_2026-11-24.csv",  # live output
        "models/xgb/AAPL/model_7-outer_1_inner_2/x.onnx",  # '/' in rest
        "other/xgb/AAPL/model_7-outer_1_inner_2.onnx",
        "models/xgb/AAPL/model_7-outer_a_inner_2.onnx",
    ],
)
def test_parse_artifact_key_rejects_non_matching(key: str) -> None:
    assert naming.parse_artifact_key(key) is None


def test_group_models_groups_folds_and_reports_ignored_keys() -> None:
    keys = [
        "models/xgb/AAPL/model_7-outer_0_inner_0.onnx",
        "models/xgb/AAPL/model_7-outer_0_inner_1.onnx",
        "models/lin/MSFT/12-outer_0_inner_0.json",
        "models/lin/MSFT/nonumber-outer_0_inner_0.json",
        "models/readme.txt",
        "models/xgb/",
    ]
    models, ignored = naming.group_models(keys)
    assert [m.prefix for m in models] == ["models/lin/MSFT/12", "models/xgb/AAPL/model_7"]
    assert len(models[1].folds) == 2
    assert models[0].model_number == 12
    assert models[1].instance_name("qa") == "trading-server-qa-AAPL-xgb-7"
    assert "no trailing number" in ignored["models/lin/MSFT/nonumber-outer_0_inner_0.json"]
    assert "does not match" in ignored["models/readme.txt"]
    assert ignored["models/xgb/"] == "folder marker"


def test_model_number_rejects_ids_without_number() -> None:
    with pytest.raises(naming.ModelKeyError, match="no trailing number"):
        naming.model_number("alpha")


@given(
    mtype=st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
    symbol=st.from_regex(r"[A-Z]{1,5}", fullmatch=True),
    mid=st.from_regex(r"[a-z]{1,6}_[0-9]{1,4}", fullmatch=True),
    outer=st.integers(0, 99),
    inner=st.integers(0, 99),
)
def test_parse_artifact_key_property_round_trip(
    mtype: str, symbol: str, mid: str, outer: int, inner: int
) -> None:
    key = f"models/{mtype}/{symbol}/{mid}-outer_{outer}_inner_{inner}.onnx"
    art = naming.parse_artifact_key(key)
    assert art is not None
    assert (art.model_type, art.symbol, art.model_id, art.outer, art.inner) == (
        mtype,
        symbol,
        mid,
        outer,
        inner,
    )


def test_subjects_and_names() -> None:
    assert naming.ingest_instance_name("dev") == "alpaca-websocket-ingest-dev"
    assert naming.trader_name_pattern("prod") == "trading-server-prod-*"
    assert naming.lambda_names("qa")["trading"] == "TradingServerLambda_qa"
    assert naming.model_key("xgb", "BRK.B", "m.1") == "xgb-BRK_B-m_1"
    assert naming.trader_subject("dev", "xgb-AAPL-m_1", "fills") == (
        "algostack.dev.trader.xgb-AAPL-m_1.fills"
    )
    assert naming.kill_subject("dev") == "algostack.dev.control.kill"
