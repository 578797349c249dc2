"""ModelRunner: the per-bar pipeline, its refusals, and resuming after a crash."""

from __future__ import annotations

import csv
import json
import math
from datetime import UTC, date, datetime
from pathlib import Path

import msgspec
import pytest

from algostack.adapters.artifacts.loader import parse_fold
from algostack.adapters.artifacts.model import ArtifactError, EnsembleModel
from algostack.adapters.artifacts.native_json import dump_native
from algostack.adapters.broker import SimBroker
from algostack.core.market import NS_PER_MIN, Bar, TradingStatus, datetime_to_ts
from algostack.core.naming import ModelSpec, parse_artifact_key
from algostack.core.orders import OrderAck, OrderIntent, OrderStatus
from algostack.core.risk import RiskLimits
from algostack.core.sessions import new_york_date_of_ns as ny_day
from algostack.core.sessions import new_york_day_bounds_ns as ny_day_bounds
from algostack.errors import ConfigError
from algostack.services.trader.runner import ModelRunner
from algostack.services.trader.state import (
    decisions_file_name,
    load_state,
    read_journal_fills,
    save_state,
)

DAY = "2024-03-05"
OPEN_NS = datetime_to_ts(datetime(2024, 3, 5, 14, 30, tzinfo=UTC))  # 09:30 New York
KEY = "models/sma/AAPL/model_4-outer_0_inner_0.json"


def make_model(timeframe: str = "1Min") -> tuple[ModelSpec, EnsembleModel]:
    art = parse_artifact_key(KEY)
    assert art is not None
    spec = ModelSpec("sma", "AAPL", "model_4", 4, (art,))
    data = dump_native(
        kind="linear",
        features=["sma_ratio_2_4"],
        coef=[1.0],
        intercept=0.0,
        thresholds={"long_entry": 0.0, "long_exit": 0.0},
        timeframe=timeframe,
    )
    return spec, EnsembleModel(spec, [parse_fold(KEY, data)])


def bar(i: int, price: float, symbol: str = "AAPL", **kw: float) -> Bar:
    fields = {"open": price, "high": price + 0.5, "low": price - 0.5, "close": price}
    fields.update(kw)
    return Bar(symbol=symbol, ts=OPEN_NS + i * NS_PER_MIN, volume=1000.0, **fields)


# up for 10 bars (a long after warm-up), down for 10 (flat again), up again
PRICES = [100 + i for i in range(10)] + [110 - i for i in range(10)] + [100 + i for i in range(8)]
BARS = [bar(i, p) for i, p in enumerate(PRICES)]


def make_runner(
    tmp_path: Path | None, broker: SimBroker | None = None, **kw: object
) -> ModelRunner:
    spec, model = make_model()
    return ModelRunner(
        spec,
        model,
        broker or SimBroker(0.0, model=spec.key),
        journal_dir=tmp_path,
        fsync=False,
        limits=RiskLimits(max_position_shares=10),
        **kw,  # type: ignore[arg-type]
    )


def decision_rows(path: Path) -> list[dict[str, str]]:
    with open(path / decisions_file_name(DAY)) as fh:
        return list(csv.DictReader(fh))


async def run_all(runner: ModelRunner, bars: list[Bar]) -> None:
    for b in bars:
        await runner.on_bar(b, recv_ns=0)


async def test_runner_trend_then_reversal_buys_once_and_sells_once(tmp_path: Path) -> None:
    runner = make_runner(tmp_path)
    await run_all(runner, BARS)
    fills = read_journal_fills(tmp_path, DAY)
    assert [(f.side.value, f.qty) for f in fills][:2] == [("buy", 10), ("sell", 10)]
    # the buy was decided on the bar where sma2 > sma4 first; it fills at the next open
    assert fills[0].ts == BARS[4].ts and fills[0].price == BARS[4].open
    runner.write_journals()
    rows = decision_rows(tmp_path)
    assert [int(r["bar_ts"]) for r in rows] == [b.ts for b in BARS]
    assert [r["status"] for r in rows[:3]] == ["warmup"] * 3
    assert runner.stats.orders == len(fills) + len(runner.pending)


