"""Tick-to-decision latency: fake Alpaca -> real ingest -> JetStream -> 10 models, vs raw RTT.

Every part is the real one, each in its own process, all on loopback with uvloop:

- a real nats-server (``EmbeddedNats``, JetStream, file storage, the ``MARKET`` stream);
- a ``FakeAlpacaServer`` process streaming minute bars of 10 symbols at 1,000 msgs/s (one
  bar per websocket frame, msgpack, paced on a due-time schedule);
- ``algostack ingest --source alpaca`` (``AlpacaStreamSource`` -> ``IngestService`` ->
  ``NatsBus``) pointed at the fake through ``ALGOSTACK_ALPACA_STREAM_URL``; it stamps every
  message ``Algostack-Recv-Ns`` = ``time.time_ns()`` when the frame came off the socket;
- ``algostack trade --models ...`` trading 10 models (one per symbol, 7 features, two
  logistic folds each) in one process with the SimBroker and fsynced journals.

Latency = decision time (trader, ``time.time_ns()`` when the order intent is decided) minus
``Algostack-Recv-Ns`` (ingest), read back from the trader's ``decisions_<day>.csv`` after the
run, so measuring costs nothing during it. The first ``WARM_S`` seconds are left out.

Baseline, same run, same server: nats-py request/reply round trips (uvloop) between two
connections of this process, 1,000 before and 1,000 after the stream, paced 1 ms apart.

The machine is shared: the CPU used by processes other than these five is read from
/proc/stat around each run; a run with more than ``DISTURBED_CORES`` of it is redone (up to
a limit) and the figures are the medians over the quiet runs (or over all, flagged
``disturbed``). Last line: JSON with ``p50_us``, ``p99_us``, ``raw_rtt_p50_us`` and more.

    .venv/bin/python bench/decision_latency.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from _loadprobe import LoadProbe, jiffies_of

N_MODELS = 10
RATE = 1000
WARM_S = 2.0
FEATURES = ["ret_1", "ret_5", "sma_ratio_5_20", "rsi_14", "vol_20", "volume_z_20", "tod"]
START = datetime(2024, 3, 5, 14, 30, tzinfo=UTC)  # a Tuesday's open, 09:30 New York
KEY, SECRET = "bench-key", "bench-secret"
DISTURBED_CORES = 0.35
"""Average CPU (in cores) used by other processes above which a run is redone."""


def symbols(n: int) -> list[str]:
    """``n`` distinct valid symbols: SYMAA, SYMAB, ..."""
    return [f"SYM{chr(ord('A') + i // 26)}{chr(ord('A') + i % 26)}" for i in range(n)]


def write_models(root: Path, n: int) -> list[str]:
    """Write ``n`` native logistic models (two folds each) into a bucket dir; return prefixes."""
    from algostack.adapters.artifacts.export import write_fold
    from algostack.adapters.artifacts.native_json import dump_native
    from algostack.adapters.storage import LocalDirStore

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


# -- the fake Alpaca process --------------------------------------------------------------------


def make_bars(n_sym: int, count: int) -> list[Any]:
    """``count`` bars round-robin over ``n_sym`` symbols, each symbol's minutes consecutive."""
    from algostack.core.market import NS_PER_MIN, Bar, datetime_to_ts

    start = datetime_to_ts(START)
    syms = symbols(n_sym)
    rng = np.random.default_rng(11)
    steps = np.exp(rng.normal(0, 0.001, count))
    price = [100.0] * n_sym
    out = []
    for k in range(count):
        i = k % n_sym
        p = price[i] = price[i] * float(steps[k])
        out.append(
            Bar(symbol=syms[i], ts=start + (k // n_sym) * NS_PER_MIN, open=p, high=p * 1.001,
                low=p * 0.999, close=p, volume=1000.0 + k % 97, trade_count=10, vwap=p)
        )  # fmt: skip
    return out


async def fake_role(seconds: float, n_sym: int, rate: float, frame: int) -> None:
    """Serve the fake; on ``GO`` (stdin) stream ``rate`` bars/s for ``seconds``; print DONE."""
    from algostack.testing.fake_alpaca import FakeAlpacaServer

    bars = make_bars(n_sym, int(seconds * rate))
    async with FakeAlpacaServer(key_id=KEY, secret_key=SECRET, record_history=False) as fake:
        print(f"PORT {fake.port}", flush=True)
        await fake.wait_subscribed(1, timeout_s=120)
        print("SUBSCRIBED", flush=True)
        line = await asyncio.to_thread(sys.stdin.readline)
        if line.strip() != "GO":
            return
        period = frame / rate
        t0 = time.perf_counter()
        late = 0
        for n, i in enumerate(range(0, len(bars), frame)):
            due = t0 + n * period
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -0.005:
                late += 1
            await fake.publish(bars[i : i + frame], batch=frame)
        elapsed = time.perf_counter() - t0
        print(f"DONE {fake.messages_sent} {elapsed:.3f} {late}", flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # until the bench closes our stdin


# -- the bench ---------------------------------------------------------------------------------


def child_env(server: Any, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "ALGOSTACK_"))}
    env.update(
        ALGOSTACK_NATS_USER=server.user,
        ALGOSTACK_NATS_PASSWORD=server.password,
        ALGOSTACK_LOG_LEVEL="WARNING",
        ALGOSTACK_ENV="local",
        **extra,
    )
    return env


