"""Tick-to-decision latency of ``algostack trade`` with 10 models, beside the raw NATS round trip.

Setup, all on loopback: a real nats-server (JetStream, MARKET stream); a publisher process
standing in for the ingest that, at 1,000 msgs/s, stamps each bar with the ingest's receive
header ``Algostack-Recv-Ns`` (``time.time_ns()`` just before its publish, exactly where the
ingest will stamp the frame's receive time) and publishes it onto ``market.bars.<SYM>``; one
``algostack trade --models ...`` process (uvloop, SimBroker, fsynced journals) trading 10
models, one per symbol. Every decision the trader publishes carries its latency
(receive -> order intent decided); this script collects them over NATS.

Baseline, same run, same server: nats-py request/reply round trip (uvloop) between two
connections. Reports p50/p99 and p50 / raw RTT p50. Last line: JSON with ``p50_us``,
``p99_us``, ``raw_rtt_p50_us`` (and more).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from algostack.adapters.artifacts.export import write_fold
from algostack.adapters.artifacts.native_json import dump_native
from algostack.adapters.nats.server import EmbeddedNats
from algostack.adapters.storage import LocalDirStore
from algostack.core import codec
from algostack.core.market import NS_PER_MIN, Bar, datetime_to_ts

N_MODELS = 10
RATE = 1000
FEATURES = ["ret_1", "ret_5", "sma_ratio_5_20", "rsi_14", "vol_20", "volume_z_20", "tod"]
START_NS = datetime_to_ts(datetime(2024, 3, 5, 14, 30, tzinfo=UTC))
RECV_HEADER = "Algostack-Recv-Ns"


def symbols(n: int) -> list[str]:
    """``n`` distinct valid symbols: SYMA, SYMB, ..."""
    return [f"SYM{chr(ord('A') + i // 26)}{chr(ord('A') + i % 26)}" for i in range(n)]


def write_models(root: Path, n: int) -> list[str]:
    """Write ``n`` native logistic models (two folds each) into a bucket dir; return prefixes."""
    store = LocalDirStore(root)
    rng = np.random.default_rng(3)
    prefixes = []
    for i, sym in enumerate(symbols(n)):
        prefix = f"models/logreg/{sym}/model_{i + 1}"
        for outer in range(2):
            data = dump_native(
                kind="logistic",
                features=FEATURES,
                coef=list(rng.normal(0, 0.5, len(FEATURES))),
                intercept=0.0,
                thresholds={"long_entry": 0.55, "long_exit": 0.5},
            )
            write_fold(store, f"{prefix}-outer_{outer}_inner_0.json", data)
        prefixes.append(prefix)
    return prefixes


def trader_env(server: EmbeddedNats) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ALGOSTACK_NATS_USER=server.user,
        ALGOSTACK_NATS_PASSWORD=server.password,
        ALGOSTACK_LOG_LEVEL="WARNING",
        ALGOSTACK_ENV="local",
    )
    return env


def start_trader(
    server: EmbeddedNats, bucket: Path, journal: Path, prefixes: list[str]
) -> subprocess.Popen[bytes]:
    """``algostack trade --models ...`` as a subprocess."""
    exe = str(Path(sys.executable).parent / "algostack")
    cmd = [exe, "trade", "--models", ",".join(prefixes), "--bucket", str(bucket),
           "--journal-dir", str(journal), "--nats-url", server.url, "--no-warmup"]  # fmt: skip
    return subprocess.Popen(cmd, env=trader_env(server), stdout=subprocess.DEVNULL)


def cpu_busy() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as fh:
        parts = [int(x) for x in fh.readline().split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


# -- publisher role (a separate process, standing in for the ingest) ---------------------------


async def publish_role(url: str, user: str, password: str, seconds: float, n_sym: int) -> None:
    import nats

    nc = await nats.connect(url, user=user, password=password)
    syms = symbols(n_sym)
    subjects = [codec.subject_for("bars", s) for s in syms]
    encode = codec.encode
    minute = [0] * n_sym
    period = 1.0 / RATE
    t0 = time.perf_counter()
    n = 0
    rng = np.random.default_rng(11)
    price = [100.0] * n_sym
    while True:
        due = t0 + n * period
        now = time.perf_counter()
        if now - t0 > seconds:
            break
        if due > now:
            await asyncio.sleep(due - now)
        i = n % n_sym
        p = price[i] = price[i] * float(np.exp(rng.normal(0, 0.001)))
        ts = START_NS + minute[i] * NS_PER_MIN
        minute[i] += 1
        bar = Bar(symbol=syms[i], ts=ts, open=p, high=p * 1.001, low=p * 0.999, close=p,
                  volume=1000.0 + n % 97)  # fmt: skip
        payload = encode(bar)
        mid = f"bars:{syms[i]}:{ts}"
        await nc.publish(
            subjects[i],
            payload,
            headers={"Nats-Msg-Id": mid, RECV_HEADER: str(time.time_ns())},
        )
        n += 1
    await nc.flush()
    await nc.close()


# -- measurement -------------------------------------------------------------------------------


async def raw_rtt(server: EmbeddedNats, count: int) -> list[float]:
    """nats-py request/reply round trips (µs) between two connections on the same server."""
    import nats

    a = await nats.connect(server.url, user=server.user, password=server.password)
    b = await nats.connect(server.url, user=server.user, password=server.password)

    async def echo(msg: object) -> None:
        await msg.respond(b"")  # type: ignore[attr-defined]

    await b.subscribe("bench.rtt", cb=echo)
    await b.flush()
    out = []
    for _ in range(count):
        t = time.perf_counter_ns()
        await a.request("bench.rtt", b"x", timeout=2)
        out.append((time.perf_counter_ns() - t) / 1e3)
        await asyncio.sleep(0.001)  # paced like the trader's traffic, not a tight loop
    await a.close()
    await b.close()
    return out


async def one_run(seconds: float, n_models: int) -> dict[str, float]:
    import nats

    from algostack.adapters.nats.bus import NatsBus
    from algostack.core.events import decode_event

    tmp = Path(tempfile.mkdtemp(prefix="algostack-bench-lat-"))
    prefixes = write_models(tmp / "bucket", n_models)
    with EmbeddedNats(tmp / "nats") as server:
        bus = await NatsBus.connect(server.url, user=server.user, password=server.password)
        await bus.ensure_market_stream()
        await bus.close()
        sub_nc = await nats.connect(server.url, user=server.user, password=server.password)
        lat: list[float] = []
        trace: list[tuple[float, float]] = []
        ready: set[str] = set()
        measuring = [False]

        async def on_event(msg: object) -> None:
            subject: str = msg.subject  # type: ignore[attr-defined]
            if subject.endswith(".heartbeat"):
                ready.add(subject)
                return
            if measuring[0]:
                ev = decode_event(msg.data)  # type: ignore[attr-defined]
                us = getattr(ev, "latency_us", 0.0)
                if us > 0:
                    lat.append(us)
                    if os.environ.get("BENCH_TRACE"):
                        trace.append((time.monotonic(), us))

        hop: list[float] = []

        async def on_bar(msg: object) -> None:
            if measuring[0]:
                sent = int(msg.headers[RECV_HEADER])  # type: ignore[attr-defined]
                hop.append((time.time_ns() - sent) / 1e3)

        js_nc = await nats.connect(server.url, user=server.user, password=server.password)
        await js_nc.jetstream().subscribe(
            "market.bars.>", stream="MARKET", cb=on_bar, ordered_consumer=True
        )
        await sub_nc.subscribe("algostack.local.trader.*.decision", cb=on_event)
        await sub_nc.subscribe("algostack.local.trader.*.heartbeat", cb=on_event)
        rtt_before = await raw_rtt(server, 1000)
        trader = start_trader(server, tmp / "bucket", tmp / "journal", prefixes)
        try:
            deadline = time.monotonic() + 60
            while len(ready) < n_models:
                if trader.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"trader did not start (exit {trader.poll()})")
                await asyncio.sleep(0.05)
            busy0 = cpu_busy()
            pub = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--role", "publisher", "--url", server.url,
                "--seconds", str(seconds), "--symbols", str(n_models),
                env={**os.environ, "BENCH_USER": server.user, "BENCH_PASSWORD": server.password},
            )  # fmt: skip
            await asyncio.sleep(min(2.0, seconds / 5))  # let features warm and caches settle
            measuring[0] = True
            await pub.wait()
            await asyncio.sleep(0.3)
            measuring[0] = False
            busy1 = cpu_busy()
        finally:
            trader.terminate()
            trader.wait(30)
        rtt_after = await raw_rtt(server, 1000)
        await sub_nc.close()
    if trace:
        t0 = trace[0][0]
        for sec in range(int(trace[-1][0] - t0) + 1):
            w = [u for t, u in trace if sec <= t - t0 < sec + 1]
            if w:
                print(f"  t={sec:3d}s n={len(w):5d} p50={np.median(w):9.0f} max={max(w):9.0f}")
    arr = np.array(lat) if lat else np.array([0.0])
    rtt = np.array(rtt_before + rtt_after)
    load = (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])
    return {
        "p50_us": float(np.percentile(arr, 50)),
        "p99_us": float(np.percentile(arr, 99)),
        "p999_us": float(np.percentile(arr, 99.9)),
        "max_us": float(arr.max()),
        "samples": len(lat),
        "raw_rtt_p50_us": float(np.percentile(rtt, 50)),
        "hop_p50_us": float(np.percentile(hop, 50)) if hop else 0.0,
        "hop_p99_us": float(np.percentile(hop, 99)) if hop else 0.0,
        "raw_rtt_p99_us": float(np.percentile(rtt, 99)),
        "machine_busy": round(load, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one short run (< 60 s)")
    ap.add_argument("--role", default="bench")
    ap.add_argument("--url", default="")
    ap.add_argument("--seconds", type=float, default=0)
    ap.add_argument("--symbols", type=int, default=N_MODELS)
    args = ap.parse_args()
    import uvloop

    if args.role == "publisher":
        user, pw = os.environ["BENCH_USER"], os.environ["BENCH_PASSWORD"]
        uvloop.run(publish_role(args.url, user, pw, args.seconds, args.symbols))
        return
    seconds = 12.0 if args.quick else 30.0
    runs_n = 1 if args.quick else 3
    runs = [uvloop.run(one_run(seconds, N_MODELS)) for _ in range(runs_n)]
    runs.sort(key=lambda r: r["p99_us"])
    best = runs[len(runs) // 2]  # the median run by p99
    ratio = best["p50_us"] / best["raw_rtt_p50_us"] if best["raw_rtt_p50_us"] else float("nan")
    print(f"tick-to-decision, {N_MODELS} models, {RATE} msgs/s, {seconds:.0f} s x {runs_n} run(s)")
    print(f"{'figure':<34}{'value':>12}")
    keys = ("p50_us", "p99_us", "p999_us", "max_us", "raw_rtt_p50_us", "raw_rtt_p99_us")
    for k in (*keys, "hop_p50_us", "hop_p99_us"):
        print(f"{k:<34}{best[k]:>12.1f}")
    print(f"{'samples':<34}{best['samples']:>12d}")
    print(f"{'p50 / raw RTT p50':<34}{ratio:>12.2f}")
    print(f"{'machine busy during run':<34}{best['machine_busy']:>12.0%}")
    print(f"targets: p99 <= 1000 us ({'met' if best['p99_us'] <= 1000 else 'MISSED'}); "
          f"p50 <= 3x RTT ({'met' if ratio <= 3 else 'MISSED'})")  # fmt: skip
    out = {k: round(v, 1) if isinstance(v, float) else v for k, v in best.items()}
    out["p50_over_rtt"] = round(ratio, 2)
    out["runs"] = runs_n
    print(json.dumps(out))


if __name__ == "__main__":
    main()