async def test_runner_nan_bar_refused_without_order_or_state_change(tmp_path: Path) -> None:
    runner = make_runner(tmp_path)
    await run_all(runner, BARS[:6])
    before = (runner.position, runner.stats.orders, runner.last_decided_ts, runner.features.count)
    nan_bar = bar(6, 105.0, close=math.nan)
    inf_bar = bar(6, 105.0, high=math.inf)
    assert await runner.on_bar(nan_bar) is False
    assert await runner.on_bar(inf_bar) is False
    assert runner.stats.bad_bars == 2
    after = (runner.position, runner.stats.orders, runner.last_decided_ts, runner.features.count)
    assert after == before
    assert await runner.on_bar(BARS[6]) is True  # the good bar of that minute still counts


async def test_runner_refused_bar_never_reaches_the_broker_with_an_order_open() -> None:
    runner = make_runner(None)
    await run_all(runner, BARS[:4])  # the buy decided on bar 3 waits for bar 4's open
    assert len(runner.pending) == 1
    for refused in (bar(4, 104.0, open=math.nan), BARS[3], bar(4, 104.0, symbol="MSFT")):
        assert await runner.on_bar(refused) is False
        assert len(runner.pending) == 1 and runner.position == 0
    assert await runner.on_bar(BARS[4]) is True
    assert runner.position == 10 and runner.portfolio.position("AAPL").avg_price == BARS[4].open


async def test_runner_duplicate_and_out_of_order_bars_skipped_no_double_order(
    tmp_path: Path,
) -> None:
    runner = make_runner(tmp_path)
    await run_all(runner, BARS[:6])
    orders = runner.stats.orders
    assert await runner.on_bar(BARS[5]) is False  # duplicate
    assert await runner.on_bar(BARS[2]) is False  # out of order
    assert runner.stats.skipped_bars == 2
    assert runner.stats.orders == orders
    runner.write_journals()
    rows = decision_rows(tmp_path)
    assert len(rows) == 6


async def test_runner_wrong_symbol_or_misaligned_bar_refused(tmp_path: Path) -> None:
    runner = make_runner(tmp_path)
    assert await runner.on_bar(bar(0, 100.0, symbol="MSFT")) is False
    odd = Bar(symbol="AAPL", ts=OPEN_NS + 30 * 10**9, open=1, high=1, low=1, close=1, volume=1)
    assert await runner.on_bar(odd) is False
    assert runner.stats.wrong_bars == 2 and runner.stats.decisions == 0


def test_runner_timeframe_it_cannot_build_is_a_config_error() -> None:
    spec, model = make_model()
    model.timeframe = "1Week"
    with pytest.raises(ConfigError, match=r"timeframe '1Week'.*accepted: '<n>Min'"):
        ModelRunner(spec, model, SimBroker())


def test_artifact_timeframe_the_trader_cannot_build_is_refused_at_load() -> None:
    data = dump_native(kind="linear", features=["ret_1"], coef=[1.0], intercept=0.0,
                       thresholds={"long_entry": 0.0, "long_exit": 0.0})  # fmt: skip
    bad = data.replace(b'"1Min"', b'"2Day"')
    with pytest.raises(ArtifactError, match=f"^{KEY}: timeframe '2Day'.*only '1Day'"):
        parse_fold(KEY, bad)


class RejectingBroker(SimBroker):
    """Refuses the first ``n`` orders the way a real broker does (an ack, not an exception)."""

    def __init__(self, n: int) -> None:
        super().__init__(0.0)
        self.n = n
        self.seen: list[str] = []

    async def submit(self, intent: OrderIntent) -> OrderAck:
        self.seen.append(intent.client_order_id)
        if self.n > 0:
            self.n -= 1
            return OrderAck(
                client_order_id=intent.client_order_id,
                broker_order_id="",
                status=OrderStatus.REJECTED,
                message="insufficient buying power",
            )
        return await super().submit(intent)


async def test_runner_broker_rejection_logged_not_pending_next_bar_new_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker = RejectingBroker(1)
    runner = make_runner(tmp_path, broker)
    await run_all(runner, BARS[:6])
    assert runner.stats.rejected == 1
    assert "insufficient buying power" in caplog.text
    assert len(broker.seen) == len(set(broker.seen)) == 2  # retried on the next bar, new id
    runner.write_journals()
    rows = decision_rows(tmp_path)
    assert [r["status"] for r in rows if r["client_order_id"]] == ["rejected", "submitted"]
    assert runner.position == 10  # the second order filled at bar 5's open


