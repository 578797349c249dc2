"""Ingest throughput: fake Alpaca frames -> IngestService -> JetStream acks, vs raw nats-py.

Measures in one run, against one embedded nats-server (JetStream, file storage):

(a) raw    nats-py ``js.publish_async`` of the same payloads (pre-encoded msgpack, same
           subjects and ``Nats-Msg-Id`` headers), then ``publish_async_completed()``;
(b) ingest the real path: a FakeAlpacaServer in a child process sends pre-encoded msgpack
           frames of 100 trades as fast as the client reads; ``AlpacaStreamSource`` parses
           them, ``IngestService`` hands them to ``NatsBus`` (bounded ack window), and the
           clock stops when the last ack is in.

Both use uvloop. Each figure is the median of several repetitions; the load of other
processes is read from /proc/stat around each repetition (minus this process, the child and
nats-server) and a disturbed repetition is repeated. The last line is JSON with
``raw_msgs_per_s``, ``ingest_msgs_per_s`` and ``ratio`` (= b / a).

    .venv/bin/python bench/ingest_throughput.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from _loadprobe import LoadProbe
from algostack.core.market import MarketEvent, Trade
from algostack.core.source import SourceStats

KEY, SECRET = "bench-key", "bench-secret"
SYMBOLS = [f"SYM{i}" for i in range(50)]
FRAME = 100
T0 = 1_710_509_400_000_000_000  # 2024-03-15 13:30 UTC
DISTURBED_CORES = 0.35
"""Average CPU (in cores) used by other processes above which a repetition is redone."""


def make_events(n: int) -> list[MarketEvent]:
    return [
        Trade(
            symbol=SYMBOLS[i % len(SYMBOLS)],
            ts=T0 + i * 1_000,
            price=100.0 + (i % 997) / 100,
            size=float(100 * (1 + i % 5)),
            exchange="V",
            trade_id=i + 1,
            conditions=("@",),
            tape="C",
        )
        for i in range(n)
    ]


# --- the fake server child ---------------------------------------------------------------------


async def serve_fake(n: int, rounds: int) -> None:
    """Child process: serve pre-encoded trade frames to each new subscriber, ``rounds`` times."""
    from algostack.adapters.alpaca import wire
    from algostack.testing.fake_alpaca import FakeAlpacaServer

    events = make_events(n)
    frames = [
        wire.encode_frame(
            [wire.to_wire(e, msgpack=True) for e in events[i : i + FRAME]], msgpack=True
        )
        for i in range(0, n, FRAME)
    ]
    async with FakeAlpacaServer(key_id=KEY, secret_key=SECRET, record_history=False) as fake:
        print(f"PORT {fake.port}", flush=True)
        for r in range(rounds):
            await fake.wait_subscribed(r + 1, timeout_s=600)
            for frame in frames:
                await fake.send_raw(frame)


# --- measurements --------------------------------------------------------------------------------


class Limited:
    """Wrap a source: stop after ``n`` events; note when the first and last batch came."""

    def __init__(self, inner: Any, n: int) -> None:
        self.inner, self.n = inner, n
        self.name = inner.name
        self.stats: SourceStats = inner.stats
        self.first: float | None = None

    async def stream(self) -> AsyncIterator[Sequence[MarketEvent]]:
        seen = 0
        async for batch in self.inner.stream():
            if self.first is None:
                self.first = time.perf_counter()
            seen += len(batch)
            yield batch
            if seen >= self.n:
                break

    @property
    def last_recv_ns(self) -> int:
        return int(self.inner.last_recv_ns)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def measure_raw(url: str, user: str, password: str, events: list[MarketEvent]) -> float:
    import nats

    from algostack.core import codec

    prepared = [(codec.subject(e), codec.encode(e), codec.msg_id(e)) for e in events]
    nc = await nats.connect(url, user=user, password=password)
    try:
        js = nc.jetstream()
        t = time.perf_counter()
        for subject, payload, mid in prepared:
            await js.publish_async(subject, payload, headers={"Nats-Msg-Id": mid})
        await js.publish_async_completed()
        return len(prepared) / (time.perf_counter() - t)
    finally:
        await nc.close()


async def measure_ingest(bus: Any, ws_url: str, n: int) -> tuple[float, int]:
    from algostack.adapters.alpaca.stream import AlpacaStreamSource
    from algostack.services.ingest import IngestService

    src = AlpacaStreamSource(
        SYMBOLS,
        key_id=KEY,
        secret_key=SECRET,
        url=ws_url,
        channels=("trades",),
        market_open=lambda _: True,
    )
    limited = Limited(src, n)
    before = bus.stats.published
    stats = await IngestService(limited, bus, log_every_s=3600).run()  # type: ignore[arg-type]
    end = time.perf_counter()
    await src.aclose()
    assert limited.first is not None
    return stats.received / (end - limited.first), bus.stats.published - before


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from algostack.adapters.nats.bus import NatsBus
    from algostack.adapters.nats.server import EmbeddedNats

    n = args.events
    reps = args.reps
    max_rounds = reps * 3
    events = make_events(n)
    child = await asyncio.create_subprocess_exec(
        *[sys.executable, __file__, "--serve-fake", "--events", str(n)],
        *["--rounds", str(max_rounds)],
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 60)
        port = int(line.split()[1])
        ws_url = f"ws://127.0.0.1:{port}/v2/iex"
        with EmbeddedNats() as server:
            assert server.pid is not None
            pids = [os.getpid(), child.pid, server.pid]
            bus = await NatsBus.connect(server.url, user=server.user, password=server.password)
            raw: list[float] = []
            ingest: list[float] = []
            loads: list[float] = []
            all_raw: list[float] = []
            all_ingest: list[float] = []
            all_loads: list[float] = []
            redone = 0
            rounds = 0
            try:
                while len(ingest) < reps and rounds < max_rounds:
                    rounds += 1
                    await bus.delete_stream_if_exists()
                    await bus.ensure_market_stream()
                    with LoadProbe(pids) as p_raw:
                        r = await measure_raw(server.url, server.user, server.password, events)
                    await bus.delete_stream_if_exists()
                    await bus.ensure_market_stream()
                    with LoadProbe(pids) as p_ing:
                        g, stored = await measure_ingest(bus, ws_url, n)
                    other = max(p_raw.other_cores, p_ing.other_cores)
                    ok = stored == n
                    status = "ok" if ok and other <= DISTURBED_CORES else "redo"
                    print(
                        f"rep {rounds}: raw {r:>9,.0f}/s  ingest {g:>9,.0f}/s  ratio {g / r:4.2f}"
                        f"  stored {stored:,}/{n:,}  other load {other:.2f} cores  {status}",
                        flush=True,
                    )
                    if not ok:
                        raise SystemExit(f"ingest stored {stored} of {n} events")
                    all_raw.append(r)
                    all_ingest.append(g)
                    all_loads.append(other)
                    if status == "redo":
                        redone += 1
                        continue
                    raw.append(r)
                    ingest.append(g)
                    loads.append(other)
            finally:
                await bus.close()
    finally:
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # it may end after its last round
                child.kill()
        await child.wait()
    disturbed = not ingest
    if disturbed:  # the machine never went quiet: report what we have, flagged
        raw, ingest, loads = all_raw, all_ingest, all_loads
    raw_med, ing_med = statistics.median(raw), statistics.median(ingest)
    return {
        "raw_msgs_per_s": round(raw_med),
        "ingest_msgs_per_s": round(ing_med),
        "ratio": round(ing_med / raw_med, 3),
        "ratio_median_of_reps": round(
            statistics.median(g / r for g, r in zip(ingest, raw, strict=True)), 3
        ),
        "events_per_rep": n,
        "reps": len(ingest),
        "redone_reps": redone,
        "other_load_cores_median": round(statistics.median(loads), 3),
        "frame_msgs": FRAME,
        "disturbed": disturbed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer events and reps (< 60 s)")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    import uvloop

    if args.serve_fake:
        uvloop.run(serve_fake(args.events, args.rounds))
        return
    args.events = args.events or (60_000 if args.quick else 200_000)
    args.reps = args.reps or (3 if args.quick else 7)
    result = uvloop.run(main_async(args))
    print()
    print(f"{'figure':<22}{'value':>14}")
    print(f"{'raw publish_async':<22}{result['raw_msgs_per_s']:>12,} /s")
    print(f"{'ingest end to end':<22}{result['ingest_msgs_per_s']:>12,} /s")
    print(f"{'ratio ingest/raw':<22}{result['ratio']:>14.2f}")
    print(f"{'target':<22}{'ratio >= 0.7, ingest >= 30,000/s':>14}")
    print(json.dumps(result))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    main()
