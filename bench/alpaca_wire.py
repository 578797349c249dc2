"""Alpaca wire parsing and stream throughput, against alpaca-py's path as the baseline.

Figures (last line, JSON):
  parse_ns_per_msg_msgpack / parse_ns_per_msg_json : algostack ``wire.parse_frame`` -> core types
  alpaca_py_ns_per_msg   : alpaca-py's path: ``msgpack.unpackb`` + ``DataStream._cast`` (pydantic)
  unpackb_ns_per_msg     : ``msgpack.unpackb`` to dicts only (the floor of any dict-based path)
  speedup_vs_alpaca_py   : alpaca_py_ns_per_msg / parse_ns_per_msg_msgpack
  stream_msgs_per_s      : FakeAlpacaServer.publish -> websocket -> AlpacaStreamSource.stream()
  publish_msgs_per_s     : the fake server alone, publishing into a drained socket

Run: ``.venv/bin/python bench/alpaca_wire.py [--quick]``. Medians of repeated runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable

import msgpack
from rich.console import Console
from rich.table import Table

from algostack.adapters.alpaca import wire
from algostack.adapters.alpaca.stream import AlpacaStreamSource
from algostack.core.market import NS_PER_MIN, Bar, MarketEvent, Quote, Trade
from algostack.testing.fake_alpaca import FakeAlpacaServer

T0 = 1_704_207_600 * 10**9


def sample(n: int) -> list[MarketEvent]:
    """A realistic mix: 60% quotes, 35% trades, 5% bars, nanosecond timestamps."""
    out: list[MarketEvent] = []
    for i in range(n):
        sym = ("AAPL", "MSFT", "SPY", "NVDA")[i % 4]
        r = i % 20
        if r == 0:
            out.append(
                Bar(
                    symbol=sym,
                    ts=T0 + (i // 20) * NS_PER_MIN,
                    open=1,
                    high=2,
                    low=0.5,
                    close=1.5,
                    volume=1000,
                    trade_count=12,
                    vwap=1.2,
                )
            )
        elif r < 8:
            out.append(
                Trade(
                    symbol=sym,
                    ts=T0 + i * 1117,
                    price=187.25,
                    size=100,
                    exchange="V",
                    trade_id=i,
                    conditions=("@",),
                    tape="C",
                )
            )
        else:
            out.append(
                Quote(
                    symbol=sym,
                    ts=T0 + i * 1117,
                    bid_price=187.24,
                    bid_size=3,
                    ask_price=187.26,
                    ask_size=4,
                    bid_exchange="V",
                    ask_exchange="V",
                    conditions=("R",),
                    tape="C",
                )
            )
    return out


def frames(events: list[MarketEvent], batch: int, *, use_msgpack: bool) -> list[bytes | str]:
    return [
        wire.encode_frame(
            [wire.to_wire(e, msgpack=use_msgpack) for e in events[i : i + batch]],
            msgpack=use_msgpack,
        )
        for i in range(0, len(events), batch)
    ]


def time_per_msg(fn: Callable[[], int], repeats: int) -> float:
    """Median ns per message over ``repeats`` runs of ``fn`` (which returns the count)."""
    runs = []
    for _ in range(repeats):
        t = time.perf_counter_ns()
        n = fn()
        runs.append((time.perf_counter_ns() - t) / n)
    return statistics.median(runs)


def parse_figures(n: int, repeats: int) -> dict[str, float]:
    from alpaca.data.live.stock import StockDataStream

    events = sample(n)
    mp_frames = frames(events, 100, use_msgpack=True)
    js_frames = frames(events, 100, use_msgpack=False)
    sdk = StockDataStream("key", "secret")

    def ours(fs: list[bytes | str]) -> Callable[[], int]:
        return lambda: sum(len(wire.parse_frame(f).events) for f in fs)

    def unpack_only() -> int:
        return sum(len(msgpack.unpackb(f)) for f in mp_frames)

    def alpaca_py() -> int:
        k = 0
        for f in mp_frames:
            for m in msgpack.unpackb(f):
                sdk._cast(m)
                k += 1
        return k

    return {
        "parse_ns_per_msg_msgpack": time_per_msg(ours(mp_frames), repeats),
        "parse_ns_per_msg_json": time_per_msg(ours(js_frames), repeats),
        "unpackb_ns_per_msg": time_per_msg(unpack_only, repeats),
        "alpaca_py_ns_per_msg": time_per_msg(alpaca_py, max(1, repeats // 2)),
    }


async def stream_figures(n: int, batch: int, repeats: int) -> dict[str, float]:
    events = [e for e in sample(n) if type(e) is not Bar]  # bars would be de-duplicated
    n = len(events)
    rates, publish_rates = [], []
    async with FakeAlpacaServer(key_id="k", secret_key="s", record_history=False) as srv:
        for r in range(repeats):
            src = AlpacaStreamSource(["*"], key_id="k", secret_key="s", url=srv.ws_url)
            got = 0
            done = asyncio.Event()

            async def drain(source: AlpacaStreamSource = src, done: asyncio.Event = done) -> None:
                nonlocal got
                async for b in source.stream():
                    got += len(b)
                    if got >= n:
                        done.set()

            task = asyncio.create_task(drain())
            await srv.wait_subscribed(r + 1)
            t = time.perf_counter()
            await srv.publish(events, batch=batch)
            t_pub = time.perf_counter() - t
            await asyncio.wait_for(done.wait(), 60)
            rates.append(n / (time.perf_counter() - t))
            publish_rates.append(n / t_pub)
            await src.aclose()
            await task
    return {
        "stream_msgs_per_s": statistics.median(rates),
        "publish_msgs_per_s": statistics.median(publish_rates),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="finish in well under 60 s")
    args = parser.parse_args()
    n, repeats = (20_000, 5) if args.quick else (100_000, 9)
    try:
        import uvloop

        uvloop.install()
        loop_name = "uvloop"
    except ImportError:  # pragma: no cover
        loop_name = "asyncio"
    figures: dict[str, float] = parse_figures(n, repeats)
    figures |= asyncio.run(stream_figures(n, 500, max(3, repeats // 2)))
    figures["speedup_vs_alpaca_py"] = (
        figures["alpaca_py_ns_per_msg"] / figures["parse_ns_per_msg_msgpack"]
    )
    table = Table(title=f"Alpaca wire ({n} msgs, 100/frame; stream 500/frame, {loop_name})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        table.add_row(key, f"{value:,.1f}")
    Console().print(table)
    print(json.dumps({k: round(v, 2) for k, v in figures.items()} | {"messages": n}))


if __name__ == "__main__":
    main()