async def test_runner_kill_switch_flattens_on_next_bar(tmp_path: Path) -> None:
    runner = make_runner(tmp_path)
    await run_all(runner, BARS[:7])
    assert runner.position == 10
    runner.kill("test")
    await run_all(runner, BARS[7:9])
    assert runner.position == 0
    assert read_journal_fills(tmp_path, DAY)[-1].side.value == "sell"


async def test_runner_trading_halt_blocks_orders_until_resume(tmp_path: Path) -> None:
    runner = make_runner(tmp_path)
    await run_all(runner, BARS[:3])
    runner.on_status(TradingStatus(symbol="AAPL", ts=BARS[3].ts, status_code="H"))
    await run_all(runner, BARS[3:6])
    assert runner.stats.orders == 0
    runner.on_status(TradingStatus(symbol="AAPL", ts=BARS[6].ts, status_code="T"))
    await run_all(runner, BARS[6:8])
    assert runner.position == 10


async def test_runner_flattens_before_close(tmp_path: Path) -> None:
    runner = make_runner(tmp_path)
    close_ns = OPEN_NS + 390 * NS_PER_MIN
    late = [
        Bar(
            symbol="AAPL",
            ts=close_ns - (12 - i) * NS_PER_MIN,
            open=p,
            high=p,
            low=p,
            close=p,
            volume=100.0,
        )
        for i, p in enumerate([100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110])
    ]
    await run_all(runner, late)
    fills = read_journal_fills(tmp_path, DAY)
    assert [f.side.value for f in fills] == ["buy", "sell"]
    assert runner.position == 0


async def test_runner_restart_after_crash_decides_each_bar_once_and_orders_once(
    tmp_path: Path,
) -> None:
    """Crash between commits: the redelivered bars are decided again exactly once."""
    reference = make_runner(tmp_path / "ref")
    await run_all(reference, BARS)

    live = tmp_path / "live"
    first = make_runner(live)
    await run_all(first, BARS[:4])
    assert isinstance(first.broker, SimBroker)
    save_state(live, (first.sync_journals(), first.snapshot(4, first.broker.checkpoint()))[1])
    await run_all(first, BARS[4:13])  # an order, its fill, then the reversal's order: no commit
    del first  # kill -9: nothing else is written

    state = load_state(live, make_model()[0].key)
    assert state is not None and state.last_decided_ts == BARS[3].ts
    broker = SimBroker(0.0)
    second = make_runner(live, broker)
    second.restore(state, read_journal_fills(live, state.day))
    await second.restore_broker(state.broker_seq)
    for b in BARS[:4]:
        second.warm(b)
    await run_all(second, BARS[4:])  # NATS redelivers everything after the commit
    second.close()

    fills = read_journal_fills(live, DAY)
    cids = [f.client_order_id for f in fills]
    assert len(cids) == len(set(cids))
    ref_fills = read_journal_fills(tmp_path / "ref", DAY)
    assert [(f.side, f.qty, f.ts) for f in fills] == [(f.side, f.qty, f.ts) for f in ref_fills]
    rows = decision_rows(live)
    assert [int(r["bar_ts"]) for r in rows] == [b.ts for b in BARS]
    assert second.position == reference.position


# SMA(10) == SMA(30) exactly on the last bar (tests/unit/core/test_features_exact.py): the
# running sums of the old engine said +2.2e-16 there and kept the position one bar longer.
TIE_CLOSES: list[float] = json.loads(
    (Path(__file__).parents[2] / "fixtures" / "bars" / "sma_tie_closes.json").read_text()
)["closes"]


def sma_10_30_model() -> tuple[ModelSpec, EnsembleModel]:
    art = parse_artifact_key(KEY)
    assert art is not None
    spec = ModelSpec("sma", "AAPL", "model_4", 4, (art,))
    data = dump_native(kind="linear", features=["sma_ratio_10_30"], coef=[1.0], intercept=0.0,
                       thresholds={"long_entry": 0.0, "long_exit": 0.0})  # fmt: skip
    return spec, EnsembleModel(spec, [parse_fold(KEY, data)])


