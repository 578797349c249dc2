"""Replay as a backtest through the trader's ``ModelRunner`` and a ``SimBroker``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from algostack.adapters.artifacts.native_json import dump_native
from algostack.adapters.offline.bars_file import write_bars
from algostack.core.market import NS_PER_MIN, Bar
from algostack.errors import ConfigError, DataError
from algostack.local.replay import (
    load_bars,
    load_store_models,
    replay_bars,
    resolve_store_root,
)
from algostack.local.summary import read_journal_fills

T0 = 1_710_509_400 * 1_000_000_000  # 2024-03-15 09:30 New York
KEY = "models/sma/AAPL/model_4-outer_0_inner_0.json"


def _store(root: Path) -> Path:
    data = dump_native(kind="linear", features=["sma_ratio_10_30"], coef=[1.0], intercept=0.0,
                       thresholds={"long_entry": 0.0, "long_exit": 0.0})  # fmt: skip
    (root / KEY).parent.mkdir(parents=True)
    (root / KEY).write_bytes(data)
    return root


def _bars(n: int = 120, sym: str = "AAPL") -> list[Bar]:
    out = []
    for i in range(n):
        # a slow wave: the SMA cross goes long and flat a few times
        px = 100.0 + 5.0 * math.sin(i / 12.0)
        out.append(Bar(symbol=sym, ts=T0 + i * NS_PER_MIN, open=px, high=px + 0.2,
                       low=px - 0.2, close=px + 0.05, volume=1000.0))  # fmt: skip
    return out


async def test_replay_fills_at_next_open_with_slippage(tmp_path: Path) -> None:
    models, ignored = load_store_models(_store(tmp_path))
    bars = _bars()
    out = await replay_bars(bars, models, slippage_bps=2.0)
    assert ignored == [] and out.bars == len(bars) == out.bar_events
    (broker,) = out.brokers.values()
    assert broker.fills, "the wave should trigger the cross"
    opens = {b.ts: b.open for b in bars}
    for f in broker.fills:
        assert f.price == pytest.approx(opens[f.ts] * (1 + f.side.sign * 2e-4))
    (runner,) = out.runners.values()
    assert runner.stats.decisions == len(bars)  # warm-up bars are decided too (no order)
    assert runner.features.ready
    (summary,) = out.models
    assert summary.trades == len(broker.fills)
    assert summary.latency_p50_us is not None and summary.latency_p50_us > 0
    assert out.bars_per_s > 0 and "ReplayOutcome(" in repr(out)


async def test_replay_same_bars_same_trades(tmp_path: Path) -> None:
    models, _ = load_store_models(_store(tmp_path))
    a = await replay_bars(_bars(), models)
    b = await replay_bars(_bars(), models)
    fa = next(iter(a.brokers.values())).fills
    fb = next(iter(b.brokers.values())).fills
    assert fa == fb and a.models[0].realised_pnl == b.models[0].realised_pnl


async def test_replay_journal_root_holds_the_broker_fills(tmp_path: Path) -> None:
    models, _ = load_store_models(_store(tmp_path / "store"))
    out = await replay_bars(_bars(), models, journal_root=tmp_path / "j")
    (key,) = out.runners
    journaled = read_journal_fills(tmp_path / "j" / key / "trades_2024-03-15.csv")
    fills = next(iter(out.brokers.values())).fills
    assert len(journaled) == len(fills) > 0
    for j, f in zip(journaled, fills, strict=True):  # the journal keeps 6 decimals of price
        assert j.client_order_id == f.client_order_id and (j.side, j.qty, j.ts) == (
            f.side,
            f.qty,
            f.ts,
        )
        assert j.price == pytest.approx(f.price, abs=5e-7)


async def test_replay_model_without_bars_noted(tmp_path: Path) -> None:
    models, _ = load_store_models(_store(tmp_path))
    out = await replay_bars(_bars(sym="MSFT"), models)
    assert out.bar_events == 0 and out.models[0].trades == 0
    assert out.notes == ["sma-AAPL-model_4: no bars of AAPL in the file"]


def test_load_bars_file_round_trip_and_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    write_bars(path, _bars(5))
    with path.open("a") as fh:
        fh.write("AAPL,2024-03-15T20:00:00Z,1,0.5,2,1,10,0,0\n")  # high < low
    bars, problems = load_bars(path)
    assert bars == _bars(5)
    assert len(problems) == 1 and "row 7" in problems[0]
    empty = tmp_path / "empty.csv"
    empty.write_text("symbol,timestamp,open,high,low,close,volume\n")
    with pytest.raises(DataError, match="no usable bars"):
        load_bars(empty)


def test_resolve_store_root_accepts_root_or_models_folder(tmp_path: Path) -> None:
    root = _store(tmp_path)
    assert resolve_store_root(root) == root
    assert resolve_store_root(root / "models") == root
    with pytest.raises(ConfigError, match="holds no models/ folder"):
        resolve_store_root(root / "models" / "sma")
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_store_root(tmp_path / "nope")


def test_load_store_models_unknown_only_and_empty_store(tmp_path: Path) -> None:
    root = _store(tmp_path / "a")
    with pytest.raises(ConfigError, match="no such model"):
        load_store_models(root, only=["models/sma/AAPL/model_9"])
    models, _ = load_store_models(root, only=["sma-AAPL-model_4"])
    assert [s.prefix for s, _ in models] == ["models/sma/AAPL/model_4"]
    (tmp_path / "b" / "models").mkdir(parents=True)
    with pytest.raises(ConfigError, match="no usable model"):
        load_store_models(tmp_path / "b")


def test_load_store_models_corrupt_fold_is_a_clear_error(tmp_path: Path) -> None:
    root = _store(tmp_path)
    (root / KEY).write_text("{not json")
    with pytest.raises(ConfigError, match=r"model_4-outer_0_inner_0\.json"):
        load_store_models(root)


def test_a_broken_model_beside_a_good_one_stops_the_replay_unless_left_out(
    tmp_path: Path,
) -> None:
    """Nothing replays beside a half-understood model (as in ``run``): it used to be skipped
    with a note while the others traded, exit 0. ``--only`` leaves it out."""
    root = _store(tmp_path)
    bad = "models/sma/MSFT/model_5"
    (root / bad).mkdir(parents=True)
    (root / f"{bad}-outer_0_inner_0.json").write_text("{not json")
    broken = r"^1 model\(s\) in .* cannot trade: models/sma/MSFT/model_5: "
    with pytest.raises(ConfigError, match=broken):
        load_store_models(root)
    doc = json.loads((root / KEY).read_bytes())
    (root / f"{bad}-outer_0_inner_0.json").write_text(json.dumps(doc | {"timeframe": "90Min"}))
    with pytest.raises(ConfigError, match=r"model_5: .*timeframe '90Min'"):
        load_store_models(root)
    models, _ = load_store_models(root, only=["models/sma/AAPL/model_4"])
    assert [spec.prefix for spec, _ in models] == ["models/sma/AAPL/model_4"]


async def test_replay_one_model_alone_or_beside_another_symbol_same_fills(
    tmp_path: Path,
) -> None:
    root = _store(tmp_path)
    other = "models/sma/MSFT/model_5-outer_0_inner_0.json"
    (root / other).parent.mkdir(parents=True)
    (root / other).write_bytes((root / KEY).read_bytes())
    both, _ = load_store_models(root)
    alone, _ = load_store_models(root, only=["models/sma/AAPL/model_4"])
    assert len(both) == 2 and len(alone) == 1
    bars = sorted(_bars() + _bars(sym="MSFT"), key=lambda b: (b.ts, b.symbol))
    a = await replay_bars(bars, alone)  # the one-model loop
    b = await replay_bars(bars, both)  # the per-symbol loop
    key = next(iter(a.brokers))
    assert a.brokers[key].fills == b.brokers[key].fills != []
    assert a.bar_events == 120 and b.bar_events == 240


def test_a_key_the_catalog_ignores_is_reported_not_dropped_silently(tmp_path: Path) -> None:
    root = _store(tmp_path)
    stray = root / "models" / "sma" / "AAPL" / "model-outer_0_inner_0.json"  # no number
    stray.write_bytes((root / KEY).read_bytes())
    models, ignored = load_store_models(root)
    assert len(models) == 1
    (line,) = ignored
    assert line.startswith("ignored models/sma/AAPL/model-outer_0_inner_0.json: ")
