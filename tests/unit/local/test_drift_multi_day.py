"""Drift of a model that runs across sessions: its replay of a day starts as its trader did,
features warmed from the archive's earlier session and holding the position it carried
overnight, so an undisturbed day reports no difference."""

from __future__ import annotations

import asyncio
import csv
import math
import shutil
from datetime import date
from pathlib import Path

from algostack.adapters.artifacts.native_json import dump_native
from algostack.adapters.storage import LocalDirStore
from algostack.core.market import NS_PER_MIN, Bar
from algostack.core.sessions import session
from algostack.local.drift import drift_day
from algostack.local.replay import load_store_models, replay_bars
from algostack.services.archive import ArchiveWriter

DAYS = (date(2024, 3, 14), date(2024, 3, 15))
PREFIX = "models/sma/AAPL/model_1"


def _bars(day: date) -> list[Bar]:
    sess = session(day)
    assert sess is not None
    t0 = int(sess.open.timestamp()) * 1_000_000_000
    out = []
    for i in range(390):
        px = 100.0 + 5.0 * math.sin((day.toordinal() * 390 + i) / 23.0)
        out.append(Bar(symbol="AAPL", ts=t0 + i * NS_PER_MIN, open=px, high=px + 0.2,
                       low=px - 0.2, close=px + 0.05, volume=1000.0))  # fmt: skip
    return out


def _store(root: Path) -> Path:
    fold = root / f"{PREFIX}-outer_0_inner_0.json"
    fold.parent.mkdir(parents=True)
    thresholds = {"long_entry": 0.0, "long_exit": 0.0}
    fold.write_bytes(dump_native(kind="linear", features=["sma_ratio_10_30"], coef=[1.0],
                                 intercept=0.0, thresholds=thresholds))  # fmt: skip
    (root / PREFIX).mkdir()
    (root / PREFIX / "trading.json").write_text(
        '{"features": "continuous", "flatten_before_close": false, "fixed_shares": 10}'
    )
    return root


def test_drift_of_a_continuous_model_holding_overnight_finds_no_difference(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path / "store")
    bucket = tmp_path / "bucket"
    bucket.mkdir()

    async def archive() -> None:
        writer = ArchiveWriter(LocalDirStore(bucket))
        for day in DAYS:
            writer.add(_bars(day))
        writer.flush()
        await writer.drain()
        assert await writer.close()

    asyncio.run(archive())
    # "live": the trader ran both days, its features and position carried across the night
    models, _ = load_store_models(store)
    live = tmp_path / "live"
    asyncio.run(replay_bars([b for d in DAYS for b in _bars(d)], models, slippage_bps=1.0,
                            journal_root=live))  # fmt: skip
    (key,) = [p.name for p in live.iterdir()]
    for day in DAYS:
        d = day.isoformat()
        dest = bucket / PREFIX / "live" / d
        dest.mkdir(parents=True)
        shutil.copy(live / key / f"trades_{d}.csv", dest / f"trades_{d}.csv")
    with (live / key / "trades_2024-03-14.csv").open() as fh:
        held = int(list(csv.DictReader(fh))[-1]["position_after"])
    assert held == 10, "the day must end holding, so the next day starts with it"
    report = drift_day(LocalDirStore(bucket), LocalDirStore(store), DAYS[1], slippage_bps=1.0)
    (model,) = report.models
    assert model.matched and report.differences == 0, report.to_dict()
