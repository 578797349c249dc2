"""SyntheticSource: deterministic, realistic, paced, and strict about its inputs."""

from __future__ import annotations

import statistics
from datetime import date

import pytest

from algostack.adapters.offline.synthetic import SyntheticSource
from algostack.core.market import NS_PER_MIN, Bar, MarketEvent, Trade
from algostack.core.sessions import session
from algostack.errors import ConfigError

DAY = date(2024, 3, 15)  # a regular Friday session
EARLY = date(2024, 11, 29)  # day after Thanksgiving: closes 13:00


async def collect(src: SyntheticSource) -> list[list[MarketEvent]]:
    return [list(b) async for b in src.stream()]


async def test_synthetic_regular_day_yields_390_bars_per_symbol_from_open() -> None:
    src = SyntheticSource(["AAPL", "MSFT"], day=DAY)
    batches = await collect(src)
    assert len(batches) == 390
    bars = [e for b in batches for e in b if isinstance(e, Bar)]
    sess = session(DAY)
    assert sess is not None
    open_ns = int(sess.open.timestamp()) * 1_000_000_000
    for sym in ("AAPL", "MSFT"):
        ts = [b.ts for b in bars if b.symbol == sym]
        assert ts == [open_ns + i * NS_PER_MIN for i in range(390)]
    assert src.stats.received == sum(len(b) for b in batches)
    assert src.stats.last_bar_ts["AAPL"] == open_ns + 389 * NS_PER_MIN


async def test_synthetic_early_close_stops_at_13_00() -> None:
    batches = await collect(SyntheticSource(["SPY"], day=EARLY, include_trades=False))
    assert len(batches) == 210 and all(len(b) == 1 for b in batches)


async def test_synthetic_same_seed_same_day_different_seed_differs() -> None:
    a = await collect(SyntheticSource(["AAPL"], day=DAY, seed=3))
    b = await collect(SyntheticSource(["AAPL"], day=DAY, seed=3))
    c = await collect(SyntheticSource(["AAPL"], day=DAY, seed=4))
    assert a == b
    assert a != c


async def test_synthetic_symbol_walk_independent_of_other_symbols() -> None:
    alone = await collect(SyntheticSource(["AAPL"], day=DAY, include_trades=False))
    paired = await collect(SyntheticSource(["AAPL", "MSFT"], day=DAY, include_trades=False))
    assert [b[0] for b in alone] == [next(e for e in b if e.symbol == "AAPL") for b in paired]


async def test_synthetic_bars_agree_with_their_trades() -> None:
    batches = await collect(SyntheticSource(["AAPL", "BRK.B"], day=DAY, seed=11))
    for batch in batches:
        bars = {e.symbol: e for e in batch if isinstance(e, Bar)}
        trades = [e for e in batch if isinstance(e, Trade)]
        assert [t.ts for t in trades] == sorted(t.ts for t in trades)
        for sym, bar in bars.items():
            mine = [t for t in trades if t.symbol == sym]
            assert mine and all(bar.ts < t.ts < bar.ts + NS_PER_MIN for t in mine)
            assert bar.low <= min(t.price for t in mine) <= max(t.price for t in mine) <= bar.high
            assert bar.low <= bar.open <= bar.high and bar.close == mine[-1].price
            assert bar.volume == sum(t.size for t in mine) and bar.trade_count == len(mine)
            assert bar.low <= bar.vwap <= bar.high
    ids = [t.trade_id for b in batches for t in b if isinstance(t, Trade) and t.symbol == "AAPL"]
    assert ids == list(range(1, len(ids) + 1))


async def test_synthetic_volume_u_shape_and_volatility_smile() -> None:
    batches = await collect(SyntheticSource(["AAPL"], day=DAY, seed=5, start_prices={"AAPL": 100}))
    bars = [e for b in batches for e in b if isinstance(e, Bar)]
    assert bars[0].open == 100.0
    vol = [b.volume for b in bars]
    edges = statistics.mean(vol[:30] + vol[-30:])
    assert edges > 1.8 * statistics.mean(vol[180:240])
    rng = [(b.high - b.low) / b.open for b in bars]
    assert statistics.mean(rng[:30]) > 1.5 * statistics.mean(rng[180:240])
    assert 50 < bars[-1].close < 200  # a 2 % daily vol walk stays plausible


async def test_synthetic_paced_speed_sleeps_one_minute_over_n_per_batch() -> None:
    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    src = SyntheticSource(["AAPL"], day=DAY, speed=60.0, clock=lambda: now[0], sleep=fake_sleep)
    n = 0
    async for _ in src.stream():
        n += 1
        if n == 5:
            break
    assert slept == pytest.approx([1.0] * 5)


async def test_synthetic_resumed_skips_what_the_bus_holds_and_paces_from_there() -> None:
    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    whole = [b async for b in SyntheticSource(["AAPL"], day=DAY).stream()]
    src = SyntheticSource(["AAPL"], day=DAY, speed=60.0, clock=lambda: now[0], sleep=fake_sleep)
    src.resume_after(whole[198][-1].ts)  # the bus holds minutes 0..198
    got = []
    async for batch in src.stream():
        got.append(batch)
        if len(got) == 3:
            break
    assert got == whole[199:202]  # the same walk: the skipped minutes were still built
    assert slept == pytest.approx([1.0] * 3)  # one minute per second from the resume point


async def test_synthetic_aclose_ends_stream_and_cuts_a_paced_wait() -> None:
    src = SyntheticSource(["AAPL"], day=DAY, speed=0.001)  # one minute every ~17 hours
    await src.aclose()
    assert await collect(src) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"symbols": ["aapl"]}, "invalid symbol 'aapl'"),
        ({"symbols": []}, "no symbols"),
        ({"symbols": ["AAPL"], "day": date(2024, 12, 25)}, "not an NYSE session"),
        ({"symbols": ["AAPL"], "day": date(1969, 12, 31)}, "outside the NYSE session calendar"),
        ({"symbols": ["AAPL"], "speed": 0.0}, "speed must be a positive"),
        ({"symbols": ["AAPL"], "start_prices": {"AAPL": -1.0}}, "start price of AAPL"),
    ],
)
def test_synthetic_bad_options_raise_config_error(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"day": DAY, **kwargs}
    with pytest.raises(ConfigError, match=match):
        SyntheticSource(**args)  # type: ignore[arg-type]
