from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import orjson
import pytest

from algostack.adapters.artifacts import load_model
from algostack.adapters.storage import LocalDirStore
from algostack.core.features import FeatureEngine
from algostack.core.market import Bar
from algostack.core.naming import ModelSpec
from algostack.core.signals import target_direction
from algostack.local.demo_models import ensure_demo_models, past_sessions, synthetic_day_bars

TRADING_DAY = date(2026, 11, 25)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ModelSpec]]:
    root = tmp_path_factory.mktemp("demo")
    return root, ensure_demo_models(root, before=TRADING_DAY)


def test_demo_models_cover_two_symbols_and_both_formats(demo: tuple[Path, list[ModelSpec]]) -> None:
    root, specs = demo
    assert len(specs) >= 3
    assert {s.symbol for s in specs} == {"AAPL", "MSFT"}
    exts = {a.rest for s in specs for a in s.folds}
    assert exts == {".onnx", ".json"}
    assert (root / "models/logreg/AAPL/model_1-outer_1_inner_1.onnx").is_file()


def test_demo_models_are_idempotent(demo: tuple[Path, list[ModelSpec]]) -> None:
    root, specs = demo
    files = sorted(root.rglob("*.*"))
    mtimes = [f.stat().st_mtime_ns for f in files]
    again = ensure_demo_models(root, before=TRADING_DAY)
    assert [s.prefix for s in again] == [s.prefix for s in specs]
    assert [f.stat().st_mtime_ns for f in sorted(root.rglob("*.*"))] == mtimes


def test_demo_models_train_only_on_days_before_the_trading_day(
    demo: tuple[Path, list[ModelSpec]],
) -> None:
    root, _ = demo
    meta = orjson.loads((root / "models/linear/MSFT/model_3-outer_1_inner_1.json").read_bytes())[
        "meta"
    ]
    used = [*meta["train_days"], meta["val_day"], meta["test_day"]]
    assert all(date.fromisoformat(d) < TRADING_DAY for d in used)
    assert max(meta["train_days"]) < meta["val_day"] < meta["test_day"]  # walk-forward
    assert past_sessions(TRADING_DAY, 3) == [
        date(2026, 11, 20),
        date(2026, 11, 23),
        date(2026, 11, 24),
    ]


def test_demo_models_trade_a_day_through_engine_score_and_signal(
    demo: tuple[Path, list[ModelSpec]],
) -> None:
    root, specs = demo
    store = LocalDirStore(root)
    bars = synthetic_day_bars("AAPL", TRADING_DAY, seed=99)
    for spec in specs:
        model = load_model(store, spec)
        engine = FeatureEngine(model.features)
        position, decisions, changes = 0, 0, 0
        for r in bars.itertuples(index=False):
            bar = Bar(
                symbol=spec.symbol,
                ts=int(r.ts),
                open=r.open,
                high=r.high,
                low=r.low,
                close=r.close,
                volume=r.volume,
            )
            x = engine.update(bar)
            if x is None:
                continue
            score = model.score(x)
            assert np.isfinite(score)
            new = target_direction(score, position, model.thresholds)
            if spec.model_type == "sma":  # the exact cross rule
                assert new == (1 if x[0] > 0 else 0)
            changes += new != position
            position = new
            decisions += 1
        assert decisions == len(bars) - engine.warmup_bars + 1
        assert changes > 0, f"{spec.prefix} never traded on a synthetic day"