async def raw_rtt(server: Any, count: int) -> list[float]:
    """nats-py request/reply round trips (µs) between two connections, paced 1 ms apart."""
    import nats
    import nats.errors

    a = await nats.connect(server.url, user=server.user, password=server.password)
    b = await nats.connect(server.url, user=server.user, password=server.password)

    async def echo(msg: Any) -> None:
        await msg.respond(b"")

    await b.subscribe("bench.rtt", cb=echo)
    await b.flush()
    await a.flush()
    out = []
    while len(out) < count:
        t = time.perf_counter_ns()
        try:
            await a.request("bench.rtt", b"x", timeout=2)
        except nats.errors.NoRespondersError:  # interest not yet seen by a's route: retry
            await asyncio.sleep(0.01)
            continue
        out.append((time.perf_counter_ns() - t) / 1e3)
        await asyncio.sleep(0.001)
    await a.close()
    await b.close()
    return out


def read_latencies(journal: Path, warm_minutes: int) -> tuple[list[float], int]:
    """Latencies (µs) of decided bars after the warm-up; and how many bars had none."""
    from algostack.core.market import NS_PER_MIN, datetime_to_ts
    from algostack.services.trader.state import DECISION_COLUMNS

    i_ts, i_lat = DECISION_COLUMNS.index("bar_ts"), DECISION_COLUMNS.index("latency_us")
    start = datetime_to_ts(START)
    out: list[float] = []
    missing = 0
    for path in sorted(journal.glob("*/decisions_*.csv")):
        with path.open() as fh:
            for row in csv.reader(fh):
                if not row or row[0] == "bar_ts":
                    continue
                if (int(row[i_ts]) - start) // NS_PER_MIN < warm_minutes:
                    continue
                lat = float(row[i_lat])
                if lat > 0:
                    out.append(lat)
                else:
                    missing += 1
    return out, missing


async def read_line(stream: asyncio.StreamReader, timeout_s: float, what: str) -> str:
    line = await asyncio.wait_for(stream.readline(), timeout_s)
    if not line:
        raise SystemExit(f"{what} ended early")
    return line.decode().strip()


async def stop(proc: asyncio.subprocess.Process, timeout_s: float = 30.0) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def hop_probe(
    server: Any, measuring: list[bool]
) -> tuple[Any, list[tuple[int, int]], list[int]]:
    """Two bare subscribers on every bar, doing nothing: an ordered JetStream consumer
    ((stored - recv, arrival - recv) in ns per bar) and a core-NATS one (arrival - recv)."""
    import nats

    from algostack.core.market_bus import recv_ns_of

    nc = await nats.connect(server.url, user=server.user, password=server.password)
    out: list[tuple[int, int]] = []
    core: list[int] = []

    async def on_bar(msg: Any) -> None:
        if measuring[0]:
            now = time.time_ns()
            recv = recv_ns_of(msg.headers)
            # Reply subject: $JS.ACK.<stream>.<consumer>.<n>.<sseq>.<cseq>.<ts>.<pending>
            stored = int(msg.reply.split(".")[7])
            out.append((stored - recv, now - recv))

    async def on_core(msg: Any) -> None:
        if measuring[0]:
            core.append(time.time_ns() - recv_ns_of(msg.headers))

    await nc.jetstream().subscribe(
        "market.bars.>", stream="MARKET", cb=on_bar, ordered_consumer=True
    )
    await nc.subscribe("market.bars.>", cb=on_core)
    return nc, out, core


