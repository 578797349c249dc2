"""Resident memory of ``algostack trade``: one model per process vs N models in one process.

Starts a real nats-server, writes native logistic models (two folds each) into a bucket
directory, runs ``algostack trade --model P`` and ``algostack trade --models P1..PN`` as
subprocesses, feeds every model a few hundred bars so features, journals and buffers are in
use, and reads ``VmRSS`` from ``/proc/<pid>/status``. The one-model process is the baseline
of the same run. Last line: JSON with ``one_model_rss_mb`` and ``per_extra_model_mb``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from algostack.adapters.nats.bus import NatsBus
from algostack.adapters.nats.server import EmbeddedNats
from algostack.core.market import NS_PER_MIN, Bar, datetime_to_ts
from decision_latency import START, child_env, symbols, write_models

START_NS = datetime_to_ts(START)


def start_trader(
    server: EmbeddedNats, bucket: Path, journal: Path, prefixes: list[str]
) -> subprocess.Popen[bytes]:
    """``algostack trade --models ...`` as a subprocess (SimBroker, no warm-up)."""
    exe = str(Path(sys.executable).parent / "algostack")
    cmd = [exe, "trade", "--models", ",".join(prefixes), "--bucket", str(bucket),
           "--journal-dir", str(journal), "--nats-url", server.url, "--no-warmup",
           "--broker", "sim"]  # fmt: skip
    return subprocess.Popen(cmd, env=child_env(server), stdout=subprocess.DEVNULL)


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def measure(n_models: int, bars_per_model: int) -> float:
    """RSS (MiB) of one trader process running ``n_models`` after it traded some bars."""
    tmp = Path(tempfile.mkdtemp(prefix="algostack-bench-mem-"))
    prefixes = write_models(tmp / "bucket", n_models)
    with EmbeddedNats(tmp / "nats") as server:
        bus = await NatsBus.connect(server.url, user=server.user, password=server.password)
        await bus.ensure_market_stream()
        beats: set[str] = set()

        async def on_beat(msg: object) -> None:
            beats.add(msg.subject)  # type: ignore[attr-defined]

        await bus.subscribe("algostack.local.trader.*.heartbeat", on_beat)
        proc = start_trader(server, tmp / "bucket", tmp / "journal", prefixes)
        try:
            deadline = time.monotonic() + 60
            while len(beats) < n_models:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"trader did not start (exit {proc.poll()})")
                await asyncio.sleep(0.05)
            batch = [
                Bar(
                    symbol=s,
                    ts=START_NS + i * NS_PER_MIN,
                    open=100.0 + (i % 7),
                    high=101.0 + (i % 7),
                    low=99.0 + (i % 7),
                    close=100.0 + (i % 5),
                    volume=1000.0,
                )
                for i in range(bars_per_model)
                for s in symbols(n_models)
            ]
            await bus.publish_events(batch)
            await bus.flush_acks()
            await asyncio.sleep(1.5)  # let it decide everything and commit
            samples = []
            for _ in range(5):
                samples.append(rss_mb(proc.pid))
                await asyncio.sleep(0.1)
            return statistics.median(samples)
        finally:
            proc.terminate()
            proc.wait(30)
            await bus.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer bars, one repetition")
    ap.add_argument("--models", type=int, default=10, help="models in the packed process")
    args = ap.parse_args()
    import uvloop

    bars = 200 if args.quick else 390
    reps = 1 if args.quick else 3
    one = statistics.median(uvloop.run(measure(1, bars)) for _ in range(reps))
    many = statistics.median(uvloop.run(measure(args.models, bars)) for _ in range(reps))
    per_extra = (many - one) / (args.models - 1)
    print(f"trader RSS, {bars} bars per model, median of {reps}")
    print(f"{'process':<34}{'RSS MiB':>10}")
    print(f"{'1 model':<34}{one:>10.1f}")
    print(f"{f'{args.models} models in one process':<34}{many:>10.1f}")
    print(f"{'per extra model':<34}{per_extra:>10.2f}")
    print(f"{f'{args.models} processes of 1 model':<34}{one * args.models:>10.1f}")
    print(f"packed / separate: {many / (one * args.models):.2f}")
    print(
        f"targets: one model <= 120 MB ({'met' if one <= 120 else 'MISSED'}); "
        f"<= 5 MB per extra model ({'met' if per_extra <= 5 else 'MISSED'})"
    )
    print(
        json.dumps(
            {
                "one_model_rss_mb": round(one, 1),
                "per_extra_model_mb": round(per_extra, 2),
                "packed_rss_mb": round(many, 1),
                "models": args.models,
            }
        )
    )


if __name__ == "__main__":
    main()
