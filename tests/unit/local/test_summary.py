"""Run summary figures from fills and bars, the journal reader, rendering and JSON."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from rich.console import Console

from algostack.core.market import NS_PER_MIN
from algostack.core.orders import Fill, Side
from algostack.errors import DataError
from algostack.local.summary import (
    ComponentSummary,
    RunSummary,
    percentile,
    read_journal_fills,
    render,
    summarize_model,
)
from algostack.services.journal import TradeJournal

T0 = 1_710_509_400 * 1_000_000_000  # 2024-03-15 13:30 UTC (09:30 New York)


def _fill(i: int, side: Side, qty: int, price: float, commission: float = 0.0) -> Fill:
    return Fill(
        client_order_id=f"c{i}-{side.value}",
        broker_order_id=f"sim-{i}",
        model="m",
        symbol="AAPL",
        side=side,
        qty=qty,
        price=price,
        ts=T0 + i * NS_PER_MIN,
        commission=commission,
    )


def _prices(closes: list[float]) -> list[tuple[int, float, float]]:
    return [(T0 + i * NS_PER_MIN, c, c) for i, c in enumerate(closes)]


def test_summarize_model_round_trips_pnl_drawdown_exposure() -> None:
    # bar:     0    1    2    3    4    5
    closes = [100, 101, 99, 104, 104, 102]
    fills = [
        _fill(1, Side.BUY, 10, 101.0),  # long 10 @ 101
        _fill(3, Side.SELL, 10, 104.0),  # +30: a winning trip
        _fill(4, Side.BUY, 10, 104.0, commission=1.0),  # long again, still open
    ]
    s, curve = summarize_model("m", "models/t/AAPL/m_1", "AAPL", fills, _prices(closes))
    assert s.trades == 3 and s.round_trips == 1 and s.hit_rate == 1.0
    assert s.realised_pnl == pytest.approx(30.0 - 1.0)
    assert s.unrealised_pnl == pytest.approx((102 - 104) * 10)
    assert s.total_pnl == pytest.approx(29.0 - 20.0)
    # equity: 0, 0, -20, 30 (sold), 29 (commission), 9 -> worst fall from the 30 peak is 21
    assert s.max_drawdown == pytest.approx(21.0)
    assert s.exposure == pytest.approx(4 / 6)  # bars 1, 2, 4, 5 end with a position
    assert s.final_position == 10 and s.commissions == 1.0
    assert s.max_notional == pytest.approx(10 * 104)
    assert curve.fills == fills and len(curve.equity) == len(closes) + len(fills)


def test_summarize_model_losing_flip_counts_one_trip_lost() -> None:
    fills = [_fill(0, Side.BUY, 5, 100.0), _fill(1, Side.SELL, 10, 98.0)]  # flip to short 5
    s, _ = summarize_model("m", "p", "AAPL", fills, _prices([100, 98, 97]))
    assert s.round_trips == 1 and s.hit_rate == 0.0
    assert s.realised_pnl == pytest.approx(-10.0)
    assert s.final_position == -5
    assert s.unrealised_pnl == pytest.approx((97 - 98) * -5)


def test_summarize_model_no_fills_no_trips_hit_rate_none() -> None:
    s, _ = summarize_model("m", "p", "AAPL", [], _prices([10, 11]), [5.0, 1.0, 3.0])
    assert s.trades == 0 and s.hit_rate is None and s.max_drawdown == 0.0
    assert s.latency_p50_us == 3.0


def test_percentile_interpolates_and_handles_empty() -> None:
    assert percentile([], 0.5) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile(list(map(float, range(101))), 0.99) == pytest.approx(99.0)


def test_read_journal_fills_round_trips_the_trade_journal(tmp_path: Path) -> None:
    fills = [_fill(1, Side.BUY, 7, 100.25, 0.5), _fill(2, Side.SELL, 7, 101.5)]
    with TradeJournal(tmp_path, "2024-03-15", fsync=False) as j:
        for f in fills:
            j.append(f, score=0.1, latency_us=5.0, position_after=0, realised_pnl=0.0)
    assert read_journal_fills(tmp_path / "trades_2024-03-15.csv") == fills
    assert read_journal_fills(tmp_path / "trades_2000-01-01.csv") == []


def test_read_journal_fills_bad_row_names_the_line(tmp_path: Path) -> None:
    with TradeJournal(tmp_path, "2024-03-15", fsync=False) as j:
        j.append(_fill(1, Side.BUY, 7, 100.0), score=0, latency_us=0, position_after=7,
                 realised_pnl=0)  # fmt: skip
    path = tmp_path / "trades_2024-03-15.csv"
    path.write_text(path.read_text().replace(",buy,", ",hold,"))
    with pytest.raises(DataError, match=r"trades_2024-03-15\.csv:2: bad journal row"):
        read_journal_fills(path)


def _summary(**kw: object) -> RunSummary:
    s, _ = summarize_model("m", "models/t/AAPL/m_1", "AAPL", [], _prices([1.0]))
    base: dict[str, object] = {
        "mode": "run", "run_id": "r1", "day": "2024-03-15", "source": "synthetic",
        "wall_s": 1.5, "bars": 1, "models": [s],
    }  # fmt: skip
    base.update(kw)
    return RunSummary(**base)  # type: ignore[arg-type]


def test_run_summary_failed_when_component_failed_or_interrupted() -> None:
    ok = ComponentSummary("ingest", "ingest", "ok", 0, 0, 0)
    bad = ComponentSummary("trader:x", "trader", "failed", 1, 2, 4)
    assert not _summary(components=[ok]).failed
    assert _summary(components=[ok, bad]).failed
    assert _summary(components=[ok], interrupted=True).failed
    d = _summary(components=[bad]).to_dict()
    assert d["failed"] is True and d["components"][0]["restarts"] == 2
    assert d["totals"]["trades"] == 0
    assert not any(isinstance(v, float) and math.isnan(v) for v in d["models"][0].values())


def test_render_shows_models_components_and_paths() -> None:
    s = _summary(
        components=[ComponentSummary("trader:x", "trader", "failed", 1, 2, 4)],
        report="/tmp/r/report.html",
        interrupted=True,
    )
    console = Console(width=140, record=True)
    console.print(render(s))
    text = console.export_text()
    assert "t/AAPL/m_1" in text and "trader:x" in text and "failed" in text
    assert "report:  /tmp/r/report.html" in text and "interrupted" in text