async def one_run(
    seconds: float, n_models: int, rate: float, frame: int, probe: bool = False
) -> dict[str, Any]:
    """One measured run on a fresh server, fake, ingest and trader."""
    import nats

    from algostack.adapters.nats.bus import NatsBus
    from algostack.adapters.nats.server import EmbeddedNats

    tmp = Path(tempfile.mkdtemp(prefix="algostack-bench-lat-"))
    prefixes = write_models(tmp / "bucket", n_models)
    exe = str(Path(sys.executable).parent / "algostack")
    total_s = WARM_S + seconds
    with EmbeddedNats(tmp / "nats") as server:
        bus = await NatsBus.connect(server.url, user=server.user, password=server.password)
        await bus.ensure_market_stream()
        await bus.close()
        fake = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--role", "fake", "--seconds", str(total_s),
            "--symbols", str(n_models), "--rate", str(rate), "--frame", str(frame),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        procs = [fake]
        try:
            assert fake.stdout is not None and fake.stdin is not None
            port = int((await read_line(fake.stdout, 60, "fake Alpaca")).split()[1])
            hb_nc = await nats.connect(server.url, user=server.user, password=server.password)
            ready: set[str] = set()

            async def on_hb(msg: Any) -> None:
                ready.add(msg.subject)

            hb_sub = await hb_nc.subscribe("algostack.local.trader.*.heartbeat", cb=on_hb)
            trader = await asyncio.create_subprocess_exec(
                exe, "trade", "--models", ",".join(prefixes), "--bucket", str(tmp / "bucket"),
                "--journal-dir", str(tmp / "journal"), "--nats-url", server.url, "--no-warmup",
                "--broker", "sim",  # the decision path as measured before the gateway
                env=child_env(server), stdout=subprocess.DEVNULL,
            )  # fmt: skip
            procs.append(trader)
            deadline = time.monotonic() + 60
            while len(ready) < n_models:
                if trader.returncode is not None or time.monotonic() > deadline:
                    raise SystemExit(f"trader did not start (exit {trader.returncode})")
                await asyncio.sleep(0.05)
            await hb_sub.unsubscribe()
            await hb_nc.close()
            ws = f"ws://127.0.0.1:{port}/v2/iex"
            ingest = await asyncio.create_subprocess_exec(
                exe, "ingest", "--source", "alpaca", "--symbols", ",".join(symbols(n_models)),
                "--nats-url", server.url, "--log-every", "3600",
                env=child_env(server, APCA_API_KEY_ID=KEY, APCA_API_SECRET_KEY=SECRET,
                              ALGOSTACK_ALPACA_STREAM_URL=ws,
                              ALGOSTACK_ALPACA_DATA_URL=f"http://127.0.0.1:{port}"),
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
            procs.append(ingest)
            await read_line(fake.stdout, 60, "fake Alpaca")  # SUBSCRIBED
            rtt = await raw_rtt(server, 1000)
            pids = [os.getpid(), server.pid or 0, *(p.pid for p in procs)]
            measuring = [False]
            probe_nc, hops, core = await hop_probe(server, measuring) if probe else (None, [], [])
            cpu0 = [jiffies_of([p]) for p in pids]
            with LoadProbe(pids) as load:
                fake.stdin.write(b"GO\n")
                await fake.stdin.drain()
                await asyncio.sleep(WARM_S)
                measuring[0] = True
                done = (await read_line(fake.stdout, total_s + 60, "fake Alpaca")).split()
                await asyncio.sleep(0.5)  # the last bars reach the trader
                measuring[0] = False
            cpu = [jiffies_of([p]) - c for p, c in zip(pids, cpu0, strict=True)]
            if probe_nc is not None:
                await probe_nc.close()
            rtt += await raw_rtt(server, 1000)
            await stop(ingest)
            await stop(trader)
            fake.stdin.close()
        finally:
            for p in procs:
                await stop(p, 10)
    lat, missing = read_latencies(tmp / "journal", int(WARM_S * rate / n_models))
    arr = np.array(lat) if lat else np.array([0.0])
    rtt_arr = np.array(rtt)
    return {
        "p50_us": float(np.percentile(arr, 50)),
        "p90_us": float(np.percentile(arr, 90)),
        "p99_us": float(np.percentile(arr, 99)),
        "p999_us": float(np.percentile(arr, 99.9)),
        "max_us": float(arr.max()),
        "samples": len(lat),
        "no_recv_time": missing,
        "sent": int(done[1]),
        "stream_s": float(done[2]),
        "late_frames": int(done[3]),
        "over_1ms": int((arr > 1000).sum()),
        "raw_rtt_p50_us": float(np.percentile(rtt_arr, 50)),
        "raw_rtt_p99_us": float(np.percentile(rtt_arr, 99)),
        "own_cores": round(load.own_cores, 3),
        "other_cores": round(load.other_cores, 3),
        **probe_figures(hops, core),
        **{
            f"cpu_s_{name}": c / os.sysconf("SC_CLK_TCK")
            for name, c in zip(("bench", "nats", "fake", "trader", "ingest"), cpu, strict=True)
        },
    }


def probe_figures(hops: list[tuple[int, int]], core: list[int]) -> dict[str, float]:
    """Percentiles of the hop probes (empty without ``--probe``)."""
    if not hops or not core:
        return {}
    stored = np.array([h[0] for h in hops]) / 1e3
    arrived = np.array([h[1] for h in hops]) / 1e3
    core_us = np.array(core) / 1e3
    return {
        "recv_to_core_p50_us": float(np.percentile(core_us, 50)),
        "recv_to_core_p99_us": float(np.percentile(core_us, 99)),
        "recv_to_stored_p50_us": float(np.percentile(stored, 50)),
        "recv_to_stored_p99_us": float(np.percentile(stored, 99)),
        "recv_to_probe_p50_us": float(np.percentile(arrived, 50)),
        "recv_to_probe_p99_us": float(np.percentile(arrived, 99)),
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of every figure over ``runs``."""
    out: dict[str, Any] = {}
    for k in runs[0]:
        vals = [r[k] for r in runs]
        med = statistics.median(vals)
        out[k] = round(float(med), 1) if isinstance(med, float) else med
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one short run (< 60 s)")
    ap.add_argument("--runs", type=int, default=None, help="quiet runs wanted")
    ap.add_argument("--seconds", type=float, default=None, help="measured seconds per run")
    ap.add_argument("--rate", type=float, default=RATE, help="bars per second")
    ap.add_argument("--frame", type=int, default=1, help="bars per websocket frame")
    ap.add_argument("--symbols", type=int, default=N_MODELS, help="models (one per symbol)")
    ap.add_argument(
        "--probe", action="store_true", help="also time bare JetStream and core-NATS subscribers"
    )
    ap.add_argument("--role", default="bench", help=argparse.SUPPRESS)
    args = ap.parse_args()
    import uvloop

    if args.role == "fake":
        uvloop.run(fake_role(args.seconds, args.symbols, args.rate, args.frame))
        return
    seconds = args.seconds or (12.0 if args.quick else 30.0)
    want = args.runs or (1 if args.quick else 3)
    attempts = 2 if args.quick else want * 2
    quiet: list[dict[str, Any]] = []
    every: list[dict[str, Any]] = []
    began = time.monotonic()
    for n in range(1, attempts + 1):
        if len(quiet) >= want:
            break
        if args.quick and every and time.monotonic() - began > 28:
            break  # no time left for a second attempt under 60 s
        r = uvloop.run(one_run(seconds, args.symbols, args.rate, args.frame, args.probe))
        ok = r["other_cores"] <= DISTURBED_CORES
        every.append(r)
        if ok:
            quiet.append(r)
        print(
            f"run {n}: p50 {r['p50_us']:7.0f} us  p99 {r['p99_us']:7.0f} us  max {r['max_us']:7.0f}"
            f"  rtt p50 {r['raw_rtt_p50_us']:5.0f} us  n {r['samples']}  ours "
            f"{r['own_cores']:.2f} / others {r['other_cores']:.2f} cores  "
            f"{'ok' if ok else 'disturbed'}",
            flush=True,
        )
    disturbed = not quiet
    best = summarize(quiet or every)
    ratio = best["p50_us"] / best["raw_rtt_p50_us"] if best["raw_rtt_p50_us"] else float("nan")
    print()
    print(
        f"tick-to-decision: fake Alpaca -> ingest -> nats-server -> {args.symbols} models, "
        f"{args.rate:,.0f} bars/s, {args.frame}/frame, {seconds:.0f} s x {len(quiet or every)} "
        f"run(s){' (DISTURBED: no quiet run)' if disturbed else ''}"
    )
    print(f"{'figure':<34}{'value':>12}")
    for k in ("p50_us", "p90_us", "p99_us", "p999_us", "max_us", "raw_rtt_p50_us",
              "raw_rtt_p99_us"):  # fmt: skip
        print(f"{k:<34}{best[k]:>12.1f}")
    print(f"{'samples (decisions measured)':<34}{int(best['samples']):>12d}")
    print(f"{'decisions over 1 ms':<34}{int(best['over_1ms']):>12d}")
    print(f"{'p50 / raw RTT p50':<34}{ratio:>12.2f}")
    print(f"{'CPU of the 5 processes (cores)':<34}{best['own_cores']:>12.2f}")
    print(f"{'CPU of other processes (cores)':<34}{best['other_cores']:>12.2f}")
    print(
        f"targets: p99 <= 1000 us ({'met' if best['p99_us'] <= 1000 else 'MISSED'}); "
        f"p50 <= 3x raw RTT ({'met' if ratio <= 3 else 'MISSED'})"
    )
    out = dict(best)
    out["p50_over_rtt"] = round(ratio, 2)
    out["runs"] = len(quiet or every)
    out["attempts"] = len(every)
    out["disturbed"] = disturbed
    out["all_runs_p99_us"] = [round(r["p99_us"], 1) for r in every]
    out["all_runs_other_cores"] = [r["other_cores"] for r in every]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