async def test_runner_exact_sma_tie_exits_on_that_bar_and_emits_each_decision() -> None:
    spec, model = sma_10_30_model()
    events: list[tuple[str, object]] = []
    runner = ModelRunner(spec, model, SimBroker(0.0, model=spec.key),
                         limits=RiskLimits(max_position_shares=10),
                         emit=lambda kind, ev: events.append((kind, ev)))  # fmt: skip
    bars = [bar(60 + i, p) for i, p in enumerate(TIE_CLOSES)]
    for b in bars:
        assert await runner.on_bar(b) is True
    decisions = [ev for kind, ev in events if kind == "decision"]
    assert [d.bar_ts for d in decisions] == [b.ts for b in bars]  # type: ignore[attr-defined]
    assert all(math.isnan(d.score) for d in decisions[:29])  # type: ignore[attr-defined]
    before, tie = decisions[-2], decisions[-1]
    assert before.score > 0 and before.direction == 1  # type: ignore[attr-defined]
    assert tie.score == 0.0 and tie.direction == 0  # type: ignore[attr-defined]
    assert tie.target_qty == 0 and tie.order_qty == -10  # type: ignore[attr-defined]


async def test_runner_without_emit_builds_no_decision_and_decides_the_same() -> None:
    spec, model = sma_10_30_model()
    quiet = ModelRunner(spec, model, SimBroker(0.0, model=spec.key))
    loud = ModelRunner(spec, model, SimBroker(0.0, model=spec.key), emit=lambda k, e: None)
    bars = [bar(60 + i, p) for i, p in enumerate(TIE_CLOSES)]
    for b in bars:
        assert await quiet.on_bar(b) is await loud.on_bar(b) is True
    assert quiet.broker.fills == loud.broker.fills  # type: ignore[attr-defined]
    assert (quiet.direction, quiet.position, quiet.stats) == (
        loud.direction,
        loud.position,
        loud.stats,
    )


async def test_runner_next_day_restarts_features_and_refuses_the_day_before() -> None:
    spec, model = make_model()
    runner = ModelRunner(spec, model, SimBroker(0.0, model=spec.key))
    await run_all(runner, BARS[:6])
    assert runner.features.ready and runner.day is not None
    day1 = runner.day
    next_open = OPEN_NS + 24 * 3600 * 10**9  # 2024-03-06 09:30 New York
    assert await runner.on_bar(msgspec.structs.replace(bar(0, 100.0), ts=next_open)) is True
    assert runner.day == date(2024, 3, 6) and runner.day != day1
    assert not runner.features.ready and runner.features.count == 1  # features restarted
    assert await runner.on_bar(BARS[7]) is False  # a bar of the day before: skipped
    assert runner.stats.skipped_bars == 1


@pytest.mark.parametrize(
    ("day", "hours"),
    [(date(2024, 3, 5), 24), (date(2024, 3, 10), 23), (date(2024, 11, 3), 25)],
)
def test_ny_day_bounds_cover_exactly_the_new_york_day(day: date, hours: int) -> None:
    lo, hi = ny_day_bounds(day)
    assert hi - lo == hours * 3600 * 10**9
    assert ny_day(lo) == day and ny_day(hi - 1) == day and ny_day(hi) != day


async def test_runner_loss_limit_watches_each_day_not_the_running_total() -> None:
    """A day halted by its loss trades again the next day (the loss is not carried over)."""
    spec, model = make_model()
    limits = RiskLimits(max_position_shares=10, daily_loss_limit=50.0)
    runner = ModelRunner(spec, model, SimBroker(0.0, model=spec.key), limits=limits)
    day2 = 24 * 60  # minutes from day 1's open to day 2's open
    # day 1: a long from bar 4, then a 10-dollar drop: -100 on 10 shares -> HALTED, flat
    crash = [bar(i, p) for i, p in enumerate([100, 101, 102, 103, 104, 94, 94, 94])]
    rally = [bar(day2 + i, p) for i, p in enumerate([90, 91, 92, 93, 94, 95, 96])]
    await run_all(runner, crash)
    assert runner.risk.state == "HALTED" and runner.position == 0
    assert runner.portfolio.realised_pnl < -50
    await run_all(runner, rally)
    assert runner.risk.state == "ACTIVE" and abs(runner.risk.daily_pnl) < 50
    assert runner.position == 10  # day 2's cross was traded
